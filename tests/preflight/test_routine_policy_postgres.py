"""The routine policy on a real PostgreSQL: objects that already exist cannot be turned against it.

A private database (its own extensions: dblink is database-wide) holds "ops helpers" written the way a
real warehouse has them: IMMUTABLE/STABLE, SECURITY DEFINER functions that write through dblink (the
write commits on its own), terminate a backend, reset statistics, or leave a dblink session holding an
advisory lock. The planner runs such functions while planning an EXPLAIN when they are called with
constants: directly, through views, operators, casts, index expressions, CHECK constraints (inheritance
and partitions) and row-level-security policies. The service connects as a non-superuser role that owns
the ``fx`` schema (and, for a few cases, as a superuser). After every case the state check would show
each effect: a sentinel row, ``stats_reset``, a held advisory lock, a terminated victim session.
The canary test proves each effect is real: without the policy (today's ``run_explain``), it happens.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from dbmeta_app.config import Settings, load_settings
from dbmeta_app.main import create_app
from dbmeta_app.preflight import catalog_postgres
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import RoutineGate
from dbmeta_app.preflight.privileges import inspect_privileges
from dbmeta_app.schema.fingerprint import schema_fingerprint
from tests.api.test_mcp import _structured, _text, mcp_session
from tests.conftest import free_port

pytestmark = pytest.mark.integration

LOCK_KEY = 918_273_645


@dataclass
class World:
    """The private database, its roles, and a victim session a hostile function would terminate."""

    db: str
    owner: str
    reader: str
    base: str  # postgresql+psycopg://{user}@127.0.0.1:5432/{db}, with {user} to fill in
    sup: Engine
    victim: Connection

    def url(self, user: str) -> str:
        return self.base.format(user=user)

    def state(self) -> dict[str, Any]:
        """Everything a hostile function would change and a rollback would not undo."""
        with self.sup.connect() as conn:
            effects = conn.exec_driver_sql("SELECT count(*) FROM ops.effects").scalar_one()
            stats_reset = conn.exec_driver_sql(
                f"SELECT stats_reset FROM pg_stat_database WHERE datname = '{self.db}'"
            ).scalar_one()
            locks = conn.exec_driver_sql(
                f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {LOCK_KEY}"
            ).scalar_one()
        try:
            alive = self.victim.exec_driver_sql("SELECT 1").scalar_one() == 1
            self.victim.rollback()
        except sa.exc.DBAPIError:
            alive = False
        return {"effects": effects, "stats_reset": stats_reset, "locks": locks, "victim_alive": alive}

    def new_victim(self) -> None:
        """Open a fresh victim session and register it as the one ops.kill_idle() terminates."""
        self.victim.close()
        self.victim = sa.create_engine(self.url(self.reader), poolclass=sa.pool.NullPool).connect()
        pid = self.victim.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        self.victim.rollback()
        with self.sup.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM ops.victims; INSERT INTO ops.victims VALUES ({pid})")


def _setup_sql(db: str, owner: str, reader: str) -> tuple[list[str], list[str], list[str]]:
    """Return the set-up statements: as the superuser, as the owner role, then as the superuser again."""
    conninfo = f"dbname={db} user=postgres host=127.0.0.1 port=5432"
    definer = "LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog"
    first = [
        "REVOKE ALL ON DATABASE " + db + " FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {db} TO {owner}, {reader}, {reader}_sig",
        "CREATE SCHEMA ext",
        "CREATE EXTENSION dblink SCHEMA ext",
        "CREATE EXTENSION citext SCHEMA ext",
        "CREATE SCHEMA ops",
        "CREATE TABLE ops.effects (n serial PRIMARY KEY, what text)",
        "CREATE TABLE ops.victims (pid int)",
        # The effects: each commits or acts outside the preflight's read-only, rolled-back transaction.
        f"""CREATE FUNCTION ops.audit(what text) RETURNS int {definer} AS $$
            BEGIN
              PERFORM ext.dblink_exec('{conninfo}',
                'INSERT INTO ops.effects (what) VALUES (' || quote_literal(what) || ')');
              RETURN 1;
            END $$""",
        f"""CREATE FUNCTION ops.kill_idle(what text) RETURNS int {definer} AS $$
            BEGIN
              PERFORM pg_terminate_backend(pid) FROM ops.victims;
              RETURN 1;
            END $$""",
        f"""CREATE FUNCTION ops.reset_stats(what text) RETURNS int {definer} AS $$
            BEGIN PERFORM pg_stat_reset(); RETURN 1; END $$""",
        f"""CREATE FUNCTION ops.hold_lock(what text) RETURNS int {definer} AS $$
            BEGIN
              PERFORM ext.dblink_connect('keep', '{conninfo}');
              PERFORM ext.dblink_exec('keep', 'SELECT pg_advisory_lock({LOCK_KEY})');
              RETURN 1;
            END $$""",
        f"""CREATE FUNCTION ops.audit_eq(a text, b text) RETURNS boolean {definer} AS $$
            BEGIN PERFORM ops.audit('operator'); RETURN a = b; END $$""",
        """CREATE FUNCTION ops.safe_fn(t text) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT length($1)'""",
        """CREATE FUNCTION ops.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO ops.effects (what) VALUES ('trigger'); RETURN NEW; END $$""",
        "CREATE SCHEMA a1",
        "CREATE SCHEMA a2",
        "CREATE FUNCTION a1.dup(t text) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'",
        "CREATE FUNCTION a2.dup(t text) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2'",
        "CREATE TABLE a2.hidden (id int)",  # the reader has no USAGE on a2
        f"GRANT USAGE ON SCHEMA ops, ext, a1, a2 TO {owner}",
        f"GRANT USAGE ON SCHEMA a1 TO {reader}",
        f"CREATE SCHEMA fx AUTHORIZATION {owner}",
        f"GRANT USAGE ON SCHEMA fx TO {reader}",
        f"ALTER ROLE {owner} IN DATABASE {db} SET search_path = fx, ops, a1, ext, public",
        f"ALTER ROLE {reader} IN DATABASE {db} SET search_path = fx, a1, ext, public",
        # A type the owner can define casts for, with the cast functions the planner would fold.
        "CREATE TYPE fx.tag AS ENUM ('a', 'b')",
        f"ALTER TYPE fx.tag OWNER TO {owner}",
        f"""CREATE FUNCTION ops.audit_cast(t text) RETURNS fx.tag {definer} AS $$
            BEGIN PERFORM ops.audit('cast'); RETURN 'a'::fx.tag; END $$""",
        f"""CREATE FUNCTION ops.tag_text(t fx.tag) RETURNS text {definer} AS $$
            BEGIN PERFORM ops.audit('implicit cast'); RETURN t::text; END $$""",
    ]
    as_owner = [
        "CREATE TABLE fx.t (id serial PRIMARY KEY, x text, email ext.citext)",
        "CREATE TABLE fx.u (id int PRIMARY KEY, t_id int, amount numeric)",
        "CREATE TABLE fx.audited (id int, x text)",
        "CREATE TRIGGER audited_log AFTER INSERT ON fx.audited FOR EACH ROW EXECUTE FUNCTION ops.log_change()",
        "CREATE FUNCTION fx.audit_row(r fx.t) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT ops.audit(''row'')'",
        "CREATE VIEW fx.v_report AS SELECT id, ops.audit('view') AS a FROM fx.t",
        "CREATE VIEW fx.v_outer AS SELECT * FROM fx.v_report",
        "CREATE VIEW fx.v_clean AS SELECT id, upper(x) AS ux FROM fx.t",
        # built-ins that run SQL given as text, and one on the deny list: pg_depend records no call of a
        # built-in, so only the view's own definition shows them (STABLE: run to estimate selectivity)
        "CREATE VIEW fx.v_xml AS SELECT id FROM fx.t"
        " WHERE x = pg_catalog.table_to_xml(('fx.v_rep' || 'ort')::regclass, true, true, '')::text",
        "CREATE VIEW fx.v_xml_outer AS SELECT * FROM fx.v_xml",
        "CREATE VIEW fx.v_xid AS SELECT id FROM fx.t WHERE id::text::xid8 = pg_current_xact_id()",
        # constants the planner folds into every query that reads the view: 20 MB, over the 16 MB default
        "CREATE VIEW fx.v_big AS SELECT repeat('x', 20000000) AS s",
        "CREATE VIEW fx.v_big_outer AS SELECT length(s) AS n FROM fx.v_big",
        # a constant column a reader builds from: by the caller's query, or by another view
        "CREATE VIEW fx.params AS SELECT 20000007 AS big_n, 80 AS width",
        "CREATE VIEW fx.v_built AS SELECT repeat('x', p.big_n) AS r FROM fx.params p",
        # the same constant renamed by a view of a view of it
        "CREATE VIEW fx.v_renamed AS SELECT p.big_n AS k FROM fx.params p",
        "CREATE VIEW fx.v_renamed_twice AS SELECT r.k AS j FROM fx.v_renamed r",
        "CREATE MATERIALIZED VIEW fx.mv AS SELECT id FROM fx.t WITH NO DATA",
        "CREATE OPERATOR fx.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = ops.audit_eq)",
        "CREATE CAST (text AS fx.tag) WITH FUNCTION ops.audit_cast(text)",
        "CREATE CAST (fx.tag AS text) WITH FUNCTION ops.tag_text(fx.tag) AS IMPLICIT",
        "CREATE TABLE fx.tagged (id int, tag fx.tag)",
        "CREATE TABLE fx.ix (id int)",
        "CREATE INDEX ix_expr ON fx.ix ((id + ops.audit('index')))",
        "CREATE TABLE fx.parent (id int)",
        "CREATE TABLE fx.child () INHERITS (fx.parent)",
        "ALTER TABLE fx.child ADD CONSTRAINT child_check CHECK (id > ops.audit('check'))",
        "CREATE TABLE fx.part (id int) PARTITION BY RANGE (id)",
        "CREATE TABLE fx.part1 PARTITION OF fx.part FOR VALUES FROM (0) TO (100)",
        "ALTER TABLE fx.part1 ADD CONSTRAINT part1_check CHECK (id > ops.audit('partition check'))",
        "CREATE TABLE fx.secure (id int)",
        "ALTER TABLE fx.secure ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE fx.secure FORCE ROW LEVEL SECURITY",
        "CREATE POLICY secure_rows ON fx.secure USING (id > ops.audit('policy'))",
        "CREATE TABLE fx.xml_parent (id int, x text)",
        "CREATE TABLE fx.xml_child () INHERITS (fx.xml_parent)",
        "ALTER TABLE fx.xml_child ADD CONSTRAINT xml_check"
        " CHECK (x <> table_to_xml(('fx.v_rep' || 'ort')::regclass, true, true, '')::text)",
        "CREATE TABLE fx.lineorder (orderkey int, orderdate date, custkey int, revenue numeric)",
        "CREATE TABLE fx.customer (c_custkey int PRIMARY KEY, c_name text, c_region text)",
        "CREATE TABLE fx.tree (id int PRIMARY KEY, parent_id int)",
        # user-defined aggregates are refused like any user routine, whatever they are built from
        "CREATE AGGREGATE fx.total(int) (SFUNC = int4pl, STYPE = int)",
        "INSERT INTO fx.t (x, email) VALUES ('a', 'A@B.example'), ('b', 'c@d.example')",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA fx TO {reader}",
    ]
    last = ["ANALYZE"]
    return first, as_owner, last


