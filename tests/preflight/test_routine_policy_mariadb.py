"""The routine policy on a real MariaDB: stored functions, directly or through views, cannot run.

MariaDB evaluates a DETERMINISTIC stored function with constant arguments while optimising, e.g. to
look up an index, and a read-only transaction does not stop what it does outside a table: here it
terminates another connection (KILL). The service connects as a user with SELECT, EXECUTE and SHOW VIEW
(and, for some cases, SELECT and EXECUTE only); after every case the victim connection must be alive.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.preflight import catalog_mysql
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import RoutineGate
from dbmeta_app.preflight.privileges import inspect_privileges

pytestmark = pytest.mark.integration


@dataclass
class World:
    db: str
    svc: str  # SELECT, EXECUTE, SHOW VIEW
    plain: str  # SELECT, EXECUTE only
    reader: str  # SELECT, SHOW VIEW: the least-privilege user
    host: str
    port: int
    victim: pymysql.connections.Connection

    def url(self, user: str) -> str:
        return f"mysql+pymysql://{user}@{self.host}:{self.port}/{self.db}"

    def root(self) -> pymysql.connections.Connection:
        return pymysql.connect(host=self.host, port=self.port, user="root", database=self.db, autocommit=True)

    def victim_alive(self) -> bool:
        try:
            self.victim.ping(reconnect=False)
            return True
        except pymysql.err.Error:
            return False

    def new_victim(self) -> None:
        """Open a fresh victim connection and register it as the one f_kill() terminates."""
        self.victim.close() if self.victim.open else None
        self.victim = pymysql.connect(host=self.host, port=self.port, user="root", database=self.db)
        with self.root() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM victims")
            cur.execute("INSERT INTO victims VALUES (%s)", (self.victim.thread_id(),))


@pytest.fixture(scope="module")
def world(mysql_url: str) -> Iterator[World]:
    url = sa.make_url(mysql_url)
    host, port = url.host or "127.0.0.1", url.port or 3306
    suffix = uuid.uuid4().hex[:8]
    db = f"dbm{suffix}_rp"
    svc, plain, reader = f"dbm{suffix}_svc", f"dbm{suffix}_plain", f"dbm{suffix}_reader"
    admin = pymysql.connect(host=host, port=port, user=url.username or "root", autocommit=True)
    victim = None
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            for statement in (
                "CREATE TABLE victims (id BIGINT)",
                "CREATE TABLE t (id INT, note VARCHAR(20), KEY (id))",
                "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
                "CREATE TABLE u (id INT PRIMARY KEY, t_id INT, amount DECIMAL(10, 2))",
                "INSERT INTO u VALUES (1, 1, 9.5), (2, 1, 3.25)",
                # VIRTUAL generated columns, computed for a row MariaDB reads while planning (a const table)
                "CREATE TABLE gen (id INT PRIMARY KEY, a INT, b LONGTEXT AS (REPEAT('x', a)) VIRTUAL)",
                "CREATE TABLE gen_ok (id INT PRIMARY KEY, a INT, c INT AS (a + 1) VIRTUAL, "
                "d VARCHAR(20) AS (CONCAT('n', a)) VIRTUAL, e INT AS (a * 2) PERSISTENT)",
                "CREATE VIEW v_gen AS SELECT id FROM gen",
                # Runs as its definer (root): terminates the registered victim connection.
                "CREATE FUNCTION f_kill(x INT) RETURNS INT DETERMINISTIC BEGIN "
                "DECLARE v BIGINT; SELECT id INTO v FROM victims LIMIT 1; KILL v; RETURN x; END",
                "CREATE FUNCTION f_safe(x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
                "CREATE VIEW v_kill AS SELECT id, note FROM t WHERE id = f_kill(1)",
                "CREATE VIEW v_outer AS SELECT * FROM v_kill",
                "CREATE VIEW v_clean AS SELECT id, UPPER(note) AS up FROM t",
                # Built-ins the guard refuses in a query, written into a view (planning evaluates them).
                "CREATE VIEW v_lock AS SELECT GET_LOCK('dbm_rp_lock', 0) AS g, SLEEP(2) AS s",
                # constants the optimiser folds: 20 MB, over the 16 MB default
                "CREATE VIEW v_big AS SELECT REPEAT('x', 20000000) AS s",
                # constant columns a reader may use as a size (100 MB, over the bound; 40 bytes, well under),
                # and a view that builds from one of them
                "CREATE VIEW params AS SELECT 100000007 AS n, 40 AS width",
                "CREATE VIEW v_built AS SELECT REPEAT('x', p.n) AS r FROM params p",
                "CREATE VIEW v_renamed AS SELECT p.n AS k FROM params p",
                "CREATE VIEW v_renamed_twice AS SELECT r.k AS j FROM v_renamed r",
                # the server's logins, read through a view of the user's database
                "CREATE VIEW v_users AS SELECT User AS u, Host AS h FROM mysql.user",
                "ANALYZE TABLE t",
                # The same through a package routine (MariaDB's Oracle mode): called as db.package.function,
                # it is no stored function of the catalog's.
                "SET sql_mode = ORACLE",
                "CREATE PACKAGE pkg_kill AS FUNCTION fk(x INT) RETURN INT; END;",
                "CREATE PACKAGE BODY pkg_kill AS FUNCTION fk(x INT) RETURN INT DETERMINISTIC AS v BIGINT; "
                "BEGIN SELECT id INTO v FROM victims LIMIT 1; KILL v; RETURN x; END; END;",
                "SET sql_mode = DEFAULT",
                f"CREATE VIEW v_pkg AS SELECT id FROM t WHERE id = {db}.pkg_kill.fk(1)",
            ):
                cur.execute(statement)
            for user, grants in (
                (svc, "SELECT, EXECUTE, SHOW VIEW"),
                (plain, "SELECT, EXECUTE"),
                (reader, "SELECT, SHOW VIEW"),
            ):
                cur.execute(f"CREATE USER '{user}'@'%'")
                cur.execute(f"GRANT {grants} ON {db}.* TO '{user}'@'%'")
        victim = pymysql.connect(host=host, port=port, user="root", database=db)
        world = World(db, svc, plain, reader, host, port, victim)
        world.new_victim()
        yield world
        victim = world.victim
    finally:
        if victim is not None and victim.open:
            victim.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            for user in (svc, plain, reader):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


@pytest.fixture(scope="module")
def client(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("routines_mariadb")
    profiles = tmp / "profiles.yml"
    profiles.write_text(
        "profiles:\n"
        f"  svc: {{database_url: '{world.url(world.svc)}', preflight: {{allow_functions: [{world.db}.f_safe]}}}}\n"
        f"  plain: {{database_url: '{world.url(world.plain)}'}}\n"
        f"  reader: {{database_url: '{world.url(world.reader)}'}}\n"
        f"  root: {{database_url: '{world.url('root')}'}}\n"
        f"  strict: {{database_url: '{world.url(world.plain)}', preflight: {{require_least_privilege: true}}}}\n"
    )
    settings = load_settings(
        profiles_file=profiles,
        default_profile="svc",
        data_dir=tmp / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _preflight(client: TestClient, sql: str, profile: str | None = None) -> dict[str, Any]:
    response = client.post("/v1/preflight", json={"sql": sql, "profile": profile})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_without_the_policy_a_stored_function_runs_while_optimising(world: World) -> None:
    engine = sa.create_engine(world.url(world.svc))
    try:
        assert world.victim_alive()
        verdict = check_sql("SELECT * FROM v_kill WHERE id = 1", "mysql")
        assert verdict.ok and verdict.statement is not None  # the guard alone lets it through
        run_explain(engine, verdict.statement)
        assert not world.victim_alive()
    finally:
        engine.dispose()
        world.new_victim()


ATTACKS = [
    ("direct_call", "SELECT * FROM t WHERE id = f_kill(1)", "stored function {db}.f_kill()"),
    ("qualified_call", "SELECT * FROM t WHERE id = {db}.f_kill(1)", "stored function {db}.f_kill()"),
    ("quoted_call", "SELECT * FROM t WHERE id = `f_kill`(1)", "stored function {db}.f_kill()"),
    ("view", "SELECT * FROM v_kill WHERE id = 1", "view {db}.v_kill → stored function {db}.f_kill()"),
    ("nested_view", "SELECT * FROM v_outer", "view {db}.v_outer → view {db}.v_kill → stored function"),
    ("view_in_a_subquery", "SELECT * FROM u WHERE t_id IN (SELECT id FROM {db}.v_kill)", "view {db}.v_kill"),
    ("call_in_a_cte", "WITH c AS (SELECT f_kill(2) AS k) SELECT * FROM t JOIN c ON t.id = c.k", "f_kill"),
    (
        "package_routine",
        "SELECT * FROM t WHERE id = {db}.pkg_kill.fk(1)",
        "pkg_kill.fk() is not a stored function",
    ),
    ("view_calling_a_package_routine", "SELECT * FROM v_pkg", "view {db}.v_pkg → pkg_kill.fk()"),
    (
        "view_calling_denied_builtins",
        "SELECT * FROM t WHERE id = (SELECT g + s FROM v_lock)",
        "view {db}.v_lock → it calls get_lock()",
    ),
    (
        "view_folding_a_huge_constant",
        "SELECT * FROM t WHERE note = (SELECT s FROM v_big)",
        "view {db}.v_big → its definition's constants",
    ),
    (
        "view_reading_a_system_schema",
        "SELECT * FROM t WHERE note = (SELECT MAX(u) FROM v_users)",
        "view {db}.v_users → it reads mysql.user, in the server's system schema mysql",
    ),
]


@pytest.mark.parametrize(("name", "sql", "mentions"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_stored_function_is_refused_directly_and_through_views(
    world: World, client: TestClient, name: str, sql: str, mentions: str
) -> None:
    body = _preflight(client, sql.format(db=world.db))
    assert body["ok"] is False and body["error_kind"] == "unsafe", body
    assert mentions.format(db=world.db) in body["error"], body["error"]
    # the header says what kind of problem it is: a view's constants or a system schema are no routines
    routines = "refused: the query reaches routines that are not known to be free of side effects: "
    assert body["error"].startswith(routines) is (
        name not in ("view_folding_a_huge_constant", "view_reading_a_system_schema")
    ), body["error"]
    assert world.victim_alive()


def test_a_view_hidden_from_the_user_is_refused_and_says_why(world: World, client: TestClient) -> None:
    body = _preflight(client, "SELECT * FROM v_kill WHERE id = 1", "plain")
    assert body["error_kind"] == "unsafe" and "grant SHOW VIEW" in body["error"], body
    assert world.victim_alive()


def test_a_root_profile_refuses_the_same_function(world: World, client: TestClient) -> None:
    assert _preflight(client, "SELECT * FROM v_outer", "root")["error_kind"] == "unsafe"
    assert world.victim_alive()


# A constant column of a view, used by the caller (or by another view) as a size: MariaDB merges the view and
# folds the call while optimising. The gate refuses it before the EXPLAIN (a test never lets it through to
# the shared server: the gate is asserted first, without an EXPLAIN).
VIEW_CONSTANTS = [
    (
        "repeat",
        "SELECT LENGTH(REPEAT('x', p.n)) FROM params p",
        "with the constant columns of the views it reads, the query would make the planner build",
    ),
    ("lpad", "SELECT LPAD('x', p.n, 'y') FROM params p", "with the constant columns of the views it reads"),
    ("space", "SELECT LENGTH(SPACE(p.n)) FROM {db}.params AS p", "with the constant columns of the views"),
    ("in_a_subquery", "SELECT * FROM t WHERE note = (SELECT SPACE(n) FROM params)", "constant columns"),
    ("renamed_twice", "SELECT LENGTH(REPEAT('x', j)) FROM v_renamed_twice", "constant columns"),
    (
        "view_building_from_a_view_s_constant",
        "SELECT LENGTH(r) FROM v_built",
        "view {db}.v_built → its definition's constants",
    ),
]


def _gate(world: World, sql: str) -> str | None:
    """The routine policy's verdict alone, in a rolled-back transaction: nothing is sent to EXPLAIN."""
    verdict = check_sql(sql, "mysql")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    engine = sa.create_engine(world.url(world.svc))
    try:
        with engine.connect() as conn:
            problem = RoutineGate("mysql").check(conn, verdict.reach, verdict.statement)
            conn.rollback()
    finally:
        engine.dispose()
    return problem


