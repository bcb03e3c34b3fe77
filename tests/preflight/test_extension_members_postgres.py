"""Functions attached to a trusted extension are judged by what they run, not by their membership.

A superuser can ``ALTER EXTENSION pg_trgm ADD FUNCTION`` any function. Membership of a trusted extension
vouches for the extension's own module, not for a body: a SQL member is judged by what its body calls, an
internal member as the built-in its symbol names, a C member only when it is a symbol of the extension's own
library that the policy does not exclude. The ordinary functions of the trusted extensions stay admitted.
Only the routine gate runs here: nothing is sent to EXPLAIN.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight.pg_members import STOCK_MEMBERS, member_digest
from tests._scratch import pg_database, pg_gate

pytestmark = pytest.mark.integration

SETUP: list[str] = [
    "CREATE EXTENSION pg_trgm",
    "CREATE EXTENSION cube",
    "CREATE EXTENSION earthdistance",
    "CREATE EXTENSION citext",
    "CREATE EXTENSION hstore",
    "CREATE EXTENSION pgcrypto",
    "CREATE EXTENSION isn",
    "CREATE TABLE docs (id int PRIMARY KEY, body text, tag citext, attrs hstore)",
    # a SQL body that terminates a backend
    "CREATE FUNCTION public.trgm_normalize(text) RETURNS boolean LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.pg_terminate_backend($1::int) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_normalize(text)",
    # the same, unqualified
    "CREATE FUNCTION public.trgm_bare(text) RETURNS boolean LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_terminate_backend($1::int) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_bare(text)",
    # an internal member that is a denied built-in under another name
    "CREATE FUNCTION public.trgm_internal(int) RETURNS boolean LANGUAGE internal STRICT "
    "AS 'pg_terminate_backend'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_internal(int)",
    # a C member from another library
    "CREATE FUNCTION public.trgm_exec(text, text) RETURNS text LANGUAGE c STRICT "
    "AS '$libdir/dblink', 'dblink_exec'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_exec(text, text)",
    # an excluded symbol of pg_trgm's own library under another name
    "CREATE FUNCTION public.trgm_lim(real) RETURNS real LANGUAGE c STRICT AS '$libdir/pg_trgm', 'set_limit'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_lim(real)",
    # a SQL member whose body calls a user function (untrusted), one level down
    "CREATE FUNCTION public.helper(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 = 'x' $$",
    "CREATE FUNCTION public.trgm_chain(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT helper($1) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_chain(text)",
    # a SQL member calling another member that is refused
    "CREATE FUNCTION public.trgm_chain2(text) RETURNS boolean LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT trgm_normalize($1) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_chain2(text)",
    # a SQL member whose body casts to a domain checked by an untrusted function
    "CREATE FUNCTION public.dom_ok(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN true; END $$",
    "CREATE DOMAIN public.checked AS text CHECK (public.dom_ok(VALUE))",
    "CREATE FUNCTION public.trgm_dom(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT $1::checked::text $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_dom(text)",
    # a SQL member whose body reads a table: more than the service judges (fail closed)
    "CREATE FUNCTION public.trgm_from(text) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM docs $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_from(text)",
    # members whose types or argument defaults reach an untrusted routine: the planner runs a domain's CHECK on
    # the result it coerces to, and folds an argument default into the call
    "CREATE TYPE public.pair AS (a public.checked, b int)",
    "CREATE FUNCTION public.trgm_ret_dom(text) RETURNS public.checked LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_ret_dom(text)",
    "CREATE FUNCTION public.trgm_ret_arr(text) RETURNS public.checked[] LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT ARRAY[$1] $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_ret_arr(text)",
    "CREATE FUNCTION public.trgm_ret_pair(text) RETURNS public.pair LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT ROW($1, 1)::public.pair $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_ret_pair(text)",
    "CREATE FUNCTION public.trgm_arg_dom(public.checked) RETURNS real LANGUAGE c IMMUTABLE STRICT "
    "AS '$libdir/pg_trgm', 'similarity'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_arg_dom(public.checked)",
    "CREATE FUNCTION public.trgm_def(text, k boolean DEFAULT public.dom_ok('x')) RETURNS boolean "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT $2 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_def(text, boolean)",
    "CREATE FUNCTION public.trgm_cdef(text, k boolean DEFAULT public.dom_ok('x')) RETURNS real "
    "LANGUAGE c IMMUTABLE AS '$libdir/pg_trgm', 'similarity'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_cdef(text, boolean)",
    "CREATE FUNCTION public.trgm_def_denied(text, k boolean DEFAULT pg_catalog.pg_terminate_backend(0)) "
    "RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $2 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_def_denied(text, boolean)",
    # defaults that build what their arguments say: folded into every call that omits them, on columns too
    "CREATE FUNCTION public.trgm_big_def(text, b text DEFAULT pg_catalog.repeat('y', 300000000)) RETURNS real "
    "LANGUAGE c IMMUTABLE STRICT AS '$libdir/pg_trgm', 'similarity'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_big_def(text, text)",
    "CREATE FUNCTION public.trgm_big_sql_def(t text DEFAULT pg_catalog.lpad('y', 300000000, 'z')) RETURNS integer "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT pg_catalog.length($1) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_big_sql_def(text)",
    # a body whose own constants build a lot: folded when a call is inlined, whatever its arguments (602 MB)
    "CREATE FUNCTION public.trgm_pad_body(text) RETURNS text LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT $1 || pg_catalog.repeat('x', 30000000) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_pad_body(text)",
    # constant defaults (and casts of constants to built-in types) stay trusted
    "CREATE FUNCTION public.trgm_const_def(text, k int DEFAULT 3, r real DEFAULT 0.5, "
    "t text[] DEFAULT '{}', n text DEFAULT NULL) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $2 $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_const_def(text, int, real, text[], text)",
    # harmless SQL members: built-ins and the extension's own C functions
    "CREATE FUNCTION public.trgm_ok(text) RETURNS real LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT similarity(lower($1), 'x') $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.trgm_ok(text)",
    # members named like functions the budget sizes by name (a reviewed one, a built-in) that run repeat(): the
    # planner inlines or runs them on constants and builds what their body or symbol says, not what the name says
    "CREATE FUNCTION public.similarity(text, integer) RETURNS real LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.length(pg_catalog.repeat($1, $2))::real $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.similarity(text, integer)",
    "CREATE FUNCTION public.md5(text, integer) RETURNS text LANGUAGE internal IMMUTABLE STRICT AS 'repeat'",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.md5(text, integer)",
    # an exact twin of a built-in, behind pg_catalog on the search path: never the one called
    "CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT pg_catalog.repeat($1, 1000) $$",
    "ALTER EXTENSION pg_trgm ADD FUNCTION public.upper(text)",
    "CREATE FUNCTION public.gen_salt(bytea, text) RETURNS text LANGUAGE c IMMUTABLE STRICT "
    "AS '$libdir/pgcrypto', 'pgp_sym_decrypt_text'",
    "ALTER EXTENSION pgcrypto ADD FUNCTION public.gen_salt(bytea, text)",
    "CREATE VIEW public.v_namesake AS SELECT public.similarity('x', 300000000) AS s",
    # a C member runs its symbol whatever it is named: one named like a reviewed function is judged as every member
    # that runs the same symbol (PostGIS's ST_Buffer runs 'buffer'; here a pgp_ name, unreviewed, shares one)
    "CREATE FUNCTION public.pgp_unreviewed(text) RETURNS bytea LANGUAGE c IMMUTABLE STRICT "
    "AS '$libdir/pgcrypto', 'pg_dearmor'",
    "ALTER EXTENSION pgcrypto ADD FUNCTION public.pgp_unreviewed(text)",
    "CREATE FUNCTION public.sha256(text, integer) RETURNS bytea LANGUAGE c IMMUTABLE STRICT "
    "AS '$libdir/pgcrypto', 'pg_dearmor'",
    "ALTER EXTENSION pgcrypto ADD FUNCTION public.sha256(text, integer)",
]


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[sa.Engine]:
    yield from pg_database(pg_url, SETUP, "extm")


_gate = pg_gate


REFUSED = [
    (
        "sql_body_calls_denied_builtin",
        "SELECT id FROM docs WHERE trgm_normalize('1')",
        "pg_terminate_backend",
    ),
    (
        "sql_body_calls_denied_builtin_unqualified",
        "SELECT id FROM docs WHERE trgm_bare('1')",
        "pg_terminate_backend",
    ),
    (
        "internal_member_is_a_denied_builtin",
        "SELECT id FROM docs WHERE trgm_internal(1)",
        "pg_terminate_backend",
    ),
    ("c_member_from_another_library", "SELECT trgm_exec('a', 'b') FROM docs", "$libdir/dblink"),
    ("c_member_excluded_symbol", "SELECT trgm_lim(0.1) FROM docs", "set_limit"),
    ("sql_body_calls_user_function", "SELECT id FROM docs WHERE trgm_chain('x')", "helper"),
    ("sql_body_calls_refused_member", "SELECT id FROM docs WHERE trgm_chain2('x')", "trgm_normalize"),
    ("sql_body_casts_to_untrusted_domain", "SELECT trgm_dom('x')", "domain whose CHECK is not trusted"),
    ("sql_body_reads_a_table", "SELECT trgm_from('x')", "more than"),
    # called on a column: the planner folds the defaults and coerces to the declared types all the same (and the
    # guard's budget, which refuses unknown calls on constants, does not decide for the routine gate)
    (
        "sql_member_returns_untrusted_domain",
        "SELECT id FROM docs WHERE trgm_ret_dom(body) IS NOT NULL",
        "public.checked",
    ),
    ("sql_member_returns_array_of_untrusted_domain", "SELECT trgm_ret_arr(body) FROM docs", "public.checked"),
    (
        "sql_member_returns_composite_of_untrusted_domain",
        "SELECT trgm_ret_pair(body) FROM docs",
        "public.checked",
    ),
    ("c_member_takes_untrusted_domain", "SELECT trgm_arg_dom(body) FROM docs", "public.checked"),
    ("sql_member_default_calls_user_function", "SELECT id FROM docs WHERE trgm_def(body)", "dom_ok"),
    ("c_member_default_calls_user_function", "SELECT trgm_cdef(body) FROM docs", "dom_ok"),
    (
        "c_member_default_builds_what_its_arguments_say",
        "SELECT body FROM docs WHERE trgm_big_def(body) > 0.5",
        "an argument default calls repeat()",
    ),
    ("sql_member_default_builds_what_its_arguments_say", "SELECT trgm_big_sql_def()", "calls lpad()"),
    ("sql_body_constants_build_a_lot", "SELECT trgm_pad_body(body) FROM docs", "whenever it inlines a call"),
    (
        "sql_member_default_calls_denied_builtin",
        "SELECT trgm_def_denied(body) FROM docs",
        "pg_terminate_backend",
    ),
]


@pytest.mark.parametrize(("name", "sql", "mentions"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_member_of_a_trusted_extension_is_judged_by_what_it_runs(
    engine: sa.Engine, name: str, sql: str, mentions: str
) -> None:
    reason = _gate(engine, sql)
    assert reason is not None, name
    assert mentions in reason, reason


ADMITTED = [
    (
        "earthdistance",
        "SELECT earth_distance(ll_to_earth(1, 2), ll_to_earth(3, 4)), earth_box(ll_to_earth(1, 2), 10)",
    ),
    (
        "earthdistance_more",
        "SELECT latitude(ll_to_earth(1, 2)), longitude(ll_to_earth(1, 2)), gc_to_sec(1), sec_to_gc(1)",
    ),
    (
        "citext",
        "SELECT regexp_match(tag, 'a'), regexp_replace(tag, 'a', 'b', 'g'), strpos(tag, 'x'), "
        "split_part(tag, ',', 1), translate(tag, 'a', 'b'), replace(tag, 'a', 'b') FROM docs WHERE tag = 'X'",
    ),
    ("citext_agg", "SELECT min(tag), max(tag) FROM docs WHERE tag LIKE 'a%'"),
    ("pg_trgm", "SELECT similarity(body, 'x'), show_limit() FROM docs WHERE body % 'abc'"),
    ("trusted_sql_member", "SELECT trgm_ok(body) FROM docs"),
    ("member_with_constant_defaults", "SELECT trgm_const_def(body) FROM docs"),
    ("hstore", "SELECT attrs -> 'a', akeys(attrs) FROM docs WHERE attrs ? 'k'"),
    ("pgcrypto", "SELECT digest('x', 'sha256'), gen_random_uuid()"),
    ("isn", "SELECT isbn13('978-0-393-04002-9') = isbn13('978-0-393-04002-9')"),
]


@pytest.mark.parametrize(("name", "sql"), ADMITTED, ids=[c[0] for c in ADMITTED])
def test_ordinary_functions_of_trusted_extensions_stay_admitted(
    engine: sa.Engine, name: str, sql: str
) -> None:
    assert _gate(engine, sql) is None


# A member of a trusted extension named like a function the budget sizes by name (a reviewed extension function, a
# built-in) was sized by that name on constants: ``similarity('x', 300000000)`` as a fixed-size real, though its
# SQL body folds repeat('x', 300000000) while planning (the same for an internal member AS 'repeat' named md5).
NAMESAKES = [
    ("similarity", "SELECT similarity('x', 300000000)"),
    ("public.similarity", "SELECT public.similarity('x', 300000000)"),
    ("md5", "SELECT id FROM docs WHERE body = md5('x', 300000000)"),
    ("similarity", "SELECT similarity('x', d.n) FROM (SELECT 300000000 AS n) d"),
    ("gen_salt", "SELECT gen_salt('\\xc30d'::bytea, 'pw')"),  # a C symbol of pgcrypto that decompresses
    ("sha256", "SELECT sha256('x', 1)"),  # the symbol a member of an unreviewed name runs
]


@pytest.mark.parametrize(("name", "sql"), NAMESAKES, ids=[sql for _, sql in NAMESAKES])
def test_a_member_named_like_a_function_sized_by_name_is_of_unknown_size_on_constants(
    engine: sa.Engine, name: str, sql: str
) -> None:
    reason = _gate(engine, sql)
    assert reason is not None and f"{name}()" in reason, reason
    assert "named like" in reason, reason


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT similarity(body, 'x'), md5(body, 3), public.similarity(body, 2) FROM docs",  # on columns
        "SELECT upper('x'), lower('Y'), repeat('-', 40)",  # built-ins; public.upper is hidden behind upper(text)
        "SELECT word_similarity('abc', 'abd'), digest('x', 'sha256')",  # reviewed, no namesake
        # citext's replace, split_part, regexp_* and pgcrypto's pgp_sym_encrypt as the extensions ship them: their
        # SQL bodies call regexp_replace and their C symbols are named otherwise, but they are the stock members
        "SELECT replace('abc', 'a', 'x'), split_part('a,b', ',', 1), regexp_replace('abc', 'a', 'x'), "
        "regexp_match('abc', 'b'), pgp_sym_encrypt('x', 'k')",
    ],
)
def test_calls_no_namesake_can_take_stay_admitted(engine: sa.Engine, sql: str) -> None:
    assert _gate(engine, sql) is None


@pytest.fixture(scope="module")
def elsewhere(pg_url: str) -> Iterator[sa.Engine]:
    """citext and pgcrypto installed in their own schema, as some hosted services do."""
    statements = [
        "CREATE SCHEMA extensions",
        "CREATE EXTENSION citext SCHEMA extensions",
        "CREATE EXTENSION pgcrypto SCHEMA extensions",
        "ALTER DATABASE {db} SET search_path = public, extensions",
        "CREATE TABLE docs (id int, tag extensions.citext)",
    ]
    yield from pg_database(pg_url, statements, "extsch")


def test_stock_members_in_another_schema_are_not_namesakes(elsewhere: sa.Engine) -> None:
    sql = "SELECT replace('abc', 'a', 'x'), split_part('a,b', ',', 1), pgp_sym_encrypt('x', 'k')"
    assert _gate(elsewhere, sql) is None
    assert _gate(elsewhere, "SELECT replace(tag, 'a', 'x') FROM docs") is None


def test_a_view_calling_such_a_member_on_constants_is_refused(engine: sa.Engine) -> None:
    reason = _gate(engine, "SELECT s FROM v_namesake")
    assert reason is not None and "v_namesake" in reason, reason


def test_a_stock_member_digest_is_too_wide_to_forge() -> None:
    # The owner writes a member's definition; one written to match a stock digest would be sized as the built-in
    # it names. At 64 bits a search over the 929 targets takes about 2^54 hashes; 128 bits are out of reach.
    assert len(STOCK_MEMBERS) == 929
    assert {len(digest) for digest in STOCK_MEMBERS} == {32}
    assert len(member_digest("citext", "replace", "citext, citext, citext", "sql", "x", None)) == 32
