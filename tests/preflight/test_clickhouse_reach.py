"""ClickHouse preflight: what planning would open (dictionaries, materialized view targets, storage disks, views the
service cannot parse) is checked through the catalog first, and a refusal never reaches outside the database.

Each hostile object points at a canary (HTTP or TCP on 127.0.0.1, an ephemeral port, served by a thread of the
test): a refusal is not enough, nothing may connect to it either.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.preflight.explain import run_explain

DB = "i31_reach"


class _HttpCanary:
    def __init__(self) -> None:
        self.paths: list[str] = []
        seen = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = b"" if self.path.endswith(".index") else b"1,canary\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET
            do_HEAD = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


class _TcpCanary:
    def __init__(self) -> None:
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture(scope="module")
def engine(chdb_url: str) -> Iterator[Engine]:
    eng = sa.create_engine(chdb_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def http_canary() -> Iterator[_HttpCanary]:
    canary = _HttpCanary()
    yield canary
    canary.server.shutdown()


@pytest.fixture(scope="module")
def tcp_canary() -> Iterator[_TcpCanary]:
    canary = _TcpCanary()
    yield canary
    canary.sock.close()


@pytest.fixture(scope="module")
def reach(engine: Engine, http_canary: _HttpCanary, tcp_canary: _TcpCanary) -> Iterator[str]:
    url = http_canary.url
    statements = [
        f"CREATE DATABASE {DB}",
        f"CREATE TABLE {DB}.src (id UInt64, v String) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {DB}.src VALUES (1, 'a'), (2, 'b')",
        f"CREATE TABLE {DB}.urltab (id UInt64, v String) ENGINE = URL('{url('urltab_engine')}', CSV)",
        # 5: a CLICKHOUSE source without HOST whose QUERY reads a URL, or whose TABLE is a URL table
        f"CREATE DICTIONARY {DB}.d_query (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE(QUERY "
        f"'SELECT id, v FROM url(''{url('dict_query')}'', CSV, ''id UInt64, v String'')')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        f"CREATE DICTIONARY {DB}.d_table (id UInt64, v String) PRIMARY KEY id "
        f"SOURCE(CLICKHOUSE(TABLE 'urltab' DB '{DB}')) LAYOUT(FLAT()) LIFETIME(0)",
        f"CREATE DICTIONARY {DB}.d_where (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE(TABLE 'src' "
        f"DB '{DB}' WHERE 'id IN (SELECT id FROM url(''{url('dict_where')}'', CSV, ''id UInt64''))')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        # CREATE TABLE evaluates the ALIAS expression: it loads this dictionary (hence a dictionary of its own)
        f"CREATE DICTIONARY {DB}.d_alias (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE(QUERY "
        f"'SELECT id, v FROM url(''{url('dict_alias')}'', CSV, ''id UInt64, v String'')')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        f"CREATE TABLE {DB}.t_alias (id UInt64, a String ALIAS dictGet('{DB}.d_alias', 'v', toUInt64(1))) "
        "ENGINE = MergeTree ORDER BY id",
        # CREATE VIEW folds the dictGet too: it loads this dictionary
        f"CREATE DICTIONARY {DB}.d_view (id UInt64, v String) PRIMARY KEY id "
        f"SOURCE(CLICKHOUSE(TABLE 'urltab' DB '{DB}')) LAYOUT(FLAT()) LIFETIME(0)",
        f"CREATE VIEW {DB}.vd AS SELECT dictGet('{DB}.d_view', 'v', toUInt64(1)) AS v",
        # 19: HOST after a ')' inside the QUERY string
        f"CREATE DICTIONARY {DB}.d_host (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE("
        f"QUERY 'SELECT toUInt64(1) AS id, (''x'') AS v' HOST '127.0.0.1' PORT {tcp_canary.port} USER 'default')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        # 14: a local source whose load costs what its query makes (kept small here: the mechanism, not the size)
        f"CREATE DICTIONARY {DB}.d_big (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE(QUERY "
        "'SELECT number AS id, repeat(''x'', 100) AS v FROM numbers(200000)')) LAYOUT(HASHED()) LIFETIME(0)",
        f"CREATE DICTIONARY {DB}.d_small (id UInt64, v String) PRIMARY KEY id "
        f"SOURCE(CLICKHOUSE(TABLE 'src' DB '{DB}')) LAYOUT(HASHED()) LIFETIME(0)",
        # audit B 3: a dictionary over a small table whose loaded size the catalog does not tell (LowCardinality,
        # ALIAS attribute), and a table whose ALIAS column calls a dictionary not loaded (the sample read)
        f"CREATE TABLE {DB}.lc (id UInt64, v LowCardinality(String)) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {DB}.lc SELECT number, repeat('y', 100) FROM numbers(5)",
        f"CREATE DICTIONARY {DB}.d_lc (id UInt64, v String) PRIMARY KEY id "
        f"SOURCE(CLICKHOUSE(TABLE 'lc' DB '{DB}')) LAYOUT(HASHED()) LIFETIME(0)",
        f"CREATE TABLE {DB}.al (id UInt64, v String ALIAS repeat(toString(id), 100)) ENGINE = MergeTree ORDER BY id",
        f"INSERT INTO {DB}.al SELECT number FROM numbers(5)",
        f"CREATE DICTIONARY {DB}.d_al (id UInt64, v String) PRIMARY KEY id "
        f"SOURCE(CLICKHOUSE(TABLE 'al' DB '{DB}')) LAYOUT(HASHED()) LIFETIME(0)",
        f"CREATE DICTIONARY {DB}.d_col (id UInt64, v String) PRIMARY KEY id "
        f"SOURCE(CLICKHOUSE(TABLE 'src' DB '{DB}')) LAYOUT(HASHED()) LIFETIME(0)",
        f"CREATE TABLE {DB}.t_dcol (id UInt64, a String ALIAS dictGet('{DB}.d_col', 'v', id)) "
        "ENGINE = MergeTree ORDER BY id",
        # audit B 7: ClickHouse's "x IN db.table" reads the table (a scalar subquery builds the set while planning)
        f"CREATE VIEW {DB}.vin AS SELECT (SELECT (toUInt64(1), 'x') IN {DB}.urltab) AS x",
        f"CREATE TABLE {DB}.cols (id UInt64, src String, urltab String) ENGINE = MergeTree ORDER BY id",
        f"CREATE VIEW {DB}.vcols AS SELECT src FROM {DB}.cols",
        f"CREATE VIEW {DB}.vcolu AS SELECT urltab FROM {DB}.cols",
        f"CREATE TABLE {DB}.j (id UInt64, v String) ENGINE = Join(ANY, LEFT, id)",
        # 20: a materialized view named with " AS " writing to a URL table
        f"CREATE MATERIALIZED VIEW {DB}.`m AS x` TO {DB}.urltab AS SELECT id, v FROM {DB}.src",
        # 6: a view sqlglot cannot parse
        f"CREATE VIEW {DB}.vapply AS SELECT * APPLY toString FROM {DB}.src",
    ]
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DB}")
        for statement in statements:
            conn.exec_driver_sql(statement)
    http_canary.paths.clear()
    try:
        yield DB
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DB}")


def _status(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.exec_driver_sql(
                f"SELECT status FROM system.dictionaries WHERE database = '{DB}' AND name = '{name}'"
            ).scalar()
        )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "dictionary"),
    [
        (f"SELECT dictGet('{DB}.d_query', 'v', toUInt64(1))", "d_query"),
        (f"SELECT dictGet('{DB}.d_table', 'v', toUInt64(1))", "d_table"),
        (f"SELECT dictGet('{DB}.d_where', 'v', toUInt64(1))", "d_where"),
        (f"SELECT v FROM {DB}.vd", "d_view"),
        (f"SELECT a FROM {DB}.t_alias", "d_alias"),
        (f"SELECT * FROM {DB}.d_query", "d_query"),
    ],
    ids=["query_url", "table_url", "where_url", "view", "alias_column", "dictionary_table"],
)
def test_a_dictionary_whose_source_reads_a_url_is_refused_and_never_loaded(
    engine: Engine, reach: str, http_canary: _HttpCanary, sql: str, dictionary: str
) -> None:
    """Finding 5: a CLICKHOUSE source with no HOST is not local when what it reads is not."""
    result = run_explain(engine, sql)
    assert not result.ok and result.error_kind == "unsafe", result
    error = result.error or ""
    assert dictionary in error or f"{DB}.urltab uses the URL engine" in error, error
    assert http_canary.paths == []
    if dictionary not in ("d_alias", "d_view"):  # loaded by the CREATE of the table, the view
        assert _status(engine, dictionary) == "NOT_LOADED"


@pytest.mark.integration
def test_a_dictionary_source_s_host_after_a_parenthesis_is_seen(
    engine: Engine, reach: str, tcp_canary: _TcpCanary
) -> None:
    """Finding 19: the source is tokenised, string literals respected, not cut at the first ')'."""
    result = run_explain(engine, f"SELECT dictGet('{DB}.d_host', 'v', toUInt64(1))")
    assert not result.ok and result.error_kind == "unsafe", result
    assert "d_host (source CLICKHOUSE with HOST" in (result.error or ""), result.error
    assert tcp_canary.connections == 0


@pytest.mark.integration
@pytest.mark.parametrize("dictionary", ["d_big", "d_small", "d_lc", "d_al"])
def test_a_preflight_never_loads_a_dictionary(engine: Engine, reach: str, dictionary: str) -> None:
    """Finding 14 and audit B 3: the loader ignores the statement's memory limit, and the catalog's sizes of a
    source table do not bound the load (a LowCardinality column is stored once per part, an ALIAS one not at all):
    a dictionary that is not loaded is refused, whatever its source, and stays unloaded."""
    result = run_explain(engine, f"SELECT length(dictGet('{DB}.{dictionary}', 'v', toUInt64(1))) AS n")
    assert not result.ok and result.error_kind == "unsafe", result
    assert dictionary in (result.error or "") and "not loaded" in (result.error or ""), result.error
    assert _status(engine, dictionary) == "NOT_LOADED"
    # through a Dictionary table, a view or an IN-table read: the same
    for sql in (
        f"SELECT * FROM {DB}.{dictionary}",
        f"SELECT (SELECT (toUInt64(1), 'y') IN {DB}.{dictionary}) AS x",
    ):
        again = run_explain(engine, sql)
        assert not again.ok and again.error_kind == "unsafe", (sql, again)
    assert _status(engine, dictionary) == "NOT_LOADED"


@pytest.mark.integration
def test_a_dictionary_the_operator_loaded_is_used(engine: Engine, reach: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {DB}.small2 (id UInt64, v String) ENGINE = MergeTree ORDER BY id")
        conn.exec_driver_sql(
            f"CREATE DICTIONARY {DB}.d_small2 (id UInt64, v String) PRIMARY KEY id "
            f"SOURCE(CLICKHOUSE(TABLE 'small2' DB '{DB}')) LAYOUT(HASHED()) LIFETIME(0)"
        )
        conn.exec_driver_sql(f"SYSTEM RELOAD DICTIONARY {DB}.d_small2")
    small = run_explain(engine, f"SELECT dictGet('{DB}.d_small2', 'v', toUInt64(1))")
    assert small.ok, small.error


@pytest.mark.integration
def test_a_loaded_dictionary_is_used_whatever_its_source_query_costs(engine: Engine, reach: str) -> None:
    """Finding 14, the rule's other half: a dictionary already in memory costs a preflight nothing more."""
    with engine.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE DICTIONARY {DB}.d_loaded (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE(QUERY "
            "'SELECT number AS id, toString(number) AS v FROM numbers(10)')) LAYOUT(HASHED()) LIFETIME(0)"
        )
        conn.exec_driver_sql(f"SYSTEM RELOAD DICTIONARY {DB}.d_loaded")
    result = run_explain(engine, f"SELECT dictGet('{DB}.d_loaded', 'v', toUInt64(1))")
    assert result.ok, result.error
    # a DIRECT layout reads its source on every lookup, loaded or not: refused like a load
    with engine.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE DICTIONARY {DB}.d_direct (id UInt64, v String) PRIMARY KEY id SOURCE(CLICKHOUSE(QUERY "
            "'SELECT number AS id, toString(number) AS v FROM numbers(10)')) LAYOUT(DIRECT())"
        )
        conn.exec_driver_sql(f"SYSTEM RELOAD DICTIONARY {DB}.d_direct")
    direct = run_explain(engine, f"SELECT dictGet('{DB}.d_direct', 'v', toUInt64(1))")
    assert not direct.ok and "DIRECT layout, which reads its source on every lookup" in (direct.error or "")


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT (SELECT count() FROM {DB}.src WHERE (id, v) IN {DB}.urltab) AS n",
        f"SELECT (SELECT (toUInt64(1), 'canary') IN {DB}.urltab) AS x",
        f"SELECT (SELECT (toUInt64(1), 'canary') NOT IN {DB}.urltab) AS x",
        f"SELECT (SELECT (toUInt64(1), 'canary') GLOBAL IN {DB}.urltab) AS x",
        f"SELECT (SELECT (toUInt64(1), 'canary') IN ({DB}.urltab)) AS x",
        f"SELECT (SELECT (toUInt64(1), 'canary') IN `{DB}`.`urltab`) AS x",
        f"SELECT x FROM {DB}.vin",
        f"SELECT (SELECT joinGet('{DB}.urltab', 'v', toUInt64(1))) AS x",
        f"SELECT (SELECT joinGet({DB}.urltab, 'v', toUInt64(1))) AS x",
    ],
    ids=[
        "in",
        "in_scalar",
        "not_in",
        "global_in",
        "in_parenthesized",
        "in_quoted",
        "view",
        "joinget",
        "joinget_name",
    ],
)
def test_a_table_named_on_the_right_of_in_is_a_read(
    engine: Engine, reach: str, http_canary: _HttpCanary, sql: str
) -> None:
    """Audit B 7: ``x IN db.table`` (and joinGet's table) reads the table; sqlglot parses the name as a column."""
    http_canary.paths.clear()
    result = run_explain(engine, sql)
    assert not result.ok and result.error_kind == "unsafe", result
    assert f"{DB}.urltab uses the URL engine" in (result.error or ""), result.error
    assert http_canary.paths == []


