"""ClickHouse preflight: the guard's refusals (table functions, system tables, clauses), legitimate analytical
SQL planned on chDB with estimates, and the limits every statement carries."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.db.session import clickhouse_limits, read_only_session
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.suggest import suggest_names

HOSTILE = [
    "SELECT * FROM url('http://169.254.169.254/latest/meta-data', CSV)",
    "SELECT * FROM s3('https://bucket.s3.amazonaws.com/x.csv', 'CSV')",
    "SELECT * FROM s3Cluster('default', 'https://b/x.csv')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM remote('10.0.0.1:9000', system.users)",
    "SELECT * FROM remoteSecure('10.0.0.1:9440', default.t)",
    "SELECT * FROM cluster('default', system.one)",
    "SELECT * FROM clusterAllReplicas('default', system.query_log)",
    "SELECT * FROM mysql('db:3306', 'shop', 'users', 'root', '')",
    "SELECT * FROM postgresql('db:5432', 'shop', 'users', 'postgres', '')",
    "SELECT * FROM jdbc('jdbc:mysql://db/shop', 'users')",
    "SELECT * FROM odbc('DSN=x', 'users')",
    "SELECT * FROM hdfs('hdfs://nn:9000/x', 'CSV', 'a String')",
    "SELECT * FROM executable('run.sh', 'TSV', 'a String')",
    "SELECT * FROM input('a String')",
    "SELECT * FROM azureBlobStorage('http://acct', 'c', 'x.csv')",
    "SELECT * FROM iceberg('s3://b/t')",
    "SELECT * FROM deltaLake('s3://b/t')",
    "SELECT * FROM hudi('s3://b/t')",
    "SELECT * FROM gcs('https://storage.googleapis.com/b/x.csv')",
    "SELECT * FROM mongodb('db:27017', 'd', 'c', 'u', 'p', 'a String')",
    "SELECT * FROM redis('db:6379', 'k', 'k String')",
    "SELECT * FROM sqlite('/tmp/x.db', 't')",
    "SELECT * FROM dictionary('analytics.product_names')",
    "SELECT * FROM merge('system', '^users$')",
    "SELECT * FROM urlCluster('default', 'http://x/y.csv')",
    "SELECT * FROM analytics.users u JOIN url('http://x/y.csv', CSV) AS x ON 1",
    "SELECT (SELECT count() FROM file('x.csv'))",
    "SELECT user_id FROM analytics.users WHERE user_id IN (SELECT * FROM remote('h', db.t))",
    "SELECT * FROM 'data.csv'",
    "SELECT * FROM system.users",
    "SELECT * FROM system.grants",
    "SELECT * FROM system.roles",
    "SELECT * FROM system.query_log",
    "SELECT * FROM system.processes",
    "SELECT * FROM system.settings",
    "SELECT * FROM system.named_collections",
    "SELECT count() FROM analytics.events SETTINGS max_threads = 64",
    "SELECT count() FROM analytics.events SETTINGS readonly = 0",
    "SELECT * FROM analytics.users FORMAT JSONEachRow",
    "SELECT * FROM analytics.users INTO OUTFILE '/tmp/x.csv'",
    "SELECT sleep(3)",
    "SELECT count() FROM analytics.users; DROP TABLE analytics.users",
    "INSERT INTO analytics.users SELECT * FROM analytics.users",
    "ALTER TABLE analytics.users DELETE WHERE 1",
    "SYSTEM SHUTDOWN",
    "SET readonly = 0",
    "SELECT catboostEvaluate('/tmp/model.bin', 1)",
]

LEGIT = [
    "SELECT arrayJoin(tags) AS tag, count() FROM analytics.users GROUP BY tag",
    "SELECT user_id, groupArray(event_type) FROM analytics.events GROUP BY user_id LIMIT 5",
    "SELECT quantiles(0.5, 0.9, 0.99)(duration_s) FROM analytics.sessions",
    "SELECT event_type, count() FROM analytics.events GROUP BY event_type WITH TOTALS",
    "SELECT user_id, event_time FROM analytics.events ORDER BY event_time DESC LIMIT 2 BY user_id",
    "SELECT countIf(event_type = 'purchase'), sumIf(revenue, revenue > 0), uniqIf(user_id, revenue > 0) "
    "FROM analytics.events",
    "SELECT user_id, started_at, row_number() OVER (PARTITION BY user_id ORDER BY started_at) AS n, "
    "sum(duration_s) OVER (PARTITION BY user_id) AS total FROM analytics.sessions",
    "SELECT product_id, price FROM analytics.products FINAL WHERE product_id < 10",
    "SELECT count() FROM analytics.events SAMPLE 0.1",
    "SELECT toStartOfMonth(event_time) AS m, uniqExact(user_id) FROM analytics.events "
    "WHERE event_type = 'purchase' AND event_time >= now() - INTERVAL 30 DAY GROUP BY m ORDER BY m",
    "SELECT utm.source, count() FROM analytics.sessions ARRAY JOIN utm GROUP BY utm.source",
    "SELECT device.type, traits['industry'], count() FROM analytics.sessions AS s "
    "JOIN analytics.users AS u USING user_id GROUP BY 1, 2",
    "SELECT dictGet('analytics.product_names', 'name', toUInt64(1))",
    "SELECT number FROM numbers(10)",
    "SELECT argMax(plan, signup_at), topK(3)(country) FROM analytics.users",
    "SELECT day, sum(revenue) FROM analytics.daily_revenue GROUP BY day ORDER BY day",
    "SELECT * FROM analytics.v_user_lifetime_value ORDER BY lifetime_value_usd DESC LIMIT 10",
    "SELECT count() FROM analytics.events WHERE user_id GLOBAL IN (SELECT user_id FROM analytics.users)",
    "WITH buyers AS (SELECT DISTINCT user_id FROM analytics.orders) SELECT count() FROM buyers",
    "SELECT name, engine FROM system.tables WHERE database = 'analytics'",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_clickhouse_sql_is_refused(sql: str) -> None:
    for dialect in ("chdb", "clickhousedb"):
        verdict = check_sql(sql, dialect)
        assert not verdict.ok and verdict.statement is None, (dialect, sql)


@pytest.mark.parametrize("sql", LEGIT)
def test_legitimate_analytical_clickhouse_sql_passes_the_guard(sql: str) -> None:
    verdict = check_sql(sql, "chdb")
    assert verdict.ok, verdict.reason


def test_refusals_say_what_and_why() -> None:
    assert "url()" in (check_sql("SELECT * FROM url('http://x', CSV)", "chdb").reason or "")
    assert "system.users" in (check_sql("SELECT * FROM system.users", "chdb").reason or "")
    assert "SETTINGS" in (check_sql("SELECT 1 SETTINGS max_threads = 1", "chdb").reason or "")
    assert "FORMAT" in (check_sql("SELECT 1 FORMAT JSON", "chdb").reason or "")


def test_the_limits_clause_is_read_only_and_bounded() -> None:
    clause = clickhouse_limits(2500)
    assert clause.startswith(" SETTINGS readonly = 2, max_execution_time = 3,")
    for name in ("max_memory_usage", "max_result_rows", "max_result_bytes"):
        assert name in clause
    # chDB plans in the service's own process: a tighter memory bound there
    assert "max_memory_usage = 1000000000" in clause
    assert "max_memory_usage = 256000000" in clickhouse_limits(2500, in_process=True)


# --- on chDB ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(chdb_url: str) -> Iterator[Engine]:
    eng = sa.create_engine(chdb_url)
    yield eng
    eng.dispose()


def _load_sample_dictionary(engine: Engine) -> None:
    """A preflight never loads a dictionary (audit B 3): refused while it is not loaded, used once the operator
    loads it."""
    with engine.connect() as conn:
        status = conn.exec_driver_sql(
            "SELECT status FROM system.dictionaries WHERE database = 'analytics' AND name = 'product_names'"
        ).scalar()
    if status == "NOT_LOADED":
        refused = run_explain(engine, "SELECT dictGet('analytics.product_names', 'name', toUInt64(1))")
        assert not refused.ok and refused.error_kind == "unsafe", refused
        assert "product_names is not loaded" in (refused.error or ""), refused.error
    with engine.connect() as conn:
        conn.exec_driver_sql("SYSTEM RELOAD DICTIONARY analytics.product_names")


@pytest.mark.integration
@pytest.mark.parametrize("sql", LEGIT)
def test_legitimate_sql_is_planned_by_clickhouse(engine: Engine, sql: str) -> None:
    if "dictGet" in sql:
        _load_sample_dictionary(engine)
    result = run_explain(engine, sql)
    assert result.ok, result.error
    assert isinstance(result.plan, dict) and result.plan["plan"]


@pytest.mark.integration
def test_explain_reports_parts_rows_marks_and_whether_the_sorting_key_narrows_the_read(
    engine: Engine,
) -> None:
    full = run_explain(
        engine, "SELECT count() FROM analytics.events WHERE page_url = '/'", large_table_rows=1000
    )
    assert full.ok and full.estimated_rows == 30_000
    (estimate,) = full.plan["estimate"]
    assert estimate["table"] == "analytics.events" and estimate["parts"] >= 1 and estimate["marks"] >= 1
    assert any("does not filter on the sorting key" in w for w in full.warnings)
    (usage,) = full.plan["indexes"]
    assert usage["table"] == "analytics.events" and usage["primarykey"]["condition"] == "true"

    keyed = run_explain(
        engine, "SELECT count() FROM analytics.page_views WHERE session_id = 5", large_table_rows=1000
    )
    assert keyed.ok and keyed.estimated_rows is not None
    primary = keyed.plan["indexes"][0]["primarykey"]
    assert primary["keys"] == ["session_id"]
    initial, selected = primary["granules"]
    assert selected < initial  # the sorting key narrowed the read
    assert not [w for w in keyed.warnings if "page_views" in w]


@pytest.mark.integration
def test_an_unknown_column_is_a_sql_error_not_a_crash(engine: Engine) -> None:
    result = run_explain(engine, "SELECT nosuch FROM analytics.users")
    assert not result.ok and result.error_kind == "sql"
    assert "nosuch" in (result.error or "")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        ("SELECT * FROM evnts", "did you mean analytics.events?"),
        ("SELECT * FROM analytics.evnts", "did you mean analytics.events?"),
        ("SELECT evnt_type FROM analytics.events", "did you mean event_type (analytics.events)?"),
        ("SELECT e.evnt_type FROM analytics.events e", "did you mean event_type (analytics.events)?"),
    ],
)
def test_an_unknown_name_is_answered_without_the_services_settings_and_with_a_suggestion(
    engine: Engine, sql: str, hint: str
) -> None:
    """Audit S14: the error names the caller's problem (not the SETTINGS the service appends, mangled), and the
    suggester reads ClickHouse's unknown table / identifier errors like the other dialects'."""
    tables = {
        "analytics.events": ["event_type", "user_id", "page_url"],
        "analytics.users": ["user_id", "email"],
    }
    names = [*tables, "events", "users", "analytics", *(c for cs in tables.values() for c in cs)]
    result = run_explain(engine, sql, names=lambda: names)
    assert not result.ok and result.error_kind == "sql", result
    error = result.error or ""
    assert "SETTINGS" not in error and "readonly" not in error and "max_execution_time" not in error, error
    assert "'…'" not in error, error  # no masked hint left as noise
    assert error.endswith(")") and "In scope " + sql.replace("events e", "events AS e") in error, error
    assert suggest_names(error, tables, tables, referenced_tables=["analytics.events"]) == hint


@pytest.mark.integration
def test_explain_refuses_hostile_sql_before_the_database(engine: Engine) -> None:
    result = run_explain(engine, "SELECT * FROM file('/etc/passwd', 'LineAsString')")
    assert not result.ok and result.error_kind == "unsafe"


@pytest.mark.integration
def test_every_statement_runs_read_only_with_time_memory_and_result_limits(engine: Engine) -> None:
    with read_only_session(engine, 2000) as session:
        row = session.run(
            "SELECT getSetting('readonly'), getSetting('max_execution_time'), getSetting('max_memory_usage'), "
            "getSetting('max_result_rows')"
        ).one()
    assert [int(v) for v in row] == [2, 2, 256_000_000, 10_000]  # chDB: the in-process bound
    with read_only_session(engine, 2000) as session, pytest.raises(sa.exc.DBAPIError):
        session.run("INSERT INTO analytics.campaigns (campaign_id) VALUES (999)")
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT count() FROM analytics.campaigns WHERE campaign_id = 999").scalar()
            == 0
        )


def test_a_dictionary_named_by_an_expression_is_refused() -> None:
    verdict = check_sql("SELECT dictGet(concat('analytics.', 'product_names'), 'name', toUInt64(1))", "chdb")
    assert not verdict.ok and "string literal" in (verdict.reason or "")


@pytest.mark.integration
def test_a_dictionary_with_a_source_outside_the_database_is_never_loaded(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP DICTIONARY IF EXISTS default.i17a_remote")
        conn.exec_driver_sql(
            "CREATE DICTIONARY default.i17a_remote (k UInt64, v String) PRIMARY KEY k "
            "SOURCE(HTTP(URL 'http://127.0.0.1:9/never.tsv' FORMAT 'TabSeparated')) "
            "LIFETIME(0) LAYOUT(HASHED())"
        )
    try:
        refused = run_explain(engine, "SELECT dictGet('default.i17a_remote', 'v', toUInt64(1))")
        assert not refused.ok and refused.error_kind == "unsafe"
        assert "i17a_remote (source HTTP)" in (refused.error or "")
        unknown = run_explain(engine, "SELECT dictHas('analytics.nosuch', toUInt64(1))")
        assert not unknown.ok and "not a dictionary of this database" in (unknown.error or "")
        _load_sample_dictionary(engine)
        local = run_explain(engine, "SELECT dictGet('analytics.product_names', 'name', toUInt64(1))")
        assert local.ok, local.error
        with engine.connect() as conn:
            status = conn.exec_driver_sql(
                "SELECT status FROM system.dictionaries WHERE database = 'default' AND name = 'i17a_remote'"
            ).scalar()
        assert status == "NOT_LOADED"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql("DROP DICTIONARY IF EXISTS default.i17a_remote")


@pytest.fixture
def reach_db(engine: Engine) -> Iterator[str]:
    name = "i17a_reach"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
        conn.exec_driver_sql(
            f"CREATE TABLE {name}.remote (s String) ENGINE = URL('http://127.0.0.1:9/never.csv', CSV)"
        )
        conn.exec_driver_sql(f"CREATE VIEW {name}.v_remote AS SELECT s FROM {name}.remote")
        conn.exec_driver_sql(
            f"CREATE VIEW {name}.v_fn AS SELECT * FROM url('http://127.0.0.1:9/x.csv', CSV, 'a String')"
        )
        conn.exec_driver_sql(f"CREATE VIEW {name}.v_local AS SELECT user_id FROM analytics.users")
        conn.exec_driver_sql(f"CREATE VIEW {name}.v_v_local AS SELECT * FROM {name}.v_local")
    yield name
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("table", "why"),
    [
        ("remote", "uses the URL engine"),
        ("v_remote", "uses the URL engine"),
        ("v_fn", "view i17a_reach.v_fn reads outside the database"),
    ],
)
def test_tables_and_views_that_read_outside_the_database_are_not_planned(
    engine: Engine, reach_db: str, table: str, why: str
) -> None:
    result = run_explain(engine, f"SELECT count() FROM {reach_db}.{table}")
    assert not result.ok and result.error_kind == "unsafe"
    assert why in (result.error or "")


@pytest.mark.integration
def test_views_over_local_tables_and_materialized_views_are_planned(engine: Engine, reach_db: str) -> None:
    for sql in (
        f"SELECT count() FROM {reach_db}.v_v_local",
        "SELECT sum(revenue) FROM analytics.mv_daily_revenue",
        "SELECT sum(events) FROM analytics.mv_events_hourly",
    ):
        result = run_explain(engine, sql)
        assert result.ok, (sql, result.error)


@pytest.mark.integration
@pytest.mark.parametrize(("levels", "accepted"), [(8, True), (9, False)])
def test_views_are_followed_up_to_eight_levels(engine: Engine, levels: int, accepted: bool) -> None:
    name = f"i17a_chain{levels}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name}.t (x UInt8) ENGINE = MergeTree ORDER BY x")
        for level in range(levels, 0, -1):  # v1 reads v2 … reads t
            below = "t" if level == levels else f"v{level + 1}"
            conn.exec_driver_sql(f"CREATE VIEW {name}.v{level} AS SELECT x FROM {name}.{below}")
    try:
        result = run_explain(engine, f"SELECT x FROM {name}.v1")
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    if accepted:
        assert result.ok, result.error
    else:
        assert result.error_kind == "unsafe" and "nested more than 8 levels" in (result.error or ""), result


@pytest.mark.integration
def test_a_scalar_subquery_chdb_evaluates_while_planning_is_held_to_the_in_process_bound(
    engine: Engine,
) -> None:
    """EXPLAIN runs the subquery in this process: at the server's 1 GB bound it took +1 GB of RSS (measured)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_explain(engine, "SELECT 1 WHERE has((SELECT groupArray(number) FROM numbers(100000000)), 5)")
    assert not result.ok, result
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 600, grown_mb