@pytest.fixture(scope="module")
def world(pg_url: str) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:8]
    db, owner, reader = f"dbm{suffix}_rp", f"dbm{suffix}_owner", f"dbm{suffix}_reader"
    server = sa.make_url(pg_url)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {owner} LOGIN")
        conn.exec_driver_sql(f"CREATE ROLE {reader} LOGIN")
        conn.exec_driver_sql(f"CREATE ROLE {reader}_sig LOGIN IN ROLE pg_signal_backend")
        conn.exec_driver_sql(f"CREATE DATABASE {db}")
    base = f"postgresql+psycopg://{{user}}@{server.host}:{server.port or 5432}/{db}"
    sup = sa.create_engine(base.format(user=server.username or "postgres"))
    victim: Connection | None = None
    try:
        first, as_owner, last = _setup_sql(db, owner, reader)
        # Committed first: the functions' dblink writes (CREATE INDEX folds them once) need the tables.
        with sup.begin() as conn:
            for statement in first:
                conn.exec_driver_sql(statement)
        with sup.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL ROLE {owner}")
            for statement in as_owner:
                conn.exec_driver_sql(statement)
        with sup.begin() as conn:
            for statement in last:
                conn.exec_driver_sql(statement)
        victim = sa.create_engine(base.format(user=reader), poolclass=sa.pool.NullPool).connect()
        world = World(db=db, owner=owner, reader=reader, base=base, sup=sup, victim=victim)
        world.new_victim()
        yield world
        victim = world.victim
    finally:
        if victim is not None:
            victim.close()
        sup.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {owner}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {reader}")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {reader}_sig")
        admin.dispose()


