"""What the PostgreSQL planner reaches beyond the names a query writes: the routine policy follows it.

A hostile database owner (a superuser, for the operator classes) plants PL/pgSQL where the planner, not the
query, calls it: the commutator or negator of an operator the query uses, a range type's ``subtype_diff``
(run by the range selectivity estimator), the default btree operator class of a type (array comparison,
GREATEST), a range's ``subtype_opclass`` (range input), an operator on a domain nested deep inside composite
types, and a view whose definition the service's parser cannot read. Each hostile function raises
``EVIL <name>`` in a read-only transaction (a preflight's; not while the set-up runs ANALYZE): the canaries prove that the plain EXPLAIN (no policy) runs it; the gate must refuse the
query first and name the path. A control database with only built-in operators, ordinary ranges and
ordinary composite types stays accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pglast
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.preflight import catalog_postgres
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import RoutineGate
from tests._scratch import pg_database

pytestmark = pytest.mark.integration


def _evil(name: str, args: str, returns: str, value: str = "a > b") -> str:
    return (
        f"CREATE FUNCTION public.{name}({args}) RETURNS {returns} LANGUAGE plpgsql IMMUTABLE AS "
        "$$BEGIN IF pg_catalog.current_setting('transaction_read_only') = 'on' THEN "
        f"RAISE EXCEPTION 'EVIL {name}'; END IF; RETURN {value}; END$$"
    )


SETUP: list[str] = [
    # 1. commutator and negator
    _evil("evil_gt", "a text, b text", "boolean"),
    "CREATE OPERATOR public.>>> (LEFTARG = text, RIGHTARG = text, PROCEDURE = public.evil_gt,"
    " RESTRICT = scalargtsel, JOIN = scalargtjoinsel)",
    "CREATE OPERATOR public.<<< (LEFTARG = text, RIGHTARG = text, PROCEDURE = pg_catalog.text_lt,"
    " COMMUTATOR = OPERATOR(public.>>>), RESTRICT = scalarltsel, JOIN = scalarltjoinsel)",
    _evil("evil_ne", "a text, b text", "boolean", "a <> b"),
    "CREATE OPERATOR public.!== (LEFTARG = text, RIGHTARG = text, PROCEDURE = public.evil_ne,"
    " RESTRICT = scalargtsel, JOIN = scalargtjoinsel)",
    "CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, PROCEDURE = pg_catalog.texteq,"
    " NEGATOR = OPERATOR(public.!==), RESTRICT = eqsel, JOIN = eqjoinsel)",
    # a chain: @@@ (all built-in routines) has the negator <<<, whose commutator is >>>: reached transitively
    "CREATE OPERATOR public.@@@ (LEFTARG = text, RIGHTARG = text, PROCEDURE = pg_catalog.text_ge,"
    " NEGATOR = OPERATOR(public.<<<), RESTRICT = scalargtsel, JOIN = scalargtjoinsel)",
    "CREATE TABLE public.customers (id int PRIMARY KEY, name text)",
    "INSERT INTO public.customers SELECT g, 'name' || g FROM generate_series(1, 1000) g",
    "CREATE VIEW public.v_lt AS SELECT id FROM public.customers WHERE 'name5' <<< name",
    # 2. a range type's subtype_diff, run by the range selectivity estimator
    _evil("evil_diff", "a float8, b float8", "float8", "a - b"),
    "CREATE TYPE public.frange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = public.evil_diff)",
    "CREATE TABLE public.bookings (id int, span public.frange)",
    "INSERT INTO public.bookings SELECT g, public.frange(g, g + 10) FROM generate_series(1, 1000) g",
    # 3. the default btree operator class of a built-in type (array comparison, GREATEST)
    _evil("evil_point_cmp", "a point, b point", "int", "0"),
    _evil("evil_point_lt", "a point, b point", "boolean", "false"),
    _evil("evil_point_gt", "a point, b point", "boolean", "false"),
    "CREATE OPERATOR public.#<# (LEFTARG = point, RIGHTARG = point, PROCEDURE = public.evil_point_lt)",
    "CREATE OPERATOR public.#># (LEFTARG = point, RIGHTARG = point, PROCEDURE = public.evil_point_gt)",
    "CREATE OPERATOR CLASS public.evil_point_ops DEFAULT FOR TYPE point USING btree AS"
    " OPERATOR 1 public.#<#, OPERATOR 3 ~=, OPERATOR 5 public.#>#,"
    " FUNCTION 1 public.evil_point_cmp(point, point)",
    # 3b. a range whose subtype_opclass is a user operator class (range input compares the bounds)
    _evil("evil_int4_cmp", "a int, b int", "int", "btint4cmp(a, b)"),
    "CREATE OPERATOR CLASS public.evil_int4_ops FOR TYPE int4 USING btree AS"
    " OPERATOR 1 <, OPERATOR 3 =, OPERATOR 5 >, FUNCTION 1 public.evil_int4_cmp(int, int)",
    "CREATE TYPE public.winrange AS RANGE (SUBTYPE = int4, SUBTYPE_OPCLASS = public.evil_int4_ops)",
    "CREATE TABLE public.slots (id int, win public.winrange)",
    # 4. an operator on a domain nested five composite types deep
    "CREATE DOMAIN public.dtext AS text",
    _evil("evil_deq", "a public.dtext, b public.dtext", "boolean", "a::text = b::text"),
    "CREATE OPERATOR public.= (LEFTARG = public.dtext, RIGHTARG = public.dtext,"
    " PROCEDURE = public.evil_deq, RESTRICT = eqsel)",
    "CREATE TYPE public.c5 AS (v public.dtext)",
    "CREATE TYPE public.c4 AS (x public.c5)",
    "CREATE TYPE public.c3 AS (x public.c4)",
    "CREATE TYPE public.c2 AS (x public.c3)",
    "CREATE TYPE public.c1 AS (x public.c2)",
    "CREATE TABLE public.nest (id int, c public.c1)",
    # 5. a view whose definition (PostgreSQL 15 leaves system_user unquoted) pglast cannot parse
    "CREATE TABLE public.system_user (x int)",
    "CREATE VIEW public.v_big AS SELECT length(repeat('x'::text, 100000000)) AS n, system_user.x"
    " FROM public.system_user system_user",
    "CREATE VIEW public.v_small AS SELECT length(repeat('x'::text, 10)) AS n, system_user.x"
    " FROM public.system_user system_user",
    "ANALYZE",
]

# Values coerced to a type the query never names, in a database of its own (the one above makes every integer
# reach a hostile operator class).
COERCION: list[str] = [
    # a domain's CHECK, run wherever a value is coerced to the domain: a literal taking a column's type through
    # an array, a composite's attribute, a range's bound (array_in, record_in, range_in → domain_in → CHECK)
    _evil("evil_pos", "a int", "boolean", "a > 0"),
    "CREATE DOMAIN public.posint AS int CHECK (public.evil_pos(VALUE))",
    "CREATE TABLE public.stock (id int, qty public.posint)",
    "CREATE TYPE public.parcel AS (q public.posint, n int)",
    "CREATE TABLE public.parcels (id int, p public.parcel)",
    "CREATE TYPE public.posrange AS RANGE (SUBTYPE = public.posint)",
    "CREATE TABLE public.windows (id int, r public.posrange)",
    # a range's multirange (made by multirange(anyrange), range_agg), reached by an overload of a built-in
    "CREATE TYPE public.irange AS RANGE (SUBTYPE = int4)",
    "CREATE TABLE public.spans (id int, r public.irange)",
    _evil("upper", "m public.imultirange", "int", "1"),
    "ANALYZE",
]

# The control: what an ordinary warehouse has.
CONTROL: list[str] = [
    "CREATE TYPE public.addr AS (street text, city text)",
    "CREATE TYPE public.contact AS (name text, home public.addr)",
    "CREATE TYPE public.floatrange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = float8mi)",
    "CREATE DOMAIN public.email AS text CHECK (position('@' IN VALUE) > 0)",
    "CREATE TABLE public.customers (id int PRIMARY KEY, name text, who public.contact, mail public.email)",
    "INSERT INTO public.customers SELECT g, 'name' || g, NULL, 'a@b' FROM generate_series(1, 1000) g",
    "CREATE TABLE public.bookings (id int, span int4range, during tstzrange, f public.floatrange)",
    "INSERT INTO public.bookings SELECT g, int4range(g, g + 10), tstzrange(now(), now() + interval '1 day'),"
    " public.floatrange(g, g + 1) FROM generate_series(1, 1000) g",
    "CREATE VIEW public.v_names AS SELECT id, upper(name) AS n FROM public.customers WHERE name > 'name5'",
    "ANALYZE",
]


@pytest.fixture(scope="module")
def hostile(pg_url: str) -> Iterator[Engine]:
    yield from pg_database(pg_url, SETUP, "pr")


@pytest.fixture(scope="module")
def coercion(pg_url: str) -> Iterator[Engine]:
    yield from pg_database(pg_url, COERCION, "pr")


@pytest.fixture(scope="module")
def control(pg_url: str) -> Iterator[Engine]:
    yield from pg_database(pg_url, CONTROL, "pr")


def _gate(engine: Engine, sql: str, gate: RoutineGate | None = None) -> str | None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    gate = gate or RoutineGate("postgresql")
    with engine.connect() as conn:
        try:
            return gate.check(conn, verdict.reach, verdict.statement)
        finally:
            conn.rollback()


# (id, SQL, the hostile function the plain EXPLAIN runs or None, what the refusal must mention)
ATTACKS: list[tuple[str, str, str | None, list[str]]] = [
    (
        "commutator",
        "SELECT id FROM customers WHERE 'name5' <<< name",
        "evil_gt",
        ["operator public.<<<(text, text) → commutator public.>>>(text, text) → function public.evil_gt"],
    ),
    (
        "negator",
        "SELECT id FROM customers WHERE NOT (name === 'name5')",
        "evil_ne",
        ["operator public.===(text, text) → negator public.!==(text, text) → function public.evil_ne"],
    ),
    (
        "negator_of_a_commutator_transitively",
        "SELECT id FROM customers WHERE name @@@ 'name5'",
        None,
        ["operator public.@@@(text, text) → negator public.<<<(text, text) → commutator public.>>>"],
    ),
    ("view_using_the_operator", "SELECT id FROM v_lt", "evil_gt", ["view public.v_lt → ", "public.evil_gt"]),
    (
        "range_subtype_diff",
        "SELECT * FROM bookings WHERE span && '[100,200]'",
        "evil_diff",
        [
            "type public.frange → range subtype_diff → function public.evil_diff(double precision, double precision)"
        ],
    ),
    (
        "default_btree_opclass_of_a_built_in_type_array_comparison",
        "SELECT ARRAY[point '(1,1)'] < ARRAY[point '(2,2)']",
        "evil_point_cmp",
        ["type point → btree operator family public.evil_point_ops", "public.evil_point_cmp(point, point)"],
    ),
    (
        "default_btree_opclass_of_a_built_in_type_greatest",
        "SELECT GREATEST(point '(1,1)', point '(2,2)')",
        "evil_point_cmp",
        ["type point → btree operator family public.evil_point_ops"],
    ),
    (
        "range_subtype_opclass",
        "SELECT id FROM slots WHERE win = '[1,5]'",
        "evil_int4_cmp",
        ["type public.winrange → range subtype operator class public.evil_int4_ops", "public.evil_int4_cmp"],
    ),
    (
        "operator_on_a_domain_nested_five_composites_deep",
        "SELECT id FROM nest WHERE (((((c).x).x).x).x).v = 'a'",
        None,
        ["operator public.=(public.dtext, public.dtext) → function public.evil_deq"],
    ),
    (
        "view_the_parser_could_not_read_before",
        "SELECT n FROM v_big",
        None,
        ["view public.v_big → its definition's constants", "over preflight.max_constant_bytes"],
    ),
]


@pytest.mark.parametrize(
    ("name", "sql", "evil"),
    [(a[0], a[1], a[2]) for a in ATTACKS if a[2]],
    ids=[a[0] for a in ATTACKS if a[2]],
)
def test_without_the_policy_the_planner_runs_the_hostile_function(
    hostile: Engine, name: str, sql: str, evil: str
) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    with hostile.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=f"EVIL {evil}"):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql("EXPLAIN " + verdict.statement)


@pytest.mark.parametrize(("name", "sql", "evil", "mentions"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_the_gate_refuses_what_the_planner_reaches_and_names_the_path(
    hostile: Engine, name: str, sql: str, evil: str | None, mentions: list[str]
) -> None:
    reason = _gate(hostile, sql)
    assert reason is not None, f"{name}: accepted"
    for mention in mentions:
        assert mention in reason, reason


COERCION_ATTACKS: list[tuple[str, str, str | None, list[str]]] = [
    (
        "domain_check_through_an_array_literal",
        "SELECT id FROM stock WHERE ARRAY[qty] = '{7}'",
        "evil_pos",
        ["domain public.posint", "function public.evil_pos(integer)"],
    ),
    (
        "domain_check_through_a_composite_literal",
        "SELECT COALESCE(p, '(8,1)') FROM parcels",
        "evil_pos",
        ["domain public.posint", "function public.evil_pos(integer)"],
    ),
    (
        "domain_check_through_a_union_literal",
        "SELECT p FROM parcels UNION ALL SELECT '(12,1)'",
        "evil_pos",
        ["domain public.posint", "function public.evil_pos(integer)"],
    ),
    (
        "domain_check_through_a_range_literal",
        "SELECT id FROM windows WHERE r = '[21,30)'",
        "evil_pos",
        ["domain public.posint", "function public.evil_pos(integer)"],
    ),
    (
        "overload_on_the_multirange_of_a_range_read",
        "SELECT id FROM spans WHERE upper(multirange('[1,2)'::irange)) = 1",
        "upper",
        ["function public.upper(public.imultirange)"],
    ),
    (
        "overload_on_the_multirange_of_a_range_column",
        "SELECT id FROM spans WHERE upper(multirange(r)) = 1",
        None,
        ["function public.upper(public.imultirange)"],
    ),
]


@pytest.mark.parametrize(
    ("name", "sql", "evil", "mentions"), COERCION_ATTACKS, ids=[a[0] for a in COERCION_ATTACKS]
)
def test_a_routine_run_on_a_value_coerced_to_a_type_the_query_never_names_is_refused(
    coercion: Engine, name: str, sql: str, evil: str | None, mentions: list[str]
) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    if evil:  # the canary: the plain EXPLAIN runs it
        with coercion.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=f"EVIL {evil}"):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql("EXPLAIN " + verdict.statement)
    reason = _gate(coercion, sql)
    assert reason is not None, f"{name}: accepted"
    for mention in mentions:
        assert mention in reason, reason


def test_reading_what_holds_such_a_domain_or_range_without_a_coercion_is_refused_too(
    coercion: Engine,
) -> None:
    """Fail closed: the policy cannot tell every coercion from the text (COALESCE, UNION, an operator's unknown
    argument), so a query whose values can be of a domain whose CHECK is untrusted is refused, naming it, and
    allow-listing the function admits it."""
    reason = _gate(coercion, "SELECT id, qty FROM stock")
    assert reason is not None and "domain public.posint" in reason, reason
    assert (
        _gate(coercion, "SELECT id, qty FROM stock", RoutineGate("postgresql", ("public.evil_pos",))) is None
    )
    assert _gate(coercion, "SELECT id FROM spans WHERE r && '[1,5)'") is None  # the overload is not reached


def test_allow_listing_the_functions_admits_the_operator(hostile: Engine) -> None:
    gate = RoutineGate("postgresql", ("public.*",))
    # every routine of the database trusted: only the constant bound is left (v_big), nothing else refuses
    assert _gate(hostile, "SELECT id FROM customers WHERE 'name5' <<< name", gate) is None
    assert _gate(hostile, "SELECT n FROM v_small", gate) is None


def test_a_view_whose_definition_cannot_be_parsed_is_refused(
    hostile: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pglast.parse_sql

    def parse_sql(sql: str) -> Any:
        if "system_user" in sql:
            raise pglast.parser.ParseError('syntax error at or near "."', 18)
        return real(sql)

    monkeypatch.setattr(catalog_postgres.pglast, "parse_sql", parse_sql)
    reason = _gate(hostile, "SELECT n FROM v_small")
    assert reason is not None and "view public.v_small → its definition could not be parsed" in reason, reason


LEGIT: list[str] = [
    "SELECT id FROM customers WHERE name < 'name5'",
    "SELECT id FROM customers WHERE 'name5' < name AND NOT (name = 'name7')",
    "SELECT c.id FROM customers c JOIN customers d ON c.name = d.name WHERE c.id = d.id AND d.id = 3",
    "SELECT * FROM bookings WHERE span && '[100,200]' AND during && tstzrange(now(), now())",
    "SELECT * FROM bookings WHERE f && '[1.5,2.5]'",
    "SELECT ARRAY[1, 2] < ARRAY[2, 3], GREATEST(1, 2), ARRAY['a'] < ARRAY['b']",
    "SELECT ((who).home).city, mail FROM customers WHERE ((who).home).city = 'x' AND mail = 'a@b'",
    "SELECT * FROM v_names WHERE n > 'A' ORDER BY id",
    "SELECT DISTINCT lower(span), upper(during) FROM bookings GROUP BY 1, 2",
]


@pytest.mark.parametrize("sql", LEGIT)
def test_an_ordinary_database_is_accepted(control: Engine, sql: str) -> None:
    assert _gate(control, sql) is None
    verdict = check_sql(sql, "postgresql")
    assert verdict.statement is not None
    assert run_explain(control, verdict.statement).ok  # and it plans


# --- the cost of reading view definitions ------------------------------------------------------------

HEAVY_VIEWS = 4


def _heavy_view(n: int) -> str:
    """A view of about 95,000 characters of definition, under the 100,000 the service parses (parsing and
    measuring it takes a good part of a second)."""
    cases = " ".join(f"WHEN id = {i} THEN 'v{i}'" for i in range(1700))
    return f"CREATE VIEW public.v_heavy_{n} AS SELECT id, CASE {cases} END AS c FROM public.t"


@pytest.fixture(scope="module")
def heavy(pg_url: str) -> Iterator[Engine]:
    setup = ["CREATE TABLE public.t (id int)", *(_heavy_view(n) for n in range(HEAVY_VIEWS))]
    yield from pg_database(pg_url, setup, "pr")


def _settle(engine: Engine, gate: RoutineGate) -> None:
    """Check until every view is measured (each check goes on where the last one stopped)."""
    for _ in range(3 * HEAVY_VIEWS):
        reasons = [_gate(engine, f"SELECT c FROM v_heavy_{n}", gate) for n in range(HEAVY_VIEWS)]
        if reasons == [None] * HEAVY_VIEWS:
            return
        assert all(r is None or "not measured yet" in r for r in reasons), reasons
    raise AssertionError(f"the views were never all measured: {reasons}")


def test_a_catalog_re_read_parses_only_the_views_that_changed(
    heavy: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = RoutineGate("postgresql")
    _settle(heavy, gate)
    parsed: list[str] = []
    real = pglast.parse_sql

    def parse_sql(sql: str) -> Any:
        parsed.append(sql)
        return real(sql)

    monkeypatch.setattr(catalog_postgres.pglast, "parse_sql", parse_sql)
    loads = gate.loads
    with heavy.begin() as conn:  # any definition change makes the next check read the catalog again
        conn.exec_driver_sql("CREATE FUNCTION public.unrelated() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.exec_driver_sql(
            "CREATE OR REPLACE VIEW public.v_heavy_1 AS SELECT id, 'x'::text AS c FROM public.t"
        )
    try:
        assert _gate(heavy, "SELECT c FROM v_heavy_0", gate) is None
        assert gate.loads == loads + 1
        definitions = [sql for sql in parsed if "v_heavy_0" not in sql]  # not the query's own parse
        assert len(definitions) == 1 and "'x'" in definitions[0], len(definitions)
    finally:
        with heavy.begin() as conn:
            conn.exec_driver_sql("DROP FUNCTION public.unrelated()")


def test_view_work_is_bounded_refused_clearly_and_resumed_on_the_next_check(heavy: Engine) -> None:
    gate = RoutineGate("postgresql")
    gate.view_seconds = 0.0  # no time at all: no view can be measured in this read
    reason = _gate(heavy, "SELECT c FROM v_heavy_2", gate)
    assert reason is not None and "view public.v_heavy_2 → its definition was not measured yet" in reason, (
        reason
    )
    assert _gate(heavy, "SELECT id FROM t", gate) is None  # what reads no view is not held up
    gate.view_seconds = 0.3  # about one view per read: each read goes on where the last one stopped
    _settle(heavy, gate)
    loads = gate.loads
    assert _gate(heavy, "SELECT c FROM v_heavy_3", gate) is None and gate.loads == loads  # complete: cached


def test_a_view_that_takes_longer_than_the_budget_to_parse_is_still_measured_in_a_few_checks(
    heavy: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read keeps what it started: a definition whose parse alone outlasts ``view_seconds`` (a loaded pod,
    a big view) is parsed and measured in one go, not parsed, found late and thrown away at every check (seen:
    the views were never all measured while the suite ran beside other work)."""
    real = pglast.parse_sql

    def slow_parse(sql: str) -> Any:
        if "WHEN id = 1699" in sql:  # a heavy view's definition: longer than the budget on its own
            time.sleep(0.1)
        return real(sql)

    monkeypatch.setattr(catalog_postgres.pglast, "parse_sql", slow_parse)
    gate = RoutineGate("postgresql")
    gate.view_seconds = 0.05
    _settle(heavy, gate)


def test_over_http_the_commutator_attack_is_an_unsafe_verdict(hostile: Engine, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.yml"
    url = hostile.url.render_as_string(hide_password=False)
    profiles.write_text(f"profiles:\n  hostile: {{database_url: '{url}', include_schemas: [public]}}\n")
    settings = load_settings(
        profiles_file=profiles,
        default_profile="hostile",
        data_dir=tmp_path / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
    )
    with TestClient(create_app(settings)) as client:
        for sql in (
            "SELECT id FROM customers WHERE 'name5' <<< name",
            "SELECT * FROM bookings WHERE span && '[100,200]'",
        ):
            body = client.post("/v1/preflight", json={"sql": sql}).json()
            assert body["ok"] is False and body["error_kind"] == "unsafe" and body["plan"] is None, body
            assert body["error"].startswith("refused:") and "EVIL" not in body["error"], body["error"]
        # fail closed: this database has untrusted btree classes on built-in types (point, integer), which any
        # query may reach, so even this is refused until they are allow-listed or dropped
        assert client.post("/v1/preflight", json={"sql": "SELECT id FROM customers"}).json()["ok"] is False
