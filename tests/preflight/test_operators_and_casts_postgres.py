"""An operator or a cast of constants is folded by calling its function: it is sized as that call.

The guard has no catalog and sizes an operator or a cast as its operands. A database owner can define an
operator over ``repeat`` (``'x' *** 300000000``), over a trusted extension's member that runs it, or a cast whose
function does, and the planner folds it while it plans: seen at 601 MB and 309 MB of backend memory for one
EXPLAIN. The routine gate knows each user operator's and cast's function (and its commutator's and negator's):
a call of constants through one is measured as the call of its function, by the same rules as a call written out.
Only the routine gate runs here: nothing is sent to EXPLAIN.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight.catalog_postgres import ViewCalls, _table_constants
from dbmeta_app.preflight.view_memo import ViewMemo
from tests._scratch import pg_database, pg_gate

pytestmark = pytest.mark.integration

REPEAT_MEMBER = "LANGUAGE sql IMMUTABLE AS $$ SELECT pg_catalog.length(pg_catalog.repeat($1, $2)) $$"

SETUP: list[str] = [
    "CREATE EXTENSION pg_trgm",
    "CREATE EXTENSION hstore",
    "CREATE EXTENSION cube",
    "CREATE EXTENSION citext",
    "CREATE EXTENSION pgcrypto",
    "CREATE TABLE t (a text, n int, h hstore)",
    # an operator of the owner's over a built-in that builds what its arguments say
    "CREATE OPERATOR public.*** (LEFTARG = text, RIGHTARG = integer, FUNCTION = pg_catalog.repeat)",
    # over a member of a trusted extension under another name, added to the extension with its operator
    f"CREATE FUNCTION public.boom(text, integer) RETURNS integer {REPEAT_MEMBER}",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.boom(text, integer)",
    "CREATE OPERATOR public.@@@@ (LEFTARG = text, RIGHTARG = integer, FUNCTION = public.boom)",
    "ALTER EXTENSION pg_trgm ADD OPERATOR public.@@@@(text, integer)",
    # over a member named like pg_trgm's fixed-size similarity() (a namesake)
    "CREATE FUNCTION public.similarity(text, integer) RETURNS real LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.length(pg_catalog.repeat($1, $2))::real $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.similarity(text, integer)",
    "CREATE OPERATOR public.### (LEFTARG = text, RIGHTARG = integer, FUNCTION = public.similarity)",
    # an equality of text and integer: IN, NULLIF and CASE x WHEN use it without writing it
    "CREATE FUNCTION public.beq(text, integer) RETURNS boolean LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.length(pg_catalog.repeat($1, $2)) > 0 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.beq(text, integer)",
    "CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = integer, FUNCTION = public.beq)",
    # a harmless operator whose negator runs such a member: NOT (a <~> b) is folded as a >~< b
    "CREATE FUNCTION public.bneq(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.length(pg_catalog.repeat($1, 300000000)) = 0 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.bneq(text, text)",
    "CREATE OPERATOR public.>~< (LEFTARG = text, RIGHTARG = text, FUNCTION = public.bneq)",
    "CREATE OPERATOR public.<~> (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_catalog.texteq, NEGATOR = >~<)",
    # an explicit cast whose function is such a member
    "CREATE FUNCTION public.t2i(text) RETURNS integer LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.length(pg_catalog.repeat($1, 300000000)) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.t2i(text)",
    "CREATE CAST (text AS integer) WITH FUNCTION public.t2i(text)",
    # a member named like a reviewed function whose body uses the operator over repeat: a namesake too
    "CREATE FUNCTION public.word_similarity(text, integer) RETURNS real LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.length($1 OPERATOR(public.***) $2)::real $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.word_similarity(text, integer)",
    # an extension's own C functions with names the budget has not reviewed (PostGIS's geometry_overlaps for &&,
    # pgvector's vector_lt for <): sized as their operands, unless named, or running a symbol named, like an
    # unbounded function (pgcrypto's decompressing pgp_sym_decrypt_text)
    "CREATE FUNCTION public.trgm_sim2(text, text) RETURNS real LANGUAGE c IMMUTABLE STRICT "
    "AS '$libdir/pg_trgm', 'similarity'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_sim2(text, text)",
    "CREATE OPERATOR public.=~= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trgm_sim2)",
    "CREATE FUNCTION public.unpack(bytea, text) RETURNS text LANGUAGE c IMMUTABLE STRICT "
    "AS '$libdir/pgcrypto', 'pgp_sym_decrypt_text'",
    "ALTER EXTENSION pgcrypto ADD FUNCTION public.unpack(bytea, text)",
    "CREATE OPERATOR public.<?> (LEFTARG = bytea, RIGHTARG = text, FUNCTION = public.unpack)",
    # a range type whose subtype_diff is such a member: the planner calls it on the column's statistics to
    # estimate r && '[5,7)' (603 MB), whatever the query's constants
    "CREATE FUNCTION public.fdiff(float8, float8) RETURNS float8 LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT (pg_catalog.length(pg_catalog.repeat('x', 300000000)) * 0 + $1 - $2)::float8 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.fdiff(float8, float8)",
    "CREATE TYPE public.frange AS RANGE (subtype = float8, subtype_diff = public.fdiff)",
    "CREATE TABLE public.rt (r public.frange)",
    # a table's own definitions the planner folds whenever it plans a query on it: 60 MB each on an empty table
    # (600 MB at 300000000; the set-up, which PostgreSQL folds too, stays small)
    "CREATE TABLE public.ix (a text, b int)",
    "CREATE INDEX ix_expr ON public.ix ((a || pg_catalog.repeat('x', 30000000)))",
    "CREATE TABLE public.px (a text, b int)",
    "CREATE INDEX px_pred ON public.px (a) WHERE pg_catalog.length(pg_catalog.repeat('y', 30000000)) > b",
    "CREATE TABLE public.parent (a text, b int)",
    "CREATE TABLE public.child (CHECK (pg_catalog.length(pg_catalog.repeat('z', 30000000)) > b)) "
    "INHERITS (public.parent)",
    "CREATE TABLE public.pol (a text, b int)",
    "ALTER TABLE public.pol ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY p_big ON public.pol USING (a <> pg_catalog.repeat('p', 30000000))",
    "CREATE TABLE public.pk (a text, b int) PARTITION BY LIST ((a || pg_catalog.repeat('k', 30000000)))",
    "CREATE TABLE public.st (a text, b int)",
    "CREATE STATISTICS public.st_big ON (a || pg_catalog.repeat('s', 30000000)), b FROM public.st",
    # and ordinary ones
    "CREATE TABLE public.fine (a text, b int CHECK (b > 0), c numeric CHECK (c < 10.5))",
    "CREATE INDEX fine_lower ON public.fine (lower(a)) WHERE b > 3 AND a <> 'x'",
    "CREATE INDEX fine_num ON public.fine ((c * 100.0), (a || '-' || b::text)) WHERE c > 1e3",
    "ALTER TABLE public.fine ENABLE ROW LEVEL SECURITY",
    # (no cast of text to integer here: in this database one runs public.t2i)
    "CREATE POLICY p_tenant ON public.fine USING (a = coalesce(current_setting('app.tenant', true), 'x'))",
    "CREATE TABLE public.fine_parts (a text, b int) PARTITION BY LIST ((lower(a)))",
    "CREATE TABLE public.fine_p1 PARTITION OF public.fine_parts FOR VALUES IN ('x')",
    # a view folding the operator over repeat
    "CREATE VIEW public.v_op AS SELECT 'x'::text OPERATOR(public.***) 300000000 AS c",
]

# an implicit cast over such a member: any call or operator of constants may run it, unwritten
IMPLICIT_SETUP: list[str] = [
    "CREATE EXTENSION pg_trgm",
    "CREATE TABLE t (a text, n int)",
    "CREATE FUNCTION public.t2p(text) RETURNS point LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT point(pg_catalog.length(pg_catalog.repeat($1, 300000000)), 0) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.t2p(text)",
    "CREATE CAST (text AS point) WITH FUNCTION public.t2p(text) AS IMPLICIT",
]


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[sa.Engine]:
    yield from pg_database(pg_url, SETUP, "opcast")


@pytest.fixture(scope="module")
def implicit_engine(pg_url: str) -> Iterator[sa.Engine]:
    yield from pg_database(pg_url, IMPLICIT_SETUP, "opimpl")


_gate = pg_gate


REFUSED = [
    ("SELECT 'x' *** 300000000", "300,000,0"),  # sized as repeat('x', 300000000): over max_constant_bytes
    ("SELECT length('ab' OPERATOR(public.***) 200000000)", "400,000,0"),
    ("SELECT 'x'::text *** d.n FROM (SELECT 300000000 AS n) d", "max_constant_bytes"),
    ("SELECT 'x' @@@@ 300000000", "public.boom()"),
    ("SELECT 'x' ### 300000000", "public.similarity()"),
    ("SELECT 'x'::text = 300000000", "public.beq()"),
    ("SELECT 'x'::text IN (1, 300000000)", "public.beq()"),
    ("SELECT NULLIF('x'::text, 300000000)", "public.beq()"),
    ("SELECT CASE 'x'::text WHEN 300000000 THEN 1 END", "public.beq()"),
    ("SELECT NOT ('x'::text <~> 'y'::text)", "public.bneq()"),
    ("SELECT 'x'::text::integer", "public.t2i()"),
    ("SELECT CAST('x'::text AS integer) + 1", "public.t2i()"),
    ("SELECT word_similarity('x', 300000000)", "word_similarity()"),
    ("SELECT '\\xc30d'::bytea <?> 'pw'", "public.unpack()"),
]


@pytest.mark.parametrize(("sql", "mentions"), REFUSED, ids=[sql for sql, _ in REFUSED])
def test_an_operator_or_cast_of_constants_is_sized_as_the_call_of_its_function(
    engine: sa.Engine, sql: str, mentions: str
) -> None:
    reason = _gate(engine, sql)
    assert reason is not None, sql
    assert mentions in reason, reason


def test_a_member_that_builds_more_is_refused_where_the_planner_calls_it_on_statistics(
    engine: sa.Engine,
) -> None:
    reason = _gate(engine, "SELECT * FROM rt WHERE r && '[5,7)'::frange")
    assert reason is not None and "subtype_diff" in reason and "public.fdiff" in reason, reason
    assert _gate(engine, "SELECT a FROM t") is None  # a query without that type's values


@pytest.mark.parametrize(
    ("sql", "mentions"),
    [
        ("SELECT * FROM ix WHERE a = 'q'", "table public.ix"),
        ("SELECT * FROM px WHERE a = 'q'", "table public.px"),
        ("SELECT * FROM parent WHERE b = 3", "table public.child"),  # its inheritance child's CHECK
        ("SELECT * FROM pol", "table public.pol"),
        ("SELECT * FROM pk", "table public.pk"),
        ("SELECT * FROM st WHERE a = 'x'", "table public.st"),
    ],
)
def test_a_table_whose_definitions_fold_too_much_is_refused(
    engine: sa.Engine, sql: str, mentions: str
) -> None:
    reason = _gate(engine, sql)
    assert reason is not None and mentions in reason and "max_constant_bytes" in reason, reason


def test_table_definitions_are_measured_within_the_view_time_and_go_on_at_the_next_read(
    engine: sa.Engine,
) -> None:
    memo = ViewMemo()
    with engine.connect() as conn:
        built, problems, complete = _table_constants(conn, ViewCalls(), memo, 0.0)
        # no time at all: one definition is measured (a read always goes on), the rest are refused for now
        assert not complete and len(memo.expressions) == 1
        assert problems and all("not measured yet" in p for p in problems.values()), problems
        reads = 1
        while not complete and reads < 500:  # and the next read goes on where this one stopped
            before = len(memo.expressions)
            built, problems, complete = _table_constants(conn, ViewCalls(), memo, 0.0)
            reads += 1
            assert complete or len(memo.expressions) == before + 1
        assert complete and not problems, (reads, problems)
        assert max(built.values()) >= 30_000_000  # public.ix's index expression
        fresh = ViewMemo()
        assert _table_constants(conn, ViewCalls(), fresh, 30.0) == (
            built,
            problems,
            complete,
        )  # all in one read
        again = _table_constants(conn, ViewCalls(), memo, 0.0)  # memoised by text: nothing left to measure
    assert again == (built, problems, complete)


def test_tables_with_ordinary_indexes_and_constraints_stay_admitted(engine: sa.Engine) -> None:
    assert _gate(engine, "SELECT a FROM fine WHERE lower(a) = 'x' AND b > 3") is None
    assert _gate(engine, "SELECT a FROM fine_parts WHERE lower(a) = 'x'") is None


def test_a_view_folding_such_an_operator_is_refused(engine: sa.Engine) -> None:
    reason = _gate(engine, "SELECT c FROM v_op")
    assert reason is not None and "v_op" in reason, reason


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'x' *** 3",  # repeat('x', 3): small
        "SELECT a *** 3, a @@@@ n, a ### n FROM t WHERE n = 3 AND a::integer > 0",  # columns: not folded
        "SELECT 1 + 1, 'a' || 'b', upper('x')",
        "SELECT 'abc' % 'abd', 'abc' <-> 'abd'",  # pg_trgm's own
        "SELECT 'a=>1'::hstore -> 'a', h ? 'k' FROM t",  # hstore's
        "SELECT cube(1, 2) <-> cube(3, 4), 'x'::citext < 'Y'::citext",  # cube's, citext's
        # an equality of columns: the owner's = of text and integer is not folded (on constants it may be the one
        # PostgreSQL picks: operators are told apart by symbol, so 'x'::citext = 'X' is refused in this database)
        "SELECT a FROM t WHERE a = 'x' AND n IN (1, 2)",
        "SELECT 'abc' =~= 'abd'",
    ],
)
def test_operators_and_casts_sized_as_their_operands_stay_admitted(engine: sa.Engine, sql: str) -> None:
    assert _gate(engine, sql) is None


def test_an_implicit_cast_over_such_a_member_makes_calls_of_constants_unknown(
    implicit_engine: sa.Engine,
) -> None:
    reason = _gate(implicit_engine, "SELECT point(0, 0) <-> 'x'::text")
    assert reason is not None and "public.t2p()" in reason and "implicit" in reason, reason
    assert _gate(implicit_engine, "SELECT a, n FROM t WHERE n > 3") is None  # nothing of constants folded