def _settings(world: World, tmp: Path, **preflight: Any) -> Settings:
    """Profiles: owner (the default), reader, super, and owner again with the given preflight options."""
    options = ", ".join(f"{k}: {v}" for k, v in preflight.items())
    profiles = tmp / "profiles.yml"
    profiles.write_text(
        "profiles:\n"
        f"  owner: {{database_url: '{world.url(world.owner)}', include_schemas: [fx],"
        " preflight: {allow_functions: [ops.safe_fn, a1.dup]}}\n"
        f"  reader: {{database_url: '{world.url(world.reader)}', include_schemas: [fx]}}\n"
        f"  super: {{database_url: '{world.url('postgres')}', include_schemas: [fx]}}\n"
        f"  custom: {{database_url: '{world.url(world.owner)}', include_schemas: [fx], preflight: {{{options}}}}}\n"
    )
    return load_settings(
        profiles_file=profiles,
        default_profile="owner",
        data_dir=tmp / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
    )


@pytest.fixture(scope="module")
def client(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = _settings(world, tmp_path_factory.mktemp("routines"))
    with TestClient(create_app(settings)) as c:
        yield c


def _preflight(client: TestClient, sql: str, profile: str | None = None) -> dict[str, Any]:
    response = client.post("/v1/preflight", json={"sql": sql, "profile": profile})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# (id, SQL, a name the refusal must mention). None of these names a hostile function in a way the
# guard could see, except the direct calls, which the guard alone accepted before the policy.
ATTACKS: list[tuple[str, str, str]] = [
    ("direct_call", "SELECT * FROM fx.t WHERE id = ops.audit('direct')", "ops.audit(text)"),
    ("unqualified_call_on_the_search_path", "SELECT * FROM t WHERE id = audit('path')", "ops.audit(text)"),
    ("view", "SELECT * FROM fx.v_report", "view fx.v_report → function ops.audit(text)"),
    ("nested_view", "SELECT * FROM v_outer", "view fx.v_outer → view fx.v_report → function ops.audit"),
    # count(*) reads no column of the view, so the planner drops the call: refused all the same.
    ("view_whose_column_is_unused", "SELECT count(*) FROM fx.v_outer", "view fx.v_report"),
    ("view_in_a_subquery", "SELECT * FROM fx.t WHERE id IN (SELECT id FROM fx.v_report)", "fx.v_report"),
    (
        "view_next_to_a_cte_of_the_same_name_in_another_scope",
        "SELECT * FROM (WITH v_report AS (SELECT 1 AS id) SELECT id FROM v_report) a CROSS JOIN v_report",
        "view fx.v_report",
    ),
    ("operator_qualified", "SELECT 1 WHERE 'a' OPERATOR(fx.===) 'b'", "operator fx.===(text, text)"),
    ("operator_on_the_search_path", "SELECT 1 WHERE 'a' === 'b'", "operator fx.===(text, text)"),
    ("explicit_cast", "SELECT 'a'::text::fx.tag", "ops.audit_cast(text)"),
    ("cast_in_function_syntax", "SELECT fx.tag('a'::text)", "ops.audit_cast(text)"),
    ("implicit_cast", "SELECT length('a'::fx.tag)", "ops.tag_text(fx.tag)"),
    ("implicit_cast_of_a_column", "SELECT length(tag) FROM fx.tagged", "ops.tag_text(fx.tag)"),
    ("attribute_notation", "SELECT (ROW(1, 'x', NULL)::fx.t).audit_row", "fx.audit_row(fx.t)"),
    ("index_expression", "SELECT * FROM fx.ix WHERE id = 1", "index fx.ix_expr → function ops.audit"),
    ("check_constraint_of_a_child", "SELECT * FROM fx.parent WHERE id = 5", "check constraint child_check"),
    ("check_constraint_of_a_partition", "SELECT * FROM fx.part WHERE id = 5", "check constraint part1_check"),
    ("row_level_security_policy", "SELECT * FROM fx.secure", "row-level security policy secure_rows"),
    (
        "view_calling_sql_as_text",
        "SELECT * FROM fx.v_xml",
        "view fx.v_xml → function pg_catalog.table_to_xml(",
    ),
    (
        "view_over_a_view_calling_sql_as_text",
        "SELECT * FROM v_xml_outer",
        "view fx.v_xml → function pg_catalog",
    ),
    (
        "view_calling_a_denied_built_in",
        "SELECT * FROM fx.v_xid",
        "view fx.v_xid → function pg_catalog.pg_current",
    ),
    (
        "check_constraint_calling_sql_as_text",
        "SELECT * FROM fx.xml_parent WHERE x = 'a'",
        "check constraint xml_check",
    ),
    ("terminates_a_backend", "SELECT ops.kill_idle('x')", "ops.kill_idle(text)"),
    ("resets_statistics", "SELECT 1 FROM fx.t WHERE id = ops.reset_stats('x')", "ops.reset_stats(text)"),
    ("leaves_a_lock_held", "SELECT ops.hold_lock('x')", "ops.hold_lock(text)"),
    ("user_defined_aggregate", "SELECT total(id) FROM fx.t", "function fx.total(integer) (user-defined"),
    ("user_defined_aggregate_as_a_window", "SELECT fx.total(id) OVER () FROM fx.t", "fx.total(integer)"),
    (
        "view_folding_a_huge_constant",
        "SELECT length(s) FROM fx.v_big",
        "view fx.v_big → its definition's constants",
    ),
    (
        "nested_view_folding_a_huge_constant",
        "SELECT * FROM fx.v_big_outer",
        "view fx.v_big_outer → ",  # its own definition counts what it reads of fx.v_big
    ),
    (
        "constant_column_of_a_view",
        "SELECT length(repeat('x', p.big_n + 1)) FROM fx.params p",
        "with the constant columns of the views it reads",
    ),
    (
        "view_building_from_a_view_s_constant",
        "SELECT length(r) FROM fx.v_built",
        "view fx.v_built → its definition",
    ),
    (
        "constant_column_renamed_through_two_views",
        "SELECT length(repeat('x', j)) FROM fx.v_renamed_twice",
        "with the constant columns of the views it reads",
    ),
]
# Each of these has an effect at plan time when nothing stops it (the canary proves it).
CANARIES = [
    "direct_call",
    "view",
    "view_calling_sql_as_text",
    "nested_view",
    "operator_qualified",
    "explicit_cast",
    "implicit_cast",
    "attribute_notation",
    "index_expression",
    "check_constraint_of_a_child",
    "row_level_security_policy",
    "terminates_a_backend",
    "resets_statistics",
    "leaves_a_lock_held",
]


def _attack(name: str) -> str:
    return next(sql for key, sql, _ in ATTACKS if key == name)


@pytest.mark.parametrize("name", CANARIES)
def test_without_the_policy_each_attack_has_its_effect(world: World, name: str) -> None:
    """Today's run_explain (guard, read-only rolled-back transaction) does not contain these effects."""
    engine = sa.create_engine(world.url(world.owner))
    try:
        before = world.state()
        verdict = check_sql(_attack(name), "postgresql")
        assert verdict.ok and verdict.statement is not None, verdict.reason  # the guard lets it through
        run_explain(engine, verdict.statement)
        assert world.state() != before
    finally:
        engine.dispose()  # also closes a dblink session left holding the lock
        world.new_victim()


@pytest.mark.parametrize(("name", "sql", "mentions"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_an_attack_through_an_existing_object_is_refused_and_changes_nothing(
    world: World, client: TestClient, name: str, sql: str, mentions: str
) -> None:
    before = world.state()
    body = _preflight(client, sql)
    assert body["ok"] is False and body["error_kind"] == "unsafe" and body["plan"] is None, body
    assert body["error"].startswith("refused:") and mentions in body["error"], body["error"]
    assert world.state() == before
    assert body["cached"] is False and _preflight(client, sql)["cached"] is False  # a refusal is never cached


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (
            "view_folding_a_huge_constant",
            "refused: the query reaches definitions that would make the planner ",
        ),
        (
            "direct_call",
            "refused: the query reaches routines that are not known to be free of side effects: ",
        ),
    ],
)
def test_a_refusal_says_what_kind_of_problem_it_is(
    world: World, client: TestClient, name: str, says: str
) -> None:
    # a view's constants are a cost, not a routine with side effects: the refusal must not say the latter
    body = _preflight(client, _attack(name))
    assert body["error"].startswith(says), body["error"]


@pytest.mark.parametrize(
    "name", ["direct_call", "view", "operator_qualified", "index_expression", "terminates_a_backend"]
)
def test_a_superuser_profile_refuses_the_same_attacks(world: World, client: TestClient, name: str) -> None:
    before = world.state()
    body = _preflight(client, _attack(name), "super")
    assert body["ok"] is False and body["error_kind"] == "unsafe", body
    assert world.state() == before


LEGIT: list[tuple[str, str]] = [
    ("small_constant_column_of_a_view", "SELECT repeat('-', p.width) FROM fx.params p"),
    ("join_and_aggregate", "SELECT t.x, sum(u.amount) FROM fx.t t JOIN fx.u u ON u.t_id = t.id GROUP BY t.x"),
    (
        "window_functions",
        "SELECT id, row_number() OVER (ORDER BY id), lag(x) OVER w FROM fx.t WINDOW w AS (ORDER BY id)",
    ),
    (
        "lateral",
        "SELECT t.id, l.amount FROM fx.t t CROSS JOIN LATERAL (SELECT amount FROM fx.u WHERE t_id = t.id LIMIT 1) l",
    ),
    ("grouping_sets", "SELECT x, email, count(*) FROM fx.t GROUP BY GROUPING SETS ((x), (email), ())"),
    (
        "recursive_cte",
        "WITH RECURSIVE r AS (SELECT id, parent_id FROM fx.tree WHERE parent_id IS NULL "
        "UNION ALL SELECT c.id, c.parent_id FROM fx.tree c JOIN r ON c.parent_id = r.id) SELECT * FROM r",
    ),
    (
        "common_built_ins",
        "SELECT lower(x), upper(x), coalesce(x, ''), length(x), regexp_replace(x, 'a', 'b'), "
        "date_trunc('month', now()), to_char(now(), 'YYYY'), md5(x), round(1.5), greatest(1, 2), "
        "extract(year FROM now()), x || 'y', position('a' IN x), CAST(id AS text) FROM fx.t",
    ),
    ("serial_column_table", "SELECT * FROM fx.t WHERE id = 1 ORDER BY x"),
    ("table_with_an_audit_trigger", "SELECT * FROM fx.audited WHERE id > 3"),
    ("citext_equality", "SELECT * FROM fx.t WHERE email = 'a@b.example'"),
    ("citext_functions", "SELECT replace(email, 'a', 'b'), strpos(email, 'x'), lower(email) FROM fx.t"),
    ("clean_view", "SELECT * FROM fx.v_clean WHERE ux LIKE 'A%'"),
    ("materialized_view_is_not_expanded", "SELECT * FROM fx.mv"),
    (
        "star_schema_columns",
        # (lo_* column names are refused by the guard itself today: another change fixes that)
        "SELECT lo.orderdate, c.c_region, sum(lo.revenue) AS revenue FROM fx.lineorder lo "
        "JOIN fx.customer c ON c.c_custkey = lo.custkey WHERE lo.orderdate >= DATE '1997-01-01' "
        "GROUP BY lo.orderdate, c.c_region ORDER BY revenue DESC",
    ),
    ("allow_listed_function", "SELECT ops.safe_fn(x) FROM fx.t"),
    ("allow_listed_name_first_on_the_search_path", "SELECT dup('x')"),
    ("catalog_query", "SELECT relname FROM pg_class WHERE relnamespace = 'fx'::regnamespace"),
]


@pytest.mark.parametrize(("name", "sql"), LEGIT, ids=[x[0] for x in LEGIT])
def test_a_legitimate_read_is_accepted(world: World, client: TestClient, name: str, sql: str) -> None:
    before = world.state()
    body = _preflight(client, sql)
    assert body["ok"] is True and body["plan"], body
    assert world.state() == before


def test_a_name_in_a_schema_off_the_search_path_is_judged_only_when_qualified(
    world: World, client: TestClient
) -> None:
    # a1.dup is allow-listed and on the path; a2.dup (the same name) is neither.
    assert _preflight(client, "SELECT dup('x')")["ok"] is True
    refused = _preflight(client, "SELECT a2.dup('x')")
    assert refused["error_kind"] == "unsafe" and "function a2.dup(text) (user-defined" in refused["error"]
    gate = RoutineGate("postgresql", ("a1.dup",))
    verdict = check_sql("SELECT dup('x')", "postgresql")
    engine = sa.create_engine(world.url(world.owner))
    try:
        with engine.connect() as conn:
            assert gate.check(conn, verdict.reach) is None
            conn.exec_driver_sql("SET search_path = a2, a1")  # now a2.dup is visible first
            reason = gate.check(conn, verdict.reach)
            conn.rollback()
    finally:
        engine.dispose()
    assert reason is not None and "a2.dup(text)" in reason and "a1.dup" not in reason


def _additive_sum(conn: Connection) -> int:
    """The sum of per-row hashes of (oid, xmin) over the definitions catalogs: the fingerprint of before."""
    parts = " UNION ALL ".join(
        f"SELECT pg_catalog.hashint8(({key}::int8 << 32) # xmin::text::int8 # {salt}) AS h "
        f"FROM pg_catalog.{table} WHERE {where}"
        for salt, (table, key, where) in enumerate(catalog_postgres._FINGERPRINT_PARTS, start=1)
    )
    return int(conn.exec_driver_sql(f"SELECT coalesce(sum(h), 0) FROM ({parts}) p").scalar_one())


def test_views_replaced_at_chosen_transaction_ids_are_seen_on_the_next_preflight(
    world: World, client: TestClient
) -> None:
    # The owner replaces two views in transactions whose ids it chose (by burning ids, a fraction of a second)
    # so that the sum of the rows' hashes of (oid, xmin) stays the same: a birthday search over 2^19
    # candidate ids for each row. A fingerprint that is such a sum would not move, and the cached catalog
    # would still call fx.v_fp1 clean while it now calls ops.audit().
    rewrite_salt = 1 + [p[0] for p in catalog_postgres._FINGERPRINT_PARTS].index("pg_rewrite")
    url = world.sup.url
    raw = psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, dbname=url.database, autocommit=True
    )
    cur = raw.cursor()

    def run(sql: str) -> Any:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None

    def replace_at(xid: int, view: str, body: str) -> None:
        # Burns ids in a loop on the server and replaces the view in the transaction that got ``xid``: no
        # round trip in between, in which another session could take it.
        try:
            run(f"CALL pg_temp.replace_at({xid}, $ddl$CREATE OR REPLACE VIEW {view} AS {body}$ddl$)")
        except psycopg.Error as exc:
            raise AssertionError(f"id {xid} was taken first: {exc}") from None
        (got,) = run(f"SELECT xmin::text::int8 FROM pg_rewrite WHERE ev_class = '{view}'::regclass")[0]
        assert got == xid, (got, xid)

    run(
        "CREATE PROCEDURE pg_temp.replace_at(target int8, ddl text) LANGUAGE plpgsql AS $$ "
        "DECLARE x int8; BEGIN LOOP x := txid_current() % 4294967296; "
        "IF x = target THEN EXECUTE ddl; COMMIT; RETURN; END IF; "
        "IF x > target THEN RAISE EXCEPTION 'past the id: %', x; END IF; COMMIT; END LOOP; END $$"
    )
    for view in ("fx.v_fp1", "fx.v_fp2"):
        run(f"BEGIN; SET LOCAL ROLE {world.owner}; CREATE VIEW {view} AS SELECT id, x FROM fx.t; COMMIT")
    try:
        assert _preflight(client, "SELECT id FROM fx.v_fp1 WHERE id = 1")["ok"] is True
        found = None
        for _ in range(5):  # another session may take an id first: search again from further on
            rows = run(
                "SELECT r.oid::int8, r.xmin::text::int8, v.relname FROM pg_rewrite r "
                "JOIN pg_class v ON v.oid = r.ev_class WHERE v.relname IN ('v_fp1', 'v_fp2') ORDER BY v.relname"
            )
            (o1, a1, _), (o2, a2, _) = rows
            (start,) = run("SELECT txid_current() % 4294967296 + 1000")[0]
            n = 1 << 19
            h = f"pg_catalog.hashint8((%s::int8 << 32) # x # {rewrite_salt})"
            first = dict(run(f"SELECT {h % o1}::int8, x FROM generate_series({start}::int8, {start + n}) x"))
            (target,) = run(
                f"SELECT {h.replace('x', str(a1)) % o1}::int8 + {h.replace('x', str(a2)) % o2}::int8"
            )[0]
            with world.sup.connect() as conn:
                before = _additive_sum(conn)
            pairs = run(f"SELECT x, {h % o2}::int8 FROM generate_series({start}::int8, {start + n}) x")
            match = next(
                (
                    (first[target - h2], x2)
                    for x2, h2 in pairs
                    if target - h2 in first and first[target - h2] != x2
                ),
                None,
            )
            assert match is not None, "no colliding pair of ids in this range"
            x1, x2 = match
            steps = sorted(
                [
                    (x1, "fx.v_fp1", "SELECT id, x FROM fx.t WHERE id = ops.audit('forged')"),
                    (x2, "fx.v_fp2", "SELECT id, x FROM fx.t WHERE id > 0"),
                ]
            )
            try:
                for xid, view, body in steps:
                    replace_at(xid, view, body)
            except AssertionError:
                continue
            with world.sup.connect() as conn:
                if _additive_sum(conn) == before:
                    found = match
                    break
        assert found is not None, "the ids could not be taken in order"
        state = world.state()
        body = _preflight(client, "SELECT id FROM fx.v_fp1 WHERE id = 2")
        assert (
            body["error_kind"] == "unsafe" and "view fx.v_fp1 → function ops.audit(text)" in body["error"]
        ), body
        assert world.state() == state
    finally:
        run("DROP VIEW IF EXISTS fx.v_fp1, fx.v_fp2")
        raw.close()