@pytest.mark.parametrize(("name", "sql", "mentions"), VIEW_CONSTANTS, ids=[c[0] for c in VIEW_CONSTANTS])
def test_a_view_s_constant_column_used_as_a_size_is_refused_before_the_explain(
    world: World, client: TestClient, name: str, sql: str, mentions: str
) -> None:
    sql = sql.format(db=world.db)
    problem = _gate(world, sql)
    assert problem is not None and "preflight.max_constant_bytes (16,000,000)" in problem, problem
    body = _preflight(client, sql)
    assert body["ok"] is False and body["error_kind"] == "unsafe" and body["plan"] is None, body
    assert mentions.format(db=world.db) in body["error"], body["error"]
    assert "preflight.max_constant_bytes" in body["error"], body["error"]


def test_a_view_building_from_a_view_s_constant_is_not_sampled(world: World) -> None:
    from dbmeta_app.preflight.policy import sample_refusals
    from dbmeta_app.preflight.reach import Name

    engine = sa.create_engine(world.url(world.svc))
    try:
        refused = sample_refusals(
            engine, RoutineGate("mysql"), [Name(world.db, n) for n in ("params", "v_built", "v_renamed")]
        )
    finally:
        engine.dispose()
    assert set(refused) == {Name(world.db, "v_built")}, refused
    assert "preflight.max_constant_bytes" in refused[Name(world.db, "v_built")]