# --- user-defined functions: routines stored in the database ----------------------------------------

UDF_DB = "i17b_udf"


@pytest.fixture
def udf_db(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A database whose UDFs read a file and load an HTTP dictionary, reached directly, through views (also
    through a view a CTE of the same name hides), through an ALIAS column; and a UDF ``Lower`` that shadows
    the case-insensitive built-in only when spelled exactly so. Yields (database, the secret of the file).

    ClickHouse stores a view or ALIAS column with the SQL UDFs it calls inlined (``i17b_rf(p)`` is kept as
    ``file(p)``): those are refused for what the body calls."""
    secret = f"i17b-secret-{uuid.uuid4().hex}"
    path = tmp_path_factory.mktemp("udf") / "secret.txt"
    path.write_text(secret + "\n")
    statements = [
        f"CREATE DATABASE {UDF_DB}",
        "CREATE FUNCTION i17b_rf AS (p) -> file(p)",
        "CREATE FUNCTION i17b_dg AS (n) -> dictGet(n, 'v', toUInt64(1))",
        "CREATE FUNCTION Lower AS (s) -> concat('udf:', s)",
        f"CREATE DICTIONARY {UDF_DB}.hd (k UInt64, v String) PRIMARY KEY k "
        "SOURCE(HTTP(URL 'http://127.0.0.1:9/never.tsv' FORMAT 'TabSeparated')) LIFETIME(0) LAYOUT(HASHED())",
        f"CREATE TABLE {UDF_DB}.t (x String) ENGINE = MergeTree ORDER BY x",
        f"CREATE TABLE {UDF_DB}.t_alias (x String, y String ALIAS i17b_rf('{path}'), z String ALIAS upper(x)) "
        "ENGINE = MergeTree ORDER BY x",
        f"CREATE TABLE {UDF_DB}.t_builtin (x String, z String ALIAS upper(x)) ENGINE = MergeTree ORDER BY x",
        f"CREATE VIEW {UDF_DB}.v_udf AS SELECT i17b_rf('{path}') AS s",
        f"CREATE VIEW {UDF_DB}.v_v_udf AS SELECT s FROM {UDF_DB}.v_udf",
        f"CREATE VIEW {UDF_DB}.v_file AS SELECT file('{path}') AS s",
        f"CREATE VIEW {UDF_DB}.v_builtin AS SELECT lower(x) AS l, LOWER(x) AS u, length(x) AS n FROM {UDF_DB}.t",
        f"CREATE VIEW default.i17b_v_udf AS SELECT i17b_rf('{path}') AS s",
    ]
    with engine.connect() as conn:
        _drop_udf_db(conn)
        for statement in statements:
            conn.exec_driver_sql(statement)
    try:
        yield UDF_DB, secret
    finally:
        with engine.connect() as conn:
            _drop_udf_db(conn)


def _drop_udf_db(conn: sa.Connection) -> None:
    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {UDF_DB}")
    conn.exec_driver_sql("DROP VIEW IF EXISTS default.i17b_v_udf")
    for name in ("i17b_rf", "i17b_dg", "Lower"):
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT toUInt32(i17b_rf('/etc/hostname'))", "user-defined function i17b_rf()"),
        (f"SELECT * FROM {UDF_DB}.t WHERE x = i17b_dg('{UDF_DB}.hd')", "user-defined function i17b_dg()"),
        ("SELECT Lower('A')", "user-defined function Lower()"),  # exactly the UDF's spelling: the UDF runs
        (
            f"SELECT toUInt32(s) FROM {UDF_DB}.v_udf",
            f"view {UDF_DB}.v_udf reads outside the database: function file()",
        ),
        (f"SELECT toUInt32(s) FROM {UDF_DB}.v_v_udf", f"view {UDF_DB}.v_udf reads outside the database"),
        (
            f"SELECT toUInt32(y) FROM {UDF_DB}.t_alias",
            f"column {UDF_DB}.t_alias.y reads outside the database: function file()",
        ),
        # a non-recursive CTE's body reads the view of the same name, not itself
        (
            "WITH i17b_v_udf AS (SELECT s FROM i17b_v_udf) SELECT toUInt32(s) FROM i17b_v_udf",
            "view default.i17b_v_udf reads outside the database",
        ),
        (f"SELECT toUInt32(s) FROM {UDF_DB}.v_file", f"view {UDF_DB}.v_file reads outside the database"),
    ],
)
def test_a_user_defined_function_is_refused_wherever_the_query_reaches_it(
    engine: Engine, udf_db: tuple[str, str], sql: str, why: str
) -> None:
    database, secret = udf_db
    result = run_explain(engine, sql)
    assert not result.ok and result.error_kind == "unsafe", result
    assert why in (result.error or ""), result.error
    if "user-defined" in why:
        assert "the service cannot vouch for what it runs" in (result.error or "")
    assert secret not in (result.error or "")
    with engine.connect() as conn:
        status = conn.exec_driver_sql(
            f"SELECT status FROM system.dictionaries WHERE database = '{database}' AND name = 'hd'"
        ).scalar()
    assert status == "NOT_LOADED"  # the HTTP source was never fetched


@pytest.mark.integration
def test_built_ins_views_and_alias_columns_over_built_ins_are_still_planned(
    engine: Engine, udf_db: tuple[str, str]
) -> None:
    database, _ = udf_db
    for sql in (
        "SELECT lower('A'), LOWER('A')",  # the built-in: the UDF is spelled Lower, and UDF names are exact
        f"SELECT l, u, n FROM {database}.v_builtin",
        f"SELECT z FROM {database}.t_builtin WHERE x = 'a'",
        "WITH buyers AS (SELECT DISTINCT user_id FROM analytics.orders) SELECT count() FROM buyers",
    ):
        result = run_explain(engine, sql)
        assert result.ok, (sql, result.error)


def test_a_view_or_column_calling_an_executable_user_defined_function_is_refused() -> None:
    """Executable UDFs are not inlined into stored definitions (SQL ones are) and chDB cannot create one without
    a server configuration: the catalog's answers for one are given here."""
    from dbmeta_app.preflight.dialects.clickhouse import reach_problem

    def catalog(
        views: dict[str, str], defaults: dict[str, str], udfs: set[str]
    ) -> Callable[[str], list[Any]]:
        def query(sql: str) -> list[Any]:
            if sql.startswith("SELECT currentDatabase()"):
                return [("db",)]
            if "FROM system.tables" in sql:
                rows = [("db", name, "View", "", text, "") for name, text in views.items()]
                return [*rows, ("db", "t", "MergeTree", "", "", "default")]
            if "FROM system.columns" in sql:
                return [("db", "t", column, text) for column, text in defaults.items()]
            if "FROM system.functions" in sql:
                return [(name,) for name in sorted(udfs) if f"'{name}'" in sql]
            if "system.storage_policies" in sql:
                return [("default", "default", "Local")]
            raise AssertionError(sql)

        return query

    exec_view = catalog({"v": "SELECT run_it(x) AS s FROM db.t"}, {}, {"run_it"})
    assert reach_problem(exec_view, "SELECT s FROM db.v") == (
        "view db.v calls user-defined function run_it(), which is not allowed in a preflight query: the service "
        "cannot vouch for what it runs"
    )
    exec_column = catalog({}, {"y": "run_it(x)"}, {"run_it"})
    assert "column db.t.y calls user-defined function run_it()" in (
        reach_problem(exec_column, "SELECT x FROM db.t") or ""
    )
    # the same names with no UDF behind them: nothing to refuse
    assert (
        reach_problem(
            catalog({"v": "SELECT upper(x) AS s FROM db.t"}, {"y": "lower(x)"}, set()), "SELECT s FROM db.v"
        )
        is None
    )


# --- the caller's own constant columns: aliases resolved anywhere, renames of any depth ------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 100000007 AS n, length(repeat('x', n))",
        "SELECT length(repeat('x', n)) AS l, 100000007 AS n",  # an alias defined later
        "SELECT 1 WHERE length(repeat('x', n)) > 0 AND (100000007 AS n) > 0",  # defined in WHERE
        "WITH 100000007 AS n SELECT length(repeat('x', n))",
        "SELECT 100000007 AS n, * FROM (SELECT length(repeat('x', n)) AS l)",  # read in a subquery in FROM
        "SELECT length(repeat('x', d.c4)) FROM (SELECT c.c3 AS c4 FROM (SELECT b.c2 AS c3 FROM "
        "(SELECT a.c1 AS c2 FROM (SELECT z.c0 AS c1 FROM (SELECT 100000007 AS c0) z) a) b) c) d",
    ],
)
def test_a_constant_the_query_aliases_or_renames_is_refused_before_chdb_plans(
    engine: Engine, sql: str
) -> None:
    """ClickHouse resolves an alias anywhere in the query and folds the call while analysing it, in this process for
    chDB (a 20 MB repeat: +20 MB of RSS, measured): refused before the EXPLAIN."""
    verdict = check_sql(sql, "chdb")
    assert not verdict.ok and verdict.kind == "limit", verdict
    result = run_explain(engine, sql)
    assert not result.ok and result.error_kind == "limit", result
    assert "preflight.max_constant_bytes" in (result.error or ""), result.error
    small = run_explain(engine, sql.replace("100000007", "40"))
    assert small.ok, small.error


def test_a_table_named_outside_from_is_a_reference() -> None:
    """Audit B 7: ``x IN db.t`` / ``GLOBAL NOT IN (db.t)`` / joinGet('db.t', …) read the table (sqlglot sees a
    column or a string); every name of the statement is a candidate, the catalog keeps the relations."""
    import sqlglot

    from dbmeta_app.preflight.dialects.clickhouse import table_references

    for sql, ref in [
        ("SELECT (SELECT (1, 'x') IN w.urltab) AS x", ("w", "urltab")),
        ("SELECT id FROM t WHERE (id, v) GLOBAL NOT IN (w.urltab)", ("w", "urltab")),
        ("SELECT id FROM t WHERE id IN urltab", (None, "urltab")),
        ("SELECT joinGet('w.j', 'v', toUInt64(1))", ("w", "j")),
        ("SELECT joinGet(w.j, 'v', toUInt64(1))", ("w", "j")),
    ]:
        assert ref in table_references(sqlglot.parse_one(sql, read="clickhouse")), sql
    verdict = check_sql("SELECT joinGet(concat('w.', 'j'), 'v', toUInt64(1))", "chdb")
    assert not verdict.ok and "string literal or a name" in (verdict.reason or "")