def test_a_view_replaced_to_call_a_bad_function_is_refused_on_the_very_next_preflight(
    world: World, client: TestClient
) -> None:
    with world.sup.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL ROLE {world.owner}")
        conn.exec_driver_sql("CREATE VIEW fx.v_stale AS SELECT id, x FROM fx.t")
    gate = client.app.state.runtime.profile("owner").routines  # type: ignore[attr-defined]
    try:
        assert _preflight(client, "SELECT * FROM fx.v_stale")["ok"] is True
        loads = gate.loads
        with world.sup.begin() as conn:  # same columns: the schema fingerprint does not move
            conn.exec_driver_sql(f"SET LOCAL ROLE {world.owner}")
            conn.exec_driver_sql(
                "CREATE OR REPLACE VIEW fx.v_stale AS SELECT id, ops.audit('stale')::text AS x FROM fx.t"
            )
        before = world.state()
        body = _preflight(client, "SELECT id, x FROM fx.v_stale")
        assert (
            body["error_kind"] == "unsafe" and "view fx.v_stale → function ops.audit(text)" in body["error"]
        )
        assert gate.loads == loads + 1  # re-read once, in the EXPLAIN's transaction
        # The answer cached before the change is not served any more: its key named the old definitions.
        again = _preflight(client, "SELECT * FROM fx.v_stale")
        assert again["error_kind"] == "unsafe" and again["cached"] is False
        assert world.state() == before
        assert _preflight(client, "SELECT * FROM fx.v_clean")["ok"] is True and gate.loads == loads + 1
    finally:
        with world.sup.begin() as conn:
            conn.exec_driver_sql("DROP VIEW fx.v_stale")