def test_a_small_constant_column_of_a_view_passes_the_gate(world: World) -> None:
    assert _gate(world, "SELECT REPEAT('-', p.width) FROM params p") is None


def test_virtual_generated_columns_computed_while_planning_are_measured(world: World) -> None:
    """A red team's table of five REPEAT('x', a) VIRTUAL columns with a = 16000000: +400 MB of mariadbd's
    Memory_used on `SELECT * FROM g7 WHERE id = 1`; thirty: VmHWM 124 MB → 1,061 MB before the timeout."""
    for sql in ("SELECT * FROM gen WHERE id = 1", "SELECT id FROM v_gen WHERE id = 1"):
        problem = _gate(world, sql)
        assert problem is not None, sql
        assert f"table {world.db}.gen → its virtual generated columns" in problem, problem
        assert "preflight.max_constant_bytes" in problem, problem
    assert _gate(world, "SELECT * FROM gen_ok WHERE id = 1") is None
    # any number of tables: read in several statements, none left unread
    engine = sa.create_engine(world.url(world.svc))
    try:
        with engine.connect() as conn:
            many = [(world.db, f"nosuch{i}") for i in range(600)] + [(world.db, "gen")]
            found = catalog_mysql.read_generated(conn, many)
    finally:
        engine.dispose()
    assert [key[1].lower() for key in found] == ["gen"], found
    from dbmeta_app.preflight.policy import sample_refusals
    from dbmeta_app.preflight.reach import Name

    engine = sa.create_engine(world.url(world.svc))
    try:
        refused = sample_refusals(
            engine, RoutineGate("mysql"), [Name(world.db, n) for n in ("gen", "gen_ok", "u")]
        )
    finally:
        engine.dispose()
    assert set(refused) == {Name(world.db, "gen")}, refused  # its sample rows would compute them too