@pytest.mark.integration
def test_a_column_named_like_a_table_is_followed_as_a_read_of_it(engine: Engine, reach: str) -> None:
    """Any name of the statement that names a relation of the catalog counts as a read of it (a superset, fail
    closed): a column named like a local table passes (that table is checked and is local); a column named like a
    relation the service refuses is refused too."""
    for sql in (
        f"SELECT src FROM {DB}.vcols",
        f"SELECT (SELECT (toUInt64(1), 'a') IN {DB}.src) AS x",
        f"SELECT (SELECT joinGet('{DB}.j', 'v', toUInt64(1))) AS x",
        f"SELECT c.src, c.urltab FROM {DB}.cols AS c",
    ):
        result = run_explain(engine, sql)
        assert result.ok, (sql, result.error)
    refused = run_explain(engine, f"SELECT * FROM {DB}.vcolu")
    assert not refused.ok and f"{DB}.urltab uses the URL engine" in (refused.error or ""), refused.error


@pytest.mark.integration
def test_a_materialized_view_s_target_comes_from_the_catalog(
    engine: Engine, reach: str, http_canary: _HttpCanary
) -> None:
    """Finding 20: a view name with " AS " in it does not hide the TO target."""
    result = run_explain(engine, f"SELECT (SELECT count() FROM {DB}.`m AS x`) AS n")
    assert not result.ok and result.error_kind == "unsafe", result
    assert "uses the URL engine" in (result.error or ""), result.error
    assert http_canary.paths == []