@pytest.mark.parametrize(
    ("change", "moves"),
    [
        ("CREATE OR REPLACE VIEW fx.v_fp AS SELECT id, upper(x) AS x FROM fx.t", True),
        (
            "CREATE OR REPLACE FUNCTION ops.safe_fn(t text) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2'",
            True,
        ),
        ("CREATE INDEX fp_idx ON fx.u ((amount + 1))", True),
        ("ALTER TABLE fx.u ADD CONSTRAINT fp_check CHECK (amount > 0)", True),
        ("CREATE POLICY fp_policy ON fx.u USING (true)", True),
        ("CREATE OPERATOR fx.### (LEFTARG = int, RIGHTARG = int, FUNCTION = int4pl)", True),
        ("CREATE TABLE fx.fp_child () INHERITS (fx.u)", True),
        ("INSERT INTO fx.u VALUES (99, 1, 1.5)", False),
        ("ANALYZE fx.u", False),
    ],
)
def test_the_definitions_fingerprint_moves_with_what_the_planner_runs_and_only_that(
    world: World, change: str, moves: bool
) -> None:
    with world.sup.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW fx.v_fp AS SELECT id, x FROM fx.t")
    try:
        with world.sup.connect() as conn:
            before = catalog_postgres.read_fingerprint(conn)
        schema_before = schema_fingerprint(world.sup, ["fx"])
        with world.sup.begin() as conn:
            conn.exec_driver_sql(change)
        with world.sup.connect() as conn:
            after = catalog_postgres.read_fingerprint(conn)
        assert (after != before) is moves
        if change.startswith("CREATE OR REPLACE VIEW"):
            # same columns: the schema fingerprint (tables and columns) does not see it, this one does
            assert schema_fingerprint(world.sup, ["fx"]) == schema_before
    finally:
        with world.sup.begin() as conn:
            for undo in (
                "DROP VIEW IF EXISTS fx.v_fp",
                "DROP INDEX IF EXISTS fx.fp_idx",
                "ALTER TABLE fx.u DROP CONSTRAINT IF EXISTS fp_check",
                "DROP POLICY IF EXISTS fp_policy ON fx.u",
                "DROP OPERATOR IF EXISTS fx.### (int, int)",
                "DROP TABLE IF EXISTS fx.fp_child",
                "DELETE FROM fx.u WHERE id = 99",
                "CREATE OR REPLACE FUNCTION ops.safe_fn(t text) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT length($1)'",
            ):
                conn.exec_driver_sql(undo)