def test_a_size_taken_from_a_row_is_refused_by_the_gate(world: World) -> None:
    """MariaDB reads the row a unique key finds and evaluates some constant subqueries while planning: a red team's
    ten terms of (SELECT LENGTH(REPEAT('x1', a * 750000)) … WHERE id = 1) took mariadbd +405 MB."""
    for sql in (
        "SELECT 1 FROM t WHERE id = 2 AND (SELECT LENGTH(REPEAT('x1', id * 750000)) FROM t WHERE id = 1) > 0",
        "SELECT LENGTH(SPACE(t.id)) FROM t WHERE t.id = 1",
        # a row's value padded, or grown by a replacement many times its search (the red team's: +600 MB, and a
        # statement that ran 51 s past its timeout and KILL)
        "SELECT id FROM u WHERE id = 1 AND (CAST(u.amount AS BINARY(15000000)) = 'a' OR "
        "CAST(u.amount AS BINARY(15000000)) = 'b')",
        "SELECT id FROM t WHERE REPLACE(note, 'o', REPEAT('x', 150)) = 'k'",
    ):
        problem = _gate(world, sql)
        assert problem is not None and "a size taken from a row as any size" in problem, problem
    assert _gate(world, "SELECT LPAD(note, 10, '0'), REPEAT('-', 3) FROM t WHERE id = 1") is None


