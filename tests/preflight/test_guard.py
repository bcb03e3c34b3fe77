"""The SQL guard: hostile input is rejected with a reason, legitimate complex reads are accepted."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dbmeta_app.preflight.guard import (
    OTHER_DENIED_FUNCTIONS,
    OTHER_DENIED_PREFIXES,
    POSTGRES_DENIED_FUNCTIONS,
    POSTGRES_DENIED_PREFIXES,
    SQL,
    GuardVerdict,
    check_sql,
    is_denied_function,
)

ONE_MEGABYTE_QUERY = "SELECT " + "1 + " * 262_144 + "1"

# (id, sql). Integration tests replay these against real servers holding a `sentinel` table and a
# `sentinel_seq` sequence, so anything that slipped through would show as a changed database.
PG_HOSTILE: list[tuple[str, str]] = [
    ("two_statements", "SELECT 1; DELETE FROM sentinel"),
    ("two_selects", "SELECT 1; SELECT 2"),
    ("commit_then_delete", "COMMIT; DELETE FROM sentinel"),
    ("rollback_then_drop", "ROLLBACK; DROP TABLE sentinel"),
    ("end_then_insert", "END; INSERT INTO sentinel VALUES (99, 'x')"),
    ("select_then_commit", "SELECT 1; COMMIT"),
    ("begin_read_write_block", "BEGIN READ WRITE; DELETE FROM sentinel; COMMIT"),
    ("begin_read_write", "BEGIN READ WRITE"),
    ("start_transaction", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE READ WRITE"),
    ("set_transaction_read_write", "SET TRANSACTION READ WRITE"),
    ("set_session_characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
    ("set_statement_timeout", "SET statement_timeout = 0"),
    ("set_local_role", "SET LOCAL ROLE postgres"),
    ("reset_all", "RESET ALL"),
    ("cte_delete", "WITH d AS (DELETE FROM sentinel RETURNING *) SELECT * FROM d"),
    ("cte_insert", "WITH i AS (INSERT INTO sentinel VALUES (99, 'x') RETURNING id) SELECT id FROM i"),
    ("cte_update", "WITH u AS (UPDATE sentinel SET note = 'x' RETURNING 1) SELECT count(*) FROM u"),
    (
        "nested_cte_delete",
        "WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM sentinel RETURNING id) SELECT id FROM c) "
        "SELECT * FROM b",
    ),
    (
        "cte_merge",
        "WITH m AS (MERGE INTO sentinel s USING orders o ON s.id = o.id WHEN MATCHED THEN DELETE) SELECT 1",
    ),
    ("select_into", "SELECT * INTO stolen FROM sentinel"),
    ("select_into_temp", "SELECT * INTO TEMP stolen FROM sentinel"),
    ("create_table_as", "CREATE TABLE stolen AS SELECT * FROM sentinel"),
    ("for_update", "SELECT * FROM sentinel FOR UPDATE"),
    ("for_no_key_update_nowait", "SELECT * FROM sentinel FOR NO KEY UPDATE NOWAIT"),
    ("for_share_skip_locked", "SELECT * FROM sentinel FOR SHARE SKIP LOCKED"),
    ("for_key_share_in_subquery", "SELECT * FROM (SELECT * FROM sentinel FOR KEY SHARE) s"),
    ("for_update_in_cte", "WITH l AS (SELECT * FROM sentinel FOR UPDATE) SELECT * FROM l"),
    ("explain_analyze_delete", "EXPLAIN ANALYZE DELETE FROM sentinel"),
    ("explain_analyse_spelling", "EXPLAIN ANALYSE SELECT * FROM sentinel"),
    ("explain_options_analyze", "EXPLAIN (ANALYZE, BUFFERS) SELECT 1"),
    ("explain_plain", "EXPLAIN SELECT 1"),
    ("comment_before_explain", "/* plan */ EXPLAIN ANALYZE SELECT 1"),
    ("analyze_table", "ANALYZE sentinel"),
    ("vacuum", "VACUUM sentinel"),
    ("do_block", "DO $$BEGIN DELETE FROM sentinel; END$$"),
    ("call_procedure", "CALL do_things()"),
    ("copy_to_program", "COPY sentinel TO PROGRAM 'id'"),
    ("copy_from_file", "COPY sentinel FROM '/etc/passwd'"),
    ("copy_query_to_stdout", "COPY (SELECT * FROM sentinel) TO STDOUT"),
    ("prepare", "PREPARE p AS DELETE FROM sentinel"),
    ("execute", "EXECUTE p"),
    ("deallocate", "DEALLOCATE ALL"),
    ("lock_table", "LOCK TABLE sentinel IN ACCESS EXCLUSIVE MODE"),
    ("listen", "LISTEN chan"),
    ("notify", "NOTIFY chan, 'x'"),
    ("truncate", "TRUNCATE sentinel"),
    ("drop_table", "DROP TABLE sentinel"),
    ("delete", "DELETE FROM sentinel"),
    ("pg_sleep_in_targets", "SELECT pg_sleep(10)"),
    ("pg_sleep_schema_qualified", "SELECT pg_catalog.pg_sleep(10)"),
    ("pg_sleep_quoted", 'SELECT "pg_sleep"(10)'),
    ("pg_sleep_quoted_qualified", 'SELECT "pg_catalog"."pg_sleep"(10)'),
    ("pg_sleep_mixed_case", "SELECT Pg_SlEeP(10)"),
    ("pg_sleep_unicode_escape_name", 'SELECT U&"pg\\005fsleep"(10)'),
    ("pg_sleep_for_in_where", "SELECT * FROM sentinel WHERE pg_sleep_for('10 s') IS NOT NULL"),
    (
        "pg_sleep_until_in_having",
        "SELECT count(*) FROM sentinel HAVING pg_sleep_until(now() + interval '1 hour') IS NULL",
    ),
    ("pg_sleep_in_order_by", "SELECT * FROM sentinel ORDER BY pg_sleep(1)"),
    ("pg_sleep_in_group_by", "SELECT count(*) FROM sentinel GROUP BY pg_sleep(1)"),
    ("pg_sleep_in_from", "SELECT * FROM pg_sleep(10)"),
    ("pg_sleep_in_rows_from", "SELECT * FROM ROWS FROM (generate_series(1, 2), pg_sleep(10))"),
    ("pg_sleep_in_lateral", "SELECT * FROM sentinel s, LATERAL (SELECT pg_sleep(s.id)) x"),
    ("pg_sleep_in_cte", "WITH w AS (SELECT pg_sleep(10)) SELECT * FROM w"),
    ("pg_sleep_in_union_branch", "SELECT 1 UNION ALL SELECT pg_sleep(10)::text::int"),
    ("pg_sleep_in_case", "SELECT CASE WHEN id > 0 THEN pg_sleep(1) END FROM sentinel"),
    ("pg_sleep_in_exists", "SELECT 1 WHERE EXISTS (SELECT pg_sleep(10))"),
    ("pg_sleep_in_values", "VALUES (pg_sleep(10))"),
    ("pg_sleep_in_join_on", "SELECT * FROM sentinel a JOIN orders b ON pg_sleep(1) IS NULL"),
    ("pg_sleep_in_window", "SELECT row_number() OVER (ORDER BY pg_sleep(1)) FROM sentinel"),
    ("pg_sleep_in_filter", "SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM sentinel"),
    ("pg_sleep_in_limit", "SELECT * FROM sentinel LIMIT (SELECT 1 FROM pg_sleep(1))"),
    ("pg_sleep_attribute_notation", "SELECT (10::float8).pg_sleep"),
    ("pg_sleep_as_tablesample_method", "SELECT * FROM sentinel TABLESAMPLE pg_sleep(1)"),
    (
        "nextval_in_array_subquery",
        "SELECT * FROM sentinel WHERE id = ANY (ARRAY(SELECT nextval('sentinel_seq')))",
    ),
    (
        "pg_read_file_in_grouping_sets",
        "SELECT count(*) FROM sentinel GROUP BY GROUPING SETS ((pg_read_file('x')))",
    ),
    ("nextval_attribute_notation", "SELECT ('sentinel_seq'::regclass).nextval"),
    ("pg_read_file", "SELECT pg_read_file('/etc/passwd')"),
    ("pg_read_binary_file", "SELECT pg_read_binary_file('/etc/passwd')"),
    ("pg_ls_dir_in_from", "SELECT * FROM pg_ls_dir('.')"),
    ("pg_stat_file", "SELECT (pg_stat_file('postgresql.conf')).size"),
    ("lo_import", "SELECT lo_import('/etc/passwd')"),
    ("lo_export", "SELECT lo_export(1234, '/tmp/x')"),
    ("lo_from_bytea", "SELECT lo_from_bytea(0, 'x')"),
    ("loread_lo_open", "SELECT loread(lo_open(1, 262144), 100)"),
    ("dblink_in_from", "SELECT * FROM dblink('host=evil', 'DELETE FROM sentinel') AS t(x int)"),
    ("dblink_exec", "SELECT dblink_exec('DELETE FROM sentinel')"),
    ("set_config", "SELECT set_config('statement_timeout', '0', false)"),
    (
        "set_config_in_where",
        "SELECT * FROM sentinel WHERE set_config('default_transaction_read_only', 'off', false) IS NOT NULL",
    ),
    ("advisory_lock", "SELECT pg_advisory_lock(42)"),
    ("advisory_xact_lock", "SELECT pg_advisory_xact_lock(42)"),
    ("try_advisory_lock_in_where", "SELECT * FROM sentinel WHERE pg_try_advisory_lock(id)"),
    ("terminate_backend", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"),
    ("cancel_backend", "SELECT pg_cancel_backend(pg_backend_pid())"),
    ("reload_conf", "SELECT pg_reload_conf()"),
    ("rotate_logfile", "SELECT pg_rotate_logfile()"),
    ("switch_wal", "SELECT pg_switch_wal()"),
    ("create_restore_point", "SELECT pg_create_restore_point('x')"),
    ("create_replication_slot", "SELECT * FROM pg_create_logical_replication_slot('s', 'test_decoding')"),
    ("drop_replication_slot", "SELECT pg_drop_replication_slot('s')"),
    ("logical_emit_message", "SELECT pg_logical_emit_message(true, 'x', 'y')"),
    ("pg_notify", "SELECT pg_notify('chan', 'x')"),
    ("nextval", "SELECT nextval('sentinel_seq')"),
    ("setval_in_subquery", "SELECT * FROM sentinel WHERE id = (SELECT setval('sentinel_seq', 1000))"),
    ("txid_current", "SELECT txid_current()"),
    ("pg_current_xact_id", "SELECT pg_current_xact_id()"),
    ("query_to_xml_runs_sql", "SELECT query_to_xml('DELETE FROM sentinel RETURNING 1', true, false, '')"),
    ("table_to_xml", "SELECT table_to_xml('sentinel', true, false, '')"),
    ("ts_stat_runs_sql", "SELECT * FROM ts_stat('SELECT to_tsvector(note) FROM sentinel')"),
    ("comment_hides_second_statement", "SELECT 1 /* harmless */; /* see */ DELETE FROM sentinel"),
    ("line_comment_then_statement", "SELECT 1 -- comment\n; DELETE FROM sentinel"),
    ("nested_block_comment", "SELECT 1 /* outer /* inner */ still comment */; DROP TABLE sentinel"),
    ("dollar_quote_then_delete", "SELECT $$x$$; DELETE FROM sentinel"),
    ("nbsp_around_keywords", "SELECT\u00a01;\u00a0DELETE\u00a0FROM sentinel"),
    ("em_space_around_keywords", "SELECT 1\u2003;\u2003DROP TABLE sentinel"),
    ("bom_prefix", "\ufeffSELECT 1"),
    ("bom_between_statements", "SELECT 1;\ufeffDELETE FROM sentinel"),
    ("zero_width_space_in_name", "SELECT pg_\u200bsleep(1)"),
    ("right_to_left_override", "SELECT note FROM sentinel WHERE note = '\u202e'"),
    ("nul_byte", "SELECT 1\x00; DELETE FROM sentinel"),
    ("control_character", "SELECT 1\x1b; DELETE FROM sentinel"),
    ("empty", ""),
    ("whitespace_only", "  \n\t "),
    ("comment_only", "-- just a comment"),
    ("semicolons_only", ";;"),
    ("one_megabyte", ONE_MEGABYTE_QUERY),
    ("trailing_garbage", "SELECT 1; garbage"),
    ("bind_parameter", "SELECT * FROM sentinel WHERE id = $1"),
    ("syntax_error", "SELEC * FROM sentinel"),
]

MYSQL_HOSTILE: list[tuple[str, str]] = [
    ("two_statements", "SELECT 1; DELETE FROM sentinel"),
    ("commit_then_delete", "COMMIT; DELETE FROM sentinel"),
    ("rollback_then_drop", "ROLLBACK; DROP TABLE sentinel"),
    ("start_transaction_read_write", "START TRANSACTION READ WRITE"),
    ("begin", "BEGIN"),
    ("set_session_timeout", "SET SESSION max_statement_time = 0"),
    ("set_global_read_only", "SET GLOBAL read_only = 0"),
    ("set_session_transaction", "SET SESSION TRANSACTION READ WRITE"),
    ("set_names", "SET NAMES latin1"),
    ("set_statement_for", "SET STATEMENT max_statement_time=0 FOR SELECT 1"),
    ("delete", "DELETE FROM sentinel"),
    ("insert_select", "INSERT INTO sentinel SELECT * FROM sentinel"),
    ("replace", "REPLACE INTO sentinel VALUES (1, 'x')"),
    ("update", "UPDATE sentinel SET note = 'x'"),
    ("cte_delete", "WITH d AS (DELETE FROM sentinel) SELECT 1"),
    ("select_into_outfile", "SELECT * FROM sentinel INTO OUTFILE '/tmp/dbmeta_x'"),
    ("select_into_dumpfile", "SELECT note INTO DUMPFILE '/tmp/dbmeta_x' FROM sentinel"),
    ("select_into_variable", "SELECT id INTO @x FROM sentinel LIMIT 1"),
    ("select_into_table", "SELECT * INTO stolen FROM sentinel"),
    ("variable_assignment", "SELECT @x := id FROM sentinel"),
    ("for_update", "SELECT * FROM sentinel FOR UPDATE"),
    ("lock_in_share_mode", "SELECT * FROM sentinel LOCK IN SHARE MODE"),
    ("for_share_in_subquery", "SELECT * FROM (SELECT * FROM sentinel FOR UPDATE) s"),
    ("sleep", "SELECT SLEEP(10)"),
    ("sleep_in_where_subquery", "SELECT * FROM sentinel WHERE id = (SELECT SLEEP(10))"),
    ("sleep_in_order_by", "SELECT * FROM sentinel ORDER BY SLEEP(1)"),
    ("sleep_in_having", "SELECT COUNT(*) FROM sentinel HAVING SLEEP(1) = 0"),
    ("sleep_in_derived_table", "SELECT * FROM (SELECT SLEEP(10) AS s) AS d"),
    ("sleep_schema_qualified", "SELECT mysql.sleep(1)"),
    ("sleep_backticked", "SELECT `sleep`(10)"),
    ("sleep_mixed_case", "SELECT sLeEp(10)"),
    ("sleep_comment_before_paren", "SELECT SLEEP/**/(10)"),
    ("sleep_odbc_escape", "SELECT {fn SLEEP(10)}"),
    ("benchmark", "SELECT BENCHMARK(100000000, MD5('x'))"),
    ("get_lock", "SELECT GET_LOCK('dbmeta_lock', 10)"),
    ("release_all_locks", "SELECT RELEASE_ALL_LOCKS()"),
    ("load_file", "SELECT LOAD_FILE('/etc/passwd')"),
    ("master_pos_wait", "SELECT MASTER_POS_WAIT('log', 4)"),
    ("master_gtid_wait", "SELECT MASTER_GTID_WAIT('0-1-1', 10)"),
    ("sys_exec", "SELECT sys_exec('id')"),
    ("last_insert_id_setter", "SELECT LAST_INSERT_ID(42)"),
    ("nextval_sequence", "SELECT NEXTVAL(sentinel_seq)"),
    ("next_value_for", "SELECT NEXT VALUE FOR sentinel_seq"),
    ("executable_comment", "SELECT 1 /*!50000 , SLEEP(10) */"),
    ("mariadb_executable_comment", "SELECT 1 /*M!100000 , SLEEP(10) */"),
    ("optimizer_hint_set_var", "SELECT /*+ SET_VAR(max_statement_time=0) */ * FROM sentinel"),
    ("explain_analyze", "EXPLAIN ANALYZE SELECT 1"),
    ("mariadb_analyze_statement", "ANALYZE SELECT * FROM sentinel"),
    ("explain_format_json", "EXPLAIN FORMAT=JSON SELECT 1"),
    ("do_sleep", "DO SLEEP(10)"),
    ("call", "CALL p()"),
    ("handler", "HANDLER sentinel OPEN"),
    ("load_data", "LOAD DATA INFILE '/etc/passwd' INTO TABLE sentinel"),
    ("prepare", "PREPARE s FROM 'DELETE FROM sentinel'"),
    ("execute", "EXECUTE s"),
    ("lock_tables", "LOCK TABLES sentinel WRITE"),
    ("flush_tables", "FLUSH TABLES WITH READ LOCK"),
    ("kill", "KILL 1"),
    ("create_table_select", "CREATE TABLE stolen SELECT * FROM sentinel"),
    ("procedure_analyse", "SELECT * FROM sentinel PROCEDURE ANALYSE()"),
    ("comment_hides_statement", "SELECT 1 /* x */; DROP TABLE sentinel"),
    ("hash_comment_then_statement", "SELECT 1 # comment\n; DROP TABLE sentinel"),
    ("nbsp_around_keywords", "SELECT\u00a01;\u00a0DELETE FROM sentinel"),
    ("em_space_around_keywords", "SELECT 1\u2003;\u2003DROP TABLE sentinel"),
    ("nbsp_hides_function", "SELECT\u00a0SLEEP(10)"),
    ("bom_prefix", "\ufeffSELECT 1"),
    ("nul_byte", "SELECT 1\x00"),
    ("empty", ""),
    ("whitespace_only", " \n "),
    ("one_megabyte", ONE_MEGABYTE_QUERY),
    ("trailing_garbage", "SELECT 1; garbage"),
]

SQLITE_HOSTILE: list[tuple[str, str]] = [
    ("two_statements", "SELECT 1; DELETE FROM sentinel"),
    ("commit_then_delete", "COMMIT; DELETE FROM sentinel"),
    ("begin_immediate", "BEGIN IMMEDIATE"),
    ("attach", "ATTACH DATABASE '/tmp/dbmeta_evil.db' AS evil"),
    ("detach", "DETACH DATABASE main"),
    ("pragma_query_only_off", "PRAGMA query_only = 0"),
    ("pragma_writable_schema", "PRAGMA writable_schema = ON"),
    ("vacuum_into", "VACUUM INTO '/tmp/dbmeta_copy.db'"),
    ("reindex", "REINDEX"),
    ("analyze", "ANALYZE"),
    ("insert_returning", "INSERT INTO sentinel VALUES (9, 'x') RETURNING *"),
    ("replace", "REPLACE INTO sentinel VALUES (1, 'x')"),
    ("delete", "DELETE FROM sentinel"),
    ("cte_delete", "WITH d AS (DELETE FROM sentinel RETURNING id) SELECT * FROM d"),
    ("create_temp_table_as", "CREATE TEMP TABLE t AS SELECT * FROM sentinel"),
    ("drop_table", "DROP TABLE sentinel"),
    ("load_extension", "SELECT load_extension('/tmp/evil.so')"),
    ("load_extension_in_where", "SELECT * FROM sentinel WHERE load_extension('x') IS NULL"),
    ("readfile", "SELECT readfile('/etc/passwd')"),
    ("writefile", "SELECT writefile('/tmp/dbmeta_x', note) FROM sentinel"),
    ("writefile_in_cte", "WITH w AS (SELECT writefile('/tmp/dbmeta_x', 'x') AS n) SELECT n FROM w"),
    ("fts3_tokenizer", "SELECT fts3_tokenizer('simple', x'00')"),
    ("edit", "SELECT edit(note, 'vi') FROM sentinel"),
    ("fsdir_in_from", "SELECT * FROM fsdir('/')"),
    ("eval_extension", "SELECT eval('DELETE FROM sentinel')"),
    ("explain_query_plan", "EXPLAIN QUERY PLAN SELECT 1"),
    ("explain", "EXPLAIN SELECT 1"),
    ("comment_hides_statement", "SELECT 1 /* x */; DROP TABLE sentinel"),
    ("nbsp_around_keywords", "SELECT\u00a01;\u00a0DELETE FROM sentinel"),
    ("em_space", "SELECT 1\u2003;\u2003DELETE FROM sentinel"),
    ("bom_prefix", "\ufeffSELECT 1"),
    ("nul_byte", "SELECT 1\x00"),
    ("empty", ""),
    ("one_megabyte", ONE_MEGABYTE_QUERY),
    ("trailing_garbage", "SELECT 1; garbage"),
]

# Legitimate reads over: customers(id, name, region), orders(id, customer_id, amount, status,
# created_at, data), "odd % table"("order total %", "naïve größe"). Integration tests explain them.
PG_LEGIT: list[tuple[str, str]] = [
    # Lists written without spaces: the parser records where a list starts and ends, which moves when the
    # statement is re-serialised; positions are not meaning.
    ("in_list_without_spaces", "SELECT id FROM orders WHERE status IN ('paid','sent') AND id IN (1,2,3)"),
    ("array_without_spaces", "SELECT ARRAY[1,2,3] AS a, id FROM orders WHERE id = ANY(ARRAY[1,2])"),
    ("row_in_rows_without_spaces", "SELECT 1 FROM orders WHERE (id,amount) IN ((1,2),(3,4))"),
    # Written in SQL syntax, printed as calls (TRIM → pg_catalog.btrim): the same function, another form.
    ("trim", "SELECT trim(status), trim(both 'x' from status), ltrim(status) FROM orders"),
    ("row_constructor", "SELECT ROW(id, amount), (id, amount) FROM orders"),
    ("substring_and_position", "SELECT substring(status from 1 for 2), position('a' in status) FROM orders"),
    (
        "filter_and_sort",
        "SELECT id, amount FROM orders WHERE status = 'paid' AND amount > 10 ORDER BY amount DESC",
    ),
    (
        "cte_join",
        "WITH big AS (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id) "
        "SELECT c.name, b.total FROM customers c JOIN big b ON b.customer_id = c.id ORDER BY b.total DESC LIMIT 10",
    ),
    (
        "recursive_cte",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT sum(n) FROM r",
    ),
    (
        "running_total_window",
        "SELECT id, sum(amount) OVER (PARTITION BY customer_id ORDER BY created_at "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM orders",
    ),
    (
        "rank_window_named",
        "SELECT customer_id, rank() OVER w, lag(amount) OVER w FROM orders WINDOW w AS (PARTITION BY customer_id ORDER BY amount)",
    ),
    (
        "percentile_cont_within_group",
        "SELECT status, percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) AS median FROM orders GROUP BY status",
    ),
    (
        "lateral_top_n",
        "SELECT c.name, o.amount FROM customers c CROSS JOIN LATERAL "
        "(SELECT amount FROM orders WHERE orders.customer_id = c.id ORDER BY amount DESC LIMIT 3) o",
    ),
    (
        "nested_subqueries",
        "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > "
        "(SELECT avg(amount) FROM orders WHERE status = (SELECT min(status) FROM orders)))",
    ),
    (
        "union_intersect_except",
        "SELECT id FROM orders UNION SELECT id FROM customers INTERSECT SELECT 1 EXCEPT SELECT 2",
    ),
    (
        "union_all_order",
        "(SELECT id FROM orders LIMIT 5) UNION ALL (SELECT id FROM customers LIMIT 5) ORDER BY 1",
    ),
    ("values_list", "VALUES (1, 'a'), (2, 'b')"),
    ("values_in_from", "SELECT v.x FROM (VALUES (1), (2)) AS v(x)"),
    (
        "case_expression",
        "SELECT CASE WHEN amount > 100 THEN 'big' WHEN amount > 10 THEN 'mid' ELSE 'small' END AS size, count(*) "
        "FROM orders GROUP BY 1",
    ),
    (
        "exists_not_exists",
        "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) "
        "AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'refunded')",
    ),
    (
        "quoted_identifiers",
        'SELECT "order total %", "naïve größe" FROM "odd % table" WHERE "order total %" > 1',
    ),
    (
        "date_trunc_filter_clause",
        "SELECT date_trunc('month', created_at) AS m, count(*) FILTER (WHERE status = 'paid') FROM orders GROUP BY 1",
    ),
    (
        "distinct_on",
        "SELECT DISTINCT ON (customer_id) customer_id, amount FROM orders ORDER BY customer_id, amount DESC",
    ),
    ("rollup", "SELECT region, count(*) FROM customers GROUP BY ROLLUP (region)"),
    ("count_distinct_coalesce", "SELECT count(DISTINCT customer_id), coalesce(max(amount), 0) FROM orders"),
    ("ilike_and_in", "SELECT * FROM customers WHERE name ILIKE '%smith%' AND region IN ('eu', 'us')"),
    ("json_operators", "SELECT data ->> 'k' FROM orders WHERE data @> '{\"a\": 1}'"),
    (
        "generate_series_join",
        "SELECT d::date, count(o.id) FROM generate_series(now() - interval '7 days', now(), interval '1 day') d LEFT JOIN orders o ON o.created_at::date = d::date GROUP BY 1",
    ),
    ("table_shorthand", "TABLE customers"),
    ("catalog_read", "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r' LIMIT 5"),
    ("comments_and_semicolon", "-- top 5\nSELECT id FROM orders /* fast */ ORDER BY id LIMIT 5;"),
    ("hostile_text_in_string", "SELECT 'COMMIT; DELETE FROM sentinel; SELECT pg_sleep(1)' AS note"),
    ("current_setting_read", "SELECT current_setting('statement_timeout')"),
]

MYSQL_LEGIT: list[tuple[str, str]] = [
    (
        "filter_and_sort",
        "SELECT id, amount FROM orders WHERE status = 'paid' AND amount > 10 ORDER BY amount DESC",
    ),
    (
        "cte_join",
        "WITH big AS (SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id) "
        "SELECT c.name, b.total FROM customers c JOIN big b ON b.customer_id = c.id ORDER BY b.total DESC LIMIT 10",
    ),
    (
        "recursive_cte",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT SUM(n) FROM r",
    ),
    (
        "window",
        "SELECT id, SUM(amount) OVER (PARTITION BY customer_id ORDER BY created_at) AS running FROM orders",
    ),
    (
        "percentile_cont_window",
        "SELECT DISTINCT status, PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY amount) OVER (PARTITION BY status) FROM orders",
    ),
    (
        "nested_subqueries",
        "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > (SELECT AVG(amount) FROM orders))",
    ),
    (
        "union_intersect_except",
        "SELECT id FROM orders UNION SELECT id FROM customers INTERSECT SELECT 1 EXCEPT SELECT 2",
    ),
    (
        "case_group",
        "SELECT CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size, COUNT(*) FROM orders GROUP BY size",
    ),
    (
        "exists",
        "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
    ),
    (
        "quoted_identifiers",
        "SELECT `order total %`, `naïve größe` FROM `odd % table` WHERE `order total %` > 1",
    ),
    ("date_format_percent", "SELECT DATE_FORMAT(created_at, '%Y-%m') AS m, COUNT(*) FROM orders GROUP BY m"),
    ("regexp_and_like_escape", "SELECT * FROM customers WHERE name REGEXP '^a' OR name LIKE '%\\_%'"),
    (
        "group_concat",
        "SELECT customer_id, GROUP_CONCAT(DISTINCT status ORDER BY status SEPARATOR ', ') FROM orders GROUP BY customer_id",
    ),
    ("limit_offset_comma", "SELECT id FROM orders ORDER BY id LIMIT 10, 5"),
    ("interval_arithmetic", "SELECT COUNT(*) FROM orders WHERE created_at > NOW() - INTERVAL 7 DAY"),
    ("hostile_text_in_string", "SELECT 'COMMIT; DELETE FROM sentinel; SELECT SLEEP(1)' AS note"),
    ("comments_and_semicolon", "-- top 5\nSELECT id FROM orders /* fast */ ORDER BY id LIMIT 5;"),
    (
        "derived_table",
        "SELECT t.s FROM (SELECT customer_id, SUM(amount) AS s FROM orders GROUP BY customer_id) AS t WHERE t.s > 5",
    ),
    ("column_named_like_function", "SELECT url, file, input FROM pages"),
    ("ifnull_and_cast", "SELECT IFNULL(amount, 0), CAST(amount AS DECIMAL(10, 2)) FROM orders"),
]

SQLITE_LEGIT: list[tuple[str, str]] = [
    (
        "filter_and_sort",
        "SELECT id, amount FROM orders WHERE status = 'paid' AND amount > 10 ORDER BY amount DESC",
    ),
    (
        "cte_join",
        "WITH big AS (SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id) "
        "SELECT c.name, b.total FROM customers c JOIN big b ON b.customer_id = c.id ORDER BY b.total DESC LIMIT 10",
    ),
    (
        "recursive_cte",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT SUM(n) FROM r",
    ),
    (
        "window",
        "SELECT id, SUM(amount) OVER (PARTITION BY customer_id ORDER BY created_at) AS running FROM orders",
    ),
    (
        "union_intersect_except",
        "SELECT id FROM orders UNION SELECT id FROM customers INTERSECT SELECT 1 EXCEPT SELECT 2",
    ),
    ("values_list", "VALUES (1, 'a'), (2, 'b')"),
    (
        "exists",
        "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
    ),
    (
        "quoted_identifiers",
        'SELECT "order total %", "naïve größe" FROM "odd % table" WHERE "order total %" > 1',
    ),
    ("strftime_percent", "SELECT strftime('%Y-%m', created_at) AS m, COUNT(*) FROM orders GROUP BY m"),
    (
        "case_group",
        "SELECT CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size, COUNT(*) FROM orders GROUP BY 1",
    ),
    ("pragma_table_valued_function", "SELECT name FROM pragma_table_info('orders')"),
    ("hostile_text_in_string", "SELECT 'COMMIT; DELETE FROM sentinel' AS note"),
]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [case_id for case_id, _ in cases]


def _sqls(cases: list[tuple[str, str]]) -> list[str]:
    return [sql for _, sql in cases]


def assert_rejected(verdict: GuardVerdict) -> None:
    assert not verdict.ok
    assert verdict.statement is None
    assert verdict.reason


@pytest.mark.parametrize("sql", _sqls(PG_HOSTILE), ids=_ids(PG_HOSTILE))
def test_postgres_rejects_hostile_input(sql: str) -> None:
    assert_rejected(check_sql(sql, "postgresql"))


@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
@pytest.mark.parametrize("sql", _sqls(MYSQL_HOSTILE), ids=_ids(MYSQL_HOSTILE))
def test_mysql_rejects_hostile_input(sql: str, dialect: str) -> None:
    assert_rejected(check_sql(sql, dialect))


@pytest.mark.parametrize("sql", _sqls(SQLITE_HOSTILE), ids=_ids(SQLITE_HOSTILE))
def test_sqlite_rejects_hostile_input(sql: str) -> None:
    assert_rejected(check_sql(sql, "sqlite"))


@pytest.mark.parametrize("sql", _sqls(PG_LEGIT), ids=_ids(PG_LEGIT))
def test_postgres_accepts_legitimate_read(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason
    assert verdict.statement
    assert verdict.normalized == verdict.statement
    assert check_sql(verdict.statement, "postgresql").statement == verdict.statement


@pytest.mark.parametrize("sql", _sqls(MYSQL_LEGIT), ids=_ids(MYSQL_LEGIT))
def test_mysql_accepts_legitimate_read(sql: str) -> None:
    verdict = check_sql(sql, "mysql")
    assert verdict.ok, verdict.reason
    assert verdict.statement
    assert check_sql(verdict.statement, "mysql").statement == verdict.statement


@pytest.mark.parametrize("sql", _sqls(SQLITE_LEGIT), ids=_ids(SQLITE_LEGIT))
def test_sqlite_accepts_legitimate_read(sql: str) -> None:
    verdict = check_sql(sql, "sqlite")
    assert verdict.ok, verdict.reason
    assert verdict.statement


@pytest.mark.parametrize("name", sorted(POSTGRES_DENIED_FUNCTIONS))
def test_postgres_rejects_every_denied_function(name: str) -> None:
    assert_rejected(check_sql(f"SELECT * FROM orders WHERE {name}(1) IS NULL", "postgresql"))
    assert_rejected(check_sql(f"SELECT * FROM pg_catalog.{name}(1)", "postgresql"))


@pytest.mark.parametrize("prefix", POSTGRES_DENIED_PREFIXES)
def test_postgres_rejects_every_denied_prefix(prefix: str) -> None:
    assert_rejected(check_sql(f'SELECT "{prefix}anything"(1)', "postgresql"))


@pytest.mark.parametrize("dialect", ["mysql", "sqlite", "clickhouse", "trino", "duckdb"])
@pytest.mark.parametrize("name", sorted(OTHER_DENIED_FUNCTIONS) + [f"{p}x" for p in OTHER_DENIED_PREFIXES])
def test_other_dialects_reject_every_denied_function(name: str, dialect: str) -> None:
    assert_rejected(check_sql(f"SELECT {name}(1)", dialect))
    assert_rejected(check_sql(f"SELECT * FROM {name}('x')", dialect))
    assert_rejected(check_sql(f"SELECT a FROM t WHERE a = (SELECT {name.upper()}(1))", dialect))


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("clickhouse", "SELECT * FROM url('http://evil/x', CSV)"),
        ("clickhouse", "SELECT * FROM s3('https://bucket/x')"),
        ("clickhouse", "SELECT * FROM remote('evil:9000', db.t)"),
        ("clickhouse", "SELECT * FROM executable('id', 'TSV', 'x String')"),
        ("clickhouse", "SELECT * FROM mysql('host', 'db', 't', 'u', 'p')"),
        ("clickhouse", "SELECT * FROM file('/etc/passwd', 'LineAsString')"),
        ("clickhouse", "SELECT 1 SETTINGS max_execution_time = 0"),
        ("trino", "SELECT 1; CALL system.runtime.kill_query('x')"),
        ("trino", "INSERT INTO t SELECT 1"),
    ],
)
def test_other_engines_reject_remote_and_side_effect_table_functions(dialect: str, sql: str) -> None:
    assert_rejected(check_sql(sql, dialect))


def test_postgres_statement_is_reserialised_without_comments_or_semicolon() -> None:
    verdict = check_sql("select  id  /* x */ from Orders -- trailing\n;", "postgresql")
    assert verdict.statement == "SELECT id FROM orders"


def test_trailing_comment_after_semicolon_is_accepted_and_dropped() -> None:
    for dialect in ("postgresql", "mysql", "sqlite"):
        verdict = check_sql("SELECT 1; -- done", dialect)
        assert verdict.ok, (dialect, verdict.reason)
        assert verdict.statement is not None
        assert "--" not in verdict.statement and ";" not in verdict.statement


def test_mysql_statement_drops_comments_that_mysql_would_execute() -> None:
    verdict = check_sql("SELECT id /* note */ FROM orders # why\n", "mysql")
    assert verdict.statement == "SELECT id FROM orders"


def test_normalized_form_ignores_whitespace_comments_and_keyword_case() -> None:
    first = check_sql("select id, amount from orders where amount > 1 -- x", "postgresql")
    second = check_sql("SELECT id,\n   amount\nFROM orders /* y */ WHERE amount>1", "postgresql")
    assert first.normalized == second.normalized != ""


def test_normalized_form_of_mysql_ignores_whitespace_and_keyword_case() -> None:
    first = check_sql("select id from orders where amount > 1", "mysql")
    second = check_sql("SELECT   id\nFROM orders # c\nWHERE amount>1", "mysql")
    assert first.normalized == second.normalized != ""


def test_unparsable_query_has_empty_normalized_form_and_a_position() -> None:
    verdict = check_sql("SELECT * FROM WHERE x", "postgresql")
    assert verdict.normalized == ""
    assert verdict.position == 14
    assert verdict.reason is not None and "WHERE" in verdict.reason


def test_sqlglot_syntax_error_reports_character_offset() -> None:
    sql = "SELECT a\nFROM t WHERE ) x"
    verdict = check_sql(sql, "mysql")
    assert not verdict.ok
    assert verdict.position == sql.index(")")


def test_multiple_statements_report_where_the_second_begins() -> None:
    sql = "SELECT 1; DELETE FROM sentinel"
    verdict = check_sql(sql, "postgresql")
    assert verdict.position == sql.index("DELETE")
    assert verdict.reason is not None and "DELETE" in verdict.reason


def test_invisible_character_reason_names_the_code_point_and_offset() -> None:
    verdict = check_sql("SELECT 1;\u00a0DELETE FROM sentinel", "postgresql")
    assert verdict.position == 9
    assert verdict.reason is not None and "U+00A0" in verdict.reason


def test_rejected_reasons_are_specific() -> None:
    cases = {
        "EXPLAIN ANALYZE SELECT 1": "EXPLAIN",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d": "DELETE",
        "SELECT * FROM t FOR UPDATE": "row-locking",
        "SELECT * INTO x FROM t": "INTO",
        "SELECT pg_catalog.pg_sleep(1)": "pg_sleep",
        "COMMIT": "transaction control",
    }
    for sql, needle in cases.items():
        reason = check_sql(sql, "postgresql").reason
        assert reason is not None and needle in reason, (sql, reason)


def test_one_megabyte_query_is_rejected_fast() -> None:
    started = time.perf_counter()
    verdict = check_sql(ONE_MEGABYTE_QUERY, "postgresql")
    assert time.perf_counter() - started < 0.5
    assert verdict.reason is not None and "limit" in verdict.reason


def test_the_length_verdict_says_its_limit_is_fixed_not_a_setting() -> None:
    # README: a limit verdict names the measure, its value and the limit, and the setting: this one has none
    verdict = check_sql("SELECT 1" + " " * 20, "postgresql", max_length=10)
    assert (verdict.ok, verdict.kind) == (False, "limit")
    assert verdict.reason == (
        "query is 28 characters long, over the limit of 10 (a fixed limit of the service, not a profile setting)"
    )


def test_max_length_is_configurable() -> None:
    assert not check_sql("SELECT 1", "postgresql", max_length=5).ok
    assert check_sql("SELECT 1", "postgresql", max_length=8).ok


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_deeply_nested_subqueries_are_rejected_with_a_reason(dialect: str) -> None:
    sql = "SELECT * FROM (" * 1000 + "SELECT 1" + ") AS x" * 1000
    assert_rejected(check_sql(sql, dialect))


def test_long_left_deep_expression_is_rejected_without_crashing_the_process() -> None:
    # pglast recurses in C once per level: 25,000 levels (just under 100 kB) used to overflow an
    # 8 MB thread stack and kill the interpreter. A subprocess keeps a regression from killing pytest.
    script = (
        "from dbmeta_app.preflight.guard import check_sql\n"
        "v = check_sql('SELECT ' + '1 + ' * 24_990 + '1', 'postgresql')\n"
        "print(v.ok, v.reason)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("False ")


def test_postgres_tables_and_columns_are_reported_as_written_without_cte_names() -> None:
    verdict = check_sql(
        "WITH recent AS (SELECT * FROM sales.orders WHERE created_at > now()) "
        "SELECT c.name, r.amount FROM recent r JOIN customers c ON c.id = r.customer_id",
        "postgresql",
    )
    assert verdict.tables == ("sales.orders", "customers")
    assert verdict.columns == ("created_at", "c.name", "r.amount", "c.id", "r.customer_id")


def test_sqlglot_tables_and_columns_are_reported_without_cte_names() -> None:
    verdict = check_sql(
        "WITH recent AS (SELECT * FROM shop.orders) SELECT c.name FROM recent r JOIN customers c ON c.id = r.cid",
        "mysql",
    )
    assert set(verdict.tables) == {"shop.orders", "customers"}
    assert set(verdict.columns) == {"c.name", "c.id", "r.cid"}


def test_rejected_parsable_query_still_reports_tables() -> None:
    verdict = check_sql("SELECT * FROM sales.orders FOR UPDATE", "postgresql")
    assert not verdict.ok
    assert verdict.tables == ("sales.orders",)
    assert verdict.normalized == "SELECT * FROM sales.orders FOR UPDATE"


def test_columns_named_like_denied_functions_are_allowed_outside_calls() -> None:
    assert check_sql("SELECT p.url, p.file, p.input FROM pages p", "postgresql").ok
    assert check_sql("SELECT url, sleep FROM pages", "mysql").ok


def test_is_denied_function_strips_schema_quotes_and_case() -> None:
    assert is_denied_function('pg_catalog."PG_SLEEP"', "postgresql")
    assert is_denied_function("`SLEEP`", "mysql")
    assert is_denied_function("lo_whatever", "postgresql")
    assert not is_denied_function("percentile_cont", "postgresql")
    assert not is_denied_function("url", "postgresql")
    assert is_denied_function("url", "clickhouse")


@pytest.mark.parametrize("dialect", ["mysql", "sqlite", "duckdb", "clickhouse"])
@pytest.mark.parametrize("sql", ["SELEC", "orders", "1 + 1", "count(*)"])
def test_an_expression_that_is_no_statement_is_a_syntax_error_not_unsafe(sql: str, dialect: str) -> None:
    verdict = check_sql(sql, dialect)
    assert (verdict.ok, verdict.kind, verdict.position) == (False, SQL, 0), verdict
    assert verdict.reason is not None and verdict.reason.startswith("syntax error:")


def test_syntax_errors_name_no_parser_class() -> None:
    verdict = check_sql("SELECT 1 * FROM t", "mysql")
    assert verdict.kind == SQL and verdict.reason is not None
    assert "<class" not in verdict.reason and "sqlglot" not in verdict.reason