def test_allow_listing_a_schema_admits_its_functions(world: World) -> None:
    verdict = check_sql("SELECT ops.audit('x'), ops.kill_idle('y')", "postgresql")
    engine = sa.create_engine(world.url(world.owner))
    try:
        with engine.connect() as conn:
            refused = RoutineGate("postgresql", ("ops.audit",)).check(conn, verdict.reach)
            admitted = RoutineGate("postgresql", ("ops.*",)).check(conn, verdict.reach)
            conn.rollback()
    finally:
        engine.dispose()
    assert refused is not None and "ops.kill_idle(text)" in refused and "ops.audit(" not in refused
    assert admitted is None


def test_samples_are_not_read_from_relations_that_reach_untrusted_routines(
    world: World, client: TestClient
) -> None:
    before = world.state()
    response = client.post("/v1/prompt-items/schema", json={"profile": "reader", "with_examples": True})
    assert response.status_code == 200, response.text
    assert world.state() == before
    text = response.json()["text"]
    assert "A@B.example" in text or "a@b.example" in text.lower()  # fx.t is sampled
    gate = client.app.state.runtime.profile("reader").routines  # type: ignore[attr-defined]
    from dbmeta_app.preflight.policy import sample_refusals
    from dbmeta_app.preflight.reach import Name

    # a2.hidden is in a schema the reader may not use: it must not fail the check of the others
    names = [Name("fx", n) for n in ("t", "v_report", "ix", "secure", "parent", "v_clean")] + [
        Name("a2", "hidden")
    ]
    engine = sa.create_engine(world.url(world.reader))
    try:
        refused = sample_refusals(engine, gate, names)
    finally:
        engine.dispose()
    assert set(refused) == {
        Name("fx", "v_report"),
        Name("fx", "ix"),
        Name("fx", "secure"),
        Name("fx", "parent"),
    }
    assert "function ops.audit(text)" in refused[Name("fx", "v_report")]