@pytest.mark.integration
def test_a_view_the_service_cannot_parse_is_refused_not_a_crash(engine: Engine, reach: str) -> None:
    """Finding 6: fail closed with a reason, never an exception (HTTP 500)."""
    result = run_explain(engine, f"SELECT * FROM {DB}.vapply")
    assert not result.ok and result.error_kind == "unsafe", result
    assert f"view {DB}.vapply has a definition the service cannot check" in (result.error or ""), result.error


# --- storage on disks that are not local (finding 10) ---------------------------------------------------


@pytest.fixture(scope="module")
def web_table(engine: Engine, http_canary: _HttpCanary) -> Iterator[str]:
    name = "i31_web"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
        conn.exec_driver_sql(
            f"CREATE TABLE {name}.webt (id UInt64) ENGINE = MergeTree ORDER BY id "
            f"SETTINGS disk = disk(type = web, endpoint = '{http_canary.url('web/')}')"
        )
        conn.exec_driver_sql(f"CREATE TABLE {name}.localt (id UInt64) ENGINE = MergeTree ORDER BY id")
    http_canary.paths.clear()  # attaching the table read the endpoint: not the preflight's doing
    try:
        yield name
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.integration
def test_a_merge_tree_on_a_web_disk_is_not_local(engine: Engine, web_table: str) -> None:
    from dbmeta_app.schema.introspect.clickhouse import live_kinds

    result = run_explain(engine, f"SELECT count() FROM {web_table}.webt WHERE id = 5")
    assert not result.ok and result.error_kind == "unsafe", result
    assert "not on a local disk" in (result.error or ""), result.error
    local = run_explain(engine, f"SELECT count() FROM {web_table}.localt WHERE id = 5")
    assert local.ok, local.error
    with engine.connect() as conn:
        kinds = live_kinds(conn, {f"{web_table}.webt", f"{web_table}.localt"}, [web_table])
    assert kinds[f"{web_table}.localt"] == "table"
    assert kinds[f"{web_table}.webt"] != "table"  # never sampled