LEGIT = [
    ("small_constant_column_of_a_view", "SELECT REPEAT('-', p.width) FROM params p"),
    ("join_aggregate", "SELECT t.note, SUM(u.amount) FROM t JOIN u ON u.t_id = t.id GROUP BY t.note"),
    ("window", "SELECT id, ROW_NUMBER() OVER (ORDER BY id), LAG(note) OVER (ORDER BY id) FROM t"),
    (
        "recursive_cte",
        "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    ),
    (
        "built_ins",
        "SELECT IFNULL(note, ''), DATE_FORMAT(NOW(), '%Y'), CONCAT_WS('-', id, note), COUNT(DISTINCT id), "
        "JSON_OBJECT('id', id), IF(id > 1, 'x', 'y'), LEFT(note, 2), CAST(id AS CHAR) FROM t GROUP BY id, note",
    ),
    ("clean_view", "SELECT * FROM v_clean WHERE up LIKE 'O%'"),
    ("allow_listed", "SELECT * FROM t WHERE id = f_safe(0)"),
    (
        "in_list_and_exists",
        "SELECT * FROM t WHERE id IN (1, 2) AND EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id)",
    ),
]


@pytest.mark.parametrize(("name", "sql"), LEGIT, ids=[x[0] for x in LEGIT])
def test_a_legitimate_read_is_accepted(world: World, client: TestClient, name: str, sql: str) -> None:
    body = _preflight(client, sql)
    assert body["ok"] is True and body["plan"], body
    assert world.victim_alive()


def test_an_unknown_function_is_a_possible_udf_unless_mysql_func_can_be_read(world: World) -> None:
    verdict = check_sql("SELECT my_udf(1)", "mysql")
    results = {}
    for user in (world.svc, "root"):
        engine = sa.create_engine(world.url(user))
        try:
            with engine.connect() as conn:
                results[user] = RoutineGate("mysql").check(conn, verdict.reach)
                conn.rollback()
        finally:
            engine.dispose()
    assert results[world.svc] is not None and "may be a loadable UDF" in results[world.svc]
    assert (
        results["root"] is None
    )  # root reads mysql.func: no such UDF, the EXPLAIN will say it does not exist


def test_a_function_created_after_a_preflight_is_refused_on_the_very_next_one(
    world: World, client: TestClient
) -> None:
    gate = client.app.state.runtime.profile("svc").routines  # type: ignore[attr-defined]
    assert _preflight(client, "SELECT * FROM t WHERE id = 2")["ok"] is True
    loads = gate.loads
    with world.root() as conn, conn.cursor() as cur:
        cur.execute("CREATE FUNCTION f_late(x INT) RETURNS INT DETERMINISTIC RETURN x")
        cur.execute(
            "CREATE OR REPLACE VIEW v_clean AS SELECT id, UPPER(note) AS up FROM t WHERE id > f_late(0)"
        )
    try:
        body = _preflight(client, "SELECT * FROM v_clean WHERE up LIKE 'T%'")
        assert (
            body["error_kind"] == "unsafe"
            and "stored function" in body["error"]
            and "f_late" in body["error"]
        )
        assert gate.loads == loads + 1
    finally:
        with world.root() as conn, conn.cursor() as cur:
            cur.execute("CREATE OR REPLACE VIEW v_clean AS SELECT id, UPPER(note) AS up FROM t")
            cur.execute("DROP FUNCTION f_late")


def test_views_that_take_longer_than_the_budget_to_parse_are_all_measured_in_a_few_reads(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each catalog read keeps what it started: a definition whose parse alone outlasts the budget is parsed and
    measured in one go (a check between a parse and its use threw the parse away at every read)."""
    from dbmeta_app.preflight.view_memo import ViewMemo

    real = catalog_mysql.sqlglot.parse_one

    def slow_parse(sql: str, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.06)  # every definition: longer than the budget on its own
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(catalog_mysql.sqlglot, "parse_one", slow_parse)
    memo = ViewMemo()
    engine = sa.create_engine(world.url(world.svc))
    try:
        with engine.connect() as conn:
            views = int(conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.VIEWS").scalar_one())
            reads = 0
            while True:  # three units a view at most (parse, constants, measure), at least one a read
                reads += 1
                catalog = catalog_mysql.load_catalog(conn, "fp", memo=memo, view_seconds=0.02)
                if catalog.fingerprint == "fp" or reads > 3 * views + 3:
                    break
    finally:
        engine.dispose()
    assert catalog.fingerprint == "fp", f"still incomplete after {reads} reads of {views} views"


def test_privileges_of_each_user(world: World, client: TestClient, tmp_path: Path) -> None:
    reports = {}
    for user in (world.plain, world.reader, "root"):
        engine = sa.create_engine(world.url(user))
        try:
            reports[user] = inspect_privileges(engine)
        finally:
            engine.dispose()
    assert reports[world.reader].least_privilege, reports[world.reader]
    assert any(p.startswith("EXECUTE (stored functions could run") for p in reports[world.plain].problems)
    assert any("ALL PRIVILEGES" in p for p in reports["root"].problems)
    assert not any(world.plain in p or "%" in p for p in reports[world.plain].problems)
    strict = _preflight(client, "SELECT * FROM t", "strict")
    assert strict["error_kind"] == "unsafe" and "require_least_privilege" in strict["error"]
    assert _preflight(client, "SELECT * FROM t", "reader")["ok"] is True


def test_samples_are_not_read_from_a_view_that_calls_a_stored_function(
    world: World, client: TestClient
) -> None:
    from dbmeta_app.preflight.policy import sample_refusals
    from dbmeta_app.preflight.reach import Name

    engine = sa.create_engine(world.url(world.svc))
    try:
        refused = sample_refusals(
            engine, RoutineGate("mysql"), [Name(world.db, n) for n in ("t", "v_kill", "v_clean")]
        )
    finally:
        engine.dispose()
    assert (
        set(refused) == {Name(world.db, "v_kill")} and "stored function" in refused[Name(world.db, "v_kill")]
    )
    response = client.post("/v1/prompt-items/schema", json={"with_examples": True})
    assert response.status_code == 200 and "three" in response.json()["text"]  # t is sampled
    assert world.victim_alive()


def test_a_view_over_the_size_cap_is_refused_and_others_are_not(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbmeta_app.preflight import view_memo

    monkeypatch.setattr(view_memo, "VIEW_DEFINITION_MAX", 5_000, raising=False)
    in_list = ",".join(str(i) for i in range(2000))
    with world.root() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE VIEW big_v AS SELECT id FROM t WHERE id IN ({in_list})")
        cur.execute("CREATE VIEW deep_v AS SELECT " + "(1 + " * 150 + "1" + ")" * 150 + " AS one")
    try:
        problem = _gate(world, "SELECT id FROM big_v")
        assert problem is not None and f"view {world.db}.big_v" in problem and "5,000" in problem, problem
        problem = _gate(world, "SELECT one FROM deep_v")
        assert problem is not None and f"view {world.db}.deep_v" in problem and "nested" in problem, problem
        assert _gate(world, "SELECT id FROM t WHERE id = 7") is None
    finally:
        with world.root() as conn, conn.cursor() as cur:
            cur.execute("DROP VIEW big_v")
            cur.execute("DROP VIEW deep_v")


def _crc32_forged(text: str, start: int, width: int, target: int) -> str:
    """``text`` with some of the ``width`` letters 'a' from ``start`` turned into 'c', so that its CRC32 is
    ``target`` (CRC32 is affine over GF(2) for texts of one length: each flip XORs a fixed delta into it)."""
    base = zlib.crc32(text.encode())
    deltas = []
    for i in range(start, start + width):
        flipped = text[:i] + "c" + text[i + 1 :]
        deltas.append(zlib.crc32(flipped.encode()) ^ base)
    # Gaussian elimination: rows = (delta, set of positions), reduce the wanted difference
    basis: dict[int, tuple[int, int]] = {}  # pivot bit -> (vector, positions mask)
    for i, delta in enumerate(deltas):
        vector, mask = delta, 1 << i
        for bit in sorted(basis, reverse=True):
            if vector >> bit & 1:
                vector, mask = vector ^ basis[bit][0], mask ^ basis[bit][1]
        if vector:
            basis[vector.bit_length() - 1] = (vector, mask)
    wanted, chosen = base ^ target, 0
    for bit in sorted(basis, reverse=True):
        if wanted >> bit & 1:
            wanted, chosen = wanted ^ basis[bit][0], chosen ^ basis[bit][1]
    assert wanted == 0, "no forgery with these positions"
    out = list(text)
    for i in range(width):
        if chosen >> i & 1:
            out[start + i] = "c"
    forged = "".join(out)
    assert zlib.crc32(forged.encode()) == target
    return forged


def test_a_view_replaced_by_one_with_the_same_crc32_is_seen_on_the_next_preflight(
    world: World, client: TestClient
) -> None:
    # The database owner swaps a clean view for one calling f_kill(), written so that the CRC32 of its row in
    # information_schema.VIEWS is the old one: a fingerprint summing CRC32s would not move, the cached
    # catalog would still call the view clean, and planning the next query on it would run f_kill().
    pad = "a" * 64
    row = "CONCAT_WS(':', TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION)"

    def definition(conn: pymysql.connections.Connection) -> str:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT {row}, CRC32({row}) FROM information_schema.VIEWS "
                f"WHERE TABLE_SCHEMA = '{world.db}' AND TABLE_NAME = 'v_swap'"
            )
            text, crc = cur.fetchone()
        assert zlib.crc32(text.encode()) == crc  # the server's CRC32 is zlib's
        return str(text)

    with world.root() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE VIEW v_swap AS SELECT id, note, '{pad}' AS pad FROM t")
        old = zlib.crc32(definition(conn).encode())
    try:
        assert _preflight(client, "SELECT id FROM v_swap WHERE id = 2")["ok"] is True
        with world.root() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE OR REPLACE VIEW v_swap AS SELECT id, note, '{pad}' AS pad FROM t WHERE id = f_kill(1)"
            )
            text = definition(conn)
            start = text.index(pad)
            forged = _crc32_forged(text, start, len(pad), old)[start : start + len(pad)]
            cur.execute(
                f"CREATE OR REPLACE VIEW v_swap AS SELECT id, note, '{forged}' AS pad FROM t WHERE id = f_kill(1)"
            )
            assert zlib.crc32(definition(conn).encode()) == old  # the forgery holds on the server
        # a new query (checked, then planned), then the first one again: its answer was cached under the
        # fingerprint the service last saw, which has moved since
        for sql in ("SELECT id FROM v_swap WHERE id = 3", "SELECT id FROM v_swap WHERE id = 2"):
            body = _preflight(client, sql)
            assert body["error_kind"] == "unsafe" and "f_kill" in body["error"], body
            assert world.victim_alive()
    finally:
        with world.root() as conn, conn.cursor() as cur:
            cur.execute("DROP VIEW IF EXISTS v_swap")
        if not world.victim_alive():
            world.new_victim()