# --- least privilege -------------------------------------------------------------------------------


def test_the_superuser_report_says_superuser_and_the_reader_report_is_clean(world: World) -> None:
    users = ("postgres", world.owner, world.reader, f"{world.reader}_sig")
    engines = {user: sa.create_engine(world.url(user)) for user in users}
    try:
        superuser = inspect_privileges(engines["postgres"])
        owner = inspect_privileges(engines[world.owner])
        reader = inspect_privileges(engines[world.reader])
        signaller = inspect_privileges(engines[f"{world.reader}_sig"])
    finally:
        for engine in engines.values():
            engine.dispose()
    assert superuser.checked and superuser.problems and superuser.problems[0].startswith("superuser")
    assert owner.checked and any("owns schemas fx" in p for p in owner.problems), owner.problems
    assert any(p.startswith("owns ") and "tables, views or sequences (fx." in p for p in owner.problems)
    assert any("EXECUTE on server file, remote or admin functions (dblink" in p for p in owner.problems)
    assert reader.checked and reader.problems == () and reader.least_privilege
    assert signaller.problems == ("member of pg_signal_backend (can cancel and terminate other sessions)",)
    # never the login: reports go to logs and /readyz
    assert not any(world.owner in p or world.reader in p for p in (*owner.problems, *reader.problems))