@pytest.mark.integration
def test_a_table_whose_column_expression_loads_a_remote_dictionary_is_not_sampled(
    engine: Engine, reach: str
) -> None:
    """Finding 5 (samples): reading an ALIAS column folds its dictGet; the sample read asks the routine gate."""
    from dbmeta_app.preflight.policy import RoutineGate
    from dbmeta_app.preflight.reach import Name

    with engine.connect() as conn:
        refused = RoutineGate("chdb").relation_problems(conn, [Name(DB, "t_alias"), Name(DB, "src")])
    assert set(refused) == {Name(DB, "t_alias")}


@pytest.mark.integration
def test_a_table_whose_column_calls_a_dictionary_not_loaded_is_not_sampled(
    engine: Engine, reach: str
) -> None:
    """Audit B 3 (samples): reading the ALIAS column would load the dictionary; a local source does not help."""
    from dbmeta_app.preflight.policy import RoutineGate
    from dbmeta_app.preflight.reach import Name

    with engine.connect() as conn:
        refused = RoutineGate("chdb").relation_problems(conn, [Name(DB, "t_dcol"), Name(DB, "src")])
    assert set(refused) == {Name(DB, "t_dcol")}
    assert "d_col" in refused[Name(DB, "t_dcol")] and "not loaded" in refused[Name(DB, "t_dcol")]
    assert _status(engine, "d_col") == "NOT_LOADED"


# --- stored definitions: parse failures, recursion, size and time (findings 6 and 8) ----------------------


def _catalog(views: dict[str, str]) -> Callable[[str], list[Any]]:
    def query(sql: str) -> list[Any]:
        if sql.startswith("SELECT currentDatabase()"):
            return [("db",)]
        if "FROM system.tables" in sql:
            return [("db", name, "View", "", text, "") for name, text in views.items()] + [
                ("db", "t", "MergeTree", "", "", "default")
            ]
        if "FROM system.columns" in sql or "FROM system.functions" in sql:
            return []
        if "system.storage_policies" in sql:
            return [("default", "default", "Local")]
        raise AssertionError(sql)

    return query


def test_a_view_definition_that_exhausts_the_parser_s_recursion_is_refused() -> None:
    from dbmeta_app.preflight.dialects.clickhouse import reach_problem

    deep = "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " AS x"
    problem = reach_problem(_catalog({"v": deep}), "SELECT x FROM db.v")
    assert problem is not None and "view db.v has a definition the service cannot check" in problem


def test_a_view_definition_over_the_size_cap_is_refused_unparsed() -> None:
    from dbmeta_app.preflight.dialects import clickhouse

    big = "SELECT x FROM db.t WHERE x IN (" + ", ".join(str(i) for i in range(200_000)) + ")"
    assert len(big) > clickhouse.MAX_VIEW_DEFINITION_CHARS
    problem = clickhouse.reach_problem(_catalog({"v": big}), "SELECT x FROM db.v")
    assert problem is not None and "view db.v has a definition the service cannot check" in problem, problem
    assert "over the 100,000 the service parses" in problem


def test_view_work_is_memoised_per_definition_and_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlglot

    from dbmeta_app.preflight.dialects import clickhouse

    parses: list[str] = []
    real = sqlglot.parse_one

    def counting(sql: str, **kwargs: Any) -> Any:
        parses.append(sql)
        return real(sql, **kwargs)

    monkeypatch.setattr(clickhouse.sqlglot, "parse_one", counting)
    views = {"v": "SELECT x FROM db.t WHERE x = 'i31-memo-1'"}
    assert clickhouse.reach_problem(_catalog(views), "SELECT x FROM db.v") is None
    first = len(parses)
    assert clickhouse.reach_problem(_catalog(views), "SELECT x FROM db.v") is None
    assert len(parses) == first + 1  # the query is parsed again, the view's definition is not
    # no time left: each check still parses one definition (it always makes progress), a view left over is
    # refused, and checked by a later preflight
    views = {
        "w": "SELECT x FROM db.w2 WHERE x = 'i31-memo-2'",
        "w2": "SELECT x FROM db.t WHERE x = 'i31-memo-3'",
    }
    late = clickhouse.reach_problem(_catalog(views), "SELECT x FROM db.w", view_seconds=0.0)
    assert late is not None and "could not be checked in time" in late, late
    assert clickhouse.reach_problem(_catalog(views), "SELECT x FROM db.w", view_seconds=0.0) is None