def test_require_least_privilege_refuses_preflight_and_samples_for_an_over_privileged_role(
    world: World, tmp_path: Path
) -> None:
    settings = _settings(world, tmp_path, require_least_privilege="true")
    before = world.state()
    with TestClient(create_app(settings)) as c:
        body = _preflight(c, "SELECT * FROM fx.t", "custom")
        assert body["ok"] is False and body["error_kind"] == "unsafe"
        assert "require_least_privilege" in body["error"] and "owns schemas fx" in body["error"]
        assert world.owner not in body["error"]
        schema = c.post("/v1/prompt-items/schema", json={"profile": "custom", "with_examples": True})
        assert schema.status_code == 200 and "a@b.example" not in schema.json()["text"].lower()
        ready = c.get("/readyz").json()["checks"]["privileges"]
        assert set(ready) == {"owner", "reader", "super", "custom"}
        assert _preflight(c, "SELECT * FROM fx.t", "reader")["ok"] is True
    assert world.state() == before


def test_readyz_reports_privileges_per_profile_without_the_login(world: World, client: TestClient) -> None:
    deadline = time.monotonic() + 15
    while True:
        entry = client.get("/readyz").json()["checks"]["privileges"]
        if all(not e.get("pending") for e in entry.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert entry["reader"] == {"least_privilege": True, "problems": []}
    assert entry["super"]["least_privilege"] is False and entry["super"]["problems"][0].startswith(
        "superuser"
    )
    assert entry["owner"]["least_privilege"] is False
    assert world.owner not in str(entry) and world.reader not in str(entry)


# --- over MCP ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mcp_url(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the app with uvicorn (the MCP endpoint needs a real server) on the owner profile."""
    port = free_port()
    app = create_app(_settings(world, tmp_path_factory.mktemp("routines_mcp")))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="routines-mcp-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize(
    "name", ["view", "operator_on_the_search_path", "index_expression", "terminates_a_backend"]
)
async def test_over_mcp_an_attack_is_an_unsafe_verdict_and_changes_nothing(
    world: World, mcp_url: str, name: str
) -> None:
    before = world.state()
    async with mcp_session(mcp_url) as session:
        result = await session.call_tool("preflight_query", {"sql": _attack(name)})
    answer = _structured(result)
    assert answer["ok"] is False and answer["error_kind"] == "unsafe" and answer["plan"] is None
    assert _text(result).startswith("Preflight FAILED (unsafe): refused:")
    assert world.state() == before


async def test_over_mcp_a_legitimate_read_gets_a_plan(world: World, mcp_url: str) -> None:
    async with mcp_session(mcp_url) as session:
        result = await session.call_tool("preflight_query", {"sql": "SELECT * FROM fx.v_clean WHERE id > 1"})
    assert _structured(result)["ok"] is True
