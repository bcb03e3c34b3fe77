"""Calls the PostgreSQL planner folds whose result (or the work of evaluating them) is not bounded by their
arguments: a jsonpath evaluated on a constant json, and the functions of trusted extensions that decompress,
decrypt or generate (pgcrypto's pgp_*_decrypt, PostGIS's ST_Segmentize, ST_Buffer, …). On constants they are
refused before the EXPLAIN, naming the call; on columns (never folded) they stay admitted."""

from __future__ import annotations

from typing import Any

import pytest

from dbmeta_app.preflight.budget import Budget, measure_postgres, over_budget
from dbmeta_app.preflight.guard import LIMIT, check_sql

TEN = "[" + ",".join(["0"] * 10) + "]"
BOMB_PATH = "$" + TEN * 6 + " == 2"  # 10**6 items collected before the comparison


def refused_naming(sql: str, name: str) -> str:
    verdict = check_sql(sql, "postgresql")
    assert not verdict.ok and verdict.kind == LIMIT, verdict
    reason = verdict.reason or ""
    assert name in reason, reason
    assert "not bounded by its arguments" in reason and "preflight.max_constant_bytes" in reason, reason
    return reason


# --- F2: a jsonpath evaluated while planning ------------------------------------------------------------

JSONPATH_ON_CONSTANTS = [
    ("jsonb_path_match", f"SELECT 1 FROM orders WHERE jsonb_path_match('1', '{BOMB_PATH}')"),
    ("jsonb_path_match_tz", f"SELECT jsonb_path_match_tz('1', '{BOMB_PATH}')"),
    ("jsonb_path_exists", f"SELECT 1 FROM orders WHERE jsonb_path_exists('1', '$' || '{TEN * 6}')"),
    ("jsonb_path_exists_tz", "SELECT jsonb_path_exists_tz('[1]'::jsonb, '$[*] ? (@ > 0)')"),
    ("jsonb_path_query_first", f"SELECT jsonb_path_query_first('1', '$' || '{TEN * 6}')"),
    ("jsonb_path_query_first_tz", "SELECT jsonb_path_query_first_tz('1', '$')"),
    ("jsonb_path_query_array", f"SELECT jsonb_path_query_array('1', '$' || '{TEN * 6}')"),
    ("jsonb_path_match_opr", f"SELECT jsonb_path_match_opr('1', '{BOMB_PATH}')"),
    ("jsonb_path_exists_opr", "SELECT jsonb_path_exists_opr('1', '$.**')"),
    ("@@", f"SELECT 1 FROM orders WHERE '1'::jsonb @@ '{BOMB_PATH}'"),
    ("@?", f"SELECT 1 FROM orders WHERE '1'::jsonb @? '$' || '{TEN * 6}'"),
    ("@?", f"SELECT 1 FROM orders WHERE '1'::jsonb OPERATOR(pg_catalog.@?) '$' || '{TEN * 6}'"),
    ("JSON_QUERY", f"SELECT JSON_QUERY('1'::jsonb, '$' || '{TEN * 6}' WITH WRAPPER)"),
    ("JSON_EXISTS", f"SELECT 1 FROM orders WHERE JSON_EXISTS('1'::jsonb, '{BOMB_PATH[:-5]}')"),
    # through a CTE, referenced several times
    (
        "jsonb_path_match",
        f"WITH c AS NOT MATERIALIZED (SELECT jsonb_path_match('1', '{BOMB_PATH}') AS v) "
        "SELECT 1 FROM orders, c a, c b WHERE a.v AND b.v",
    ),
]


@pytest.mark.parametrize(("name", "sql"), JSONPATH_ON_CONSTANTS)
def test_a_jsonpath_evaluated_on_constants_is_refused(name: str, sql: str) -> None:
    reason = refused_naming(sql, name)
    assert "jsonpath" in reason


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT 1 FROM orders WHERE jsonb_path_match(doc, '{BOMB_PATH}')",
        f"SELECT jsonb_path_query_array(doc, '$' || '{TEN * 6}') FROM orders",
        "SELECT 1 FROM orders WHERE doc @? '$.a ? (@ > 1)' AND doc @@ '$.a == 1'",
        "SELECT jsonb_path_exists(doc, '$.items[*] ? (@.price > 10)'), jsonb_path_query(doc, '$.a') FROM orders",
        # text search's @@ on constants is not a jsonpath
        "SELECT to_tsvector('english', 'a fat cat') @@ to_tsquery('english', 'cat')",
        "SELECT 'a fat cat'::tsvector @@ 'cat'::tsquery",
        "SELECT 1 FROM orders WHERE to_tsvector(note) @@ plainto_tsquery('cat')",
    ],
)
def test_a_jsonpath_on_a_column_is_admitted(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason


# --- F3: functions of trusted extensions whose result is not bounded by their arguments ------------------

PGP_MESSAGE = "c30d04070302" + "ab" * 2_000  # a PGP message: its size says nothing of what it decompresses to

EXTENSION_UNBOUNDED = [
    ("pgp_sym_decrypt", f"SELECT pgp_sym_decrypt(decode('{PGP_MESSAGE}', 'hex'), 'pw')"),
    ("pgp_sym_decrypt_bytea", f"SELECT pgp_sym_decrypt_bytea(decode('{PGP_MESSAGE}', 'hex'), 'pw', 'x=y')"),
    ("pgp_pub_decrypt", f"SELECT pgp_pub_decrypt(decode('{PGP_MESSAGE}', 'hex'), dearmor('k'))"),
    ("pgp_pub_decrypt_bytea", f"SELECT public.pgp_pub_decrypt_bytea('\\x{PGP_MESSAGE}'::bytea, 'k'::bytea)"),
    (
        "pgp_sym_decrypt",
        f"WITH c AS NOT MATERIALIZED (SELECT pgp_sym_decrypt(decode('{PGP_MESSAGE}', 'hex'), 'pw') AS v) "
        "SELECT 1 FROM orders, c c0, c c1, c c2, c c3, c c4 WHERE c0.v || c1.v || c2.v || c3.v || c4.v = 'a'",
    ),
    ("st_segmentize", "SELECT ST_Segmentize(ST_GeomFromText('LINESTRING(0 0, 1000 1000)'), 0.00001)"),
    ("st_buffer", "SELECT ST_Buffer(ST_MakePoint(1, 2), 10, 'quad_segs=10000000')"),
    ("st_buffer", "SELECT ST_Buffer(ST_MakePoint(1, 2), 10, 10000000)"),
    ("st_generatepoints", "SELECT ST_GeneratePoints(ST_MakeEnvelope(0, 0, 1, 1), 100000000)"),
    ("st_lineinterpolatepoints", "SELECT ST_LineInterpolatePoints('LINESTRING(0 0, 1 1)'::geometry, 1e-9)"),
    ("st_letters", "SELECT ST_Letters(repeat('W', 1000))"),
    ("st_hexagongrid", "SELECT ST_HexagonGrid(1e-6, ST_MakeEnvelope(0, 0, 100, 100))"),
    (
        "st_squaregrid",
        "SELECT * FROM orders WHERE ST_Intersects(ST_SquareGrid(1e-6, 'POINT(1 1)'), 'POINT(1 1)')",
    ),
    ("st_subdivide", "SELECT ST_Subdivide(ST_MakeEnvelope(0, 0, 1, 1), 5)"),
    ("st_makeemptyraster", "SELECT ST_MakeEmptyRaster(100000, 100000, 0, 0, 1)"),
    ("st_transform", "SELECT ST_Transform('0100'::raster, 4326, 1e-9, 1e-9)"),  # a raster, resampled
    ("st_someday", "SELECT ST_Someday(1)"),  # a PostGIS function nobody reviewed: unknown, fail closed
]


@pytest.mark.parametrize(("name", "sql"), EXTENSION_UNBOUNDED)
def test_a_trusted_extension_function_of_unbounded_result_on_constants_is_refused(
    name: str, sql: str
) -> None:
    refused_naming(sql, name)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ST_MakePoint(1, 2), ST_SetSRID(ST_MakePoint(1, 2), 4326), ST_X(ST_MakePoint(1, 2))",
        "SELECT ST_Distance(ST_MakePoint(1, 2)::geography, ST_MakePoint(3, 4)::geography)",
        "SELECT ST_AsText(ST_GeomFromText('POINT(1 2)', 4326)), ST_AsGeoJSON(ST_MakePoint(1, 2))",
        "SELECT 1 FROM orders WHERE ST_DWithin(ST_MakePoint(1, 2)::geography, ST_MakePoint(3, 4)::geography, 10)",
        "SELECT digest('x', 'sha256'), hmac('x', 'k', 'sha1'), encode(digest('x', 'sha1'), 'hex')",
        "SELECT crypt('pw', gen_salt('bf')), gen_random_uuid(), gen_random_bytes(16)",
        "SELECT pgp_sym_encrypt('secret', 'pw'), armor(pgp_sym_encrypt_bytea('\\x01'::bytea, 'pw'))",
        "SELECT hstore('a', 'b'), hstore(ARRAY['a', 'b'], ARRAY['1', '2']), akeys('a=>1'::hstore)",
        "SELECT cube(ARRAY[1, 2]), subpath('a.b.c'::ltree, 1), similarity('abc', 'abd'), soundex('x')",
        "SELECT uuid_generate_v4(), levenshtein('kitten', 'sitting'), unaccent('Hôtel')",
        "SELECT ST_Transform(ST_SetSRID(ST_MakePoint(1, 2), 4326), 3857), array_to_vector('{1,2,3}'::real[], 3, true)",
        "SELECT l2_distance('[1,2,3]'::vector, '[3,2,1]'::vector), '[1,2]'::vector(2)",
        # on columns: never folded, whatever the function
        "SELECT pgp_sym_decrypt(note::bytea, 'pw') FROM orders",
        "SELECT ST_Segmentize(geom, 0.001), ST_Buffer(geom, 10, 'quad_segs=8') FROM orders",
    ],
)
def test_ordinary_calls_of_trusted_extension_functions_stay_admitted(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason


def test_the_budget_function_names_the_call_of_unknown_size() -> None:
    import pglast

    tree = pglast.parse_sql(
        "SELECT pgp_sym_decrypt('\\xc30d'::bytea, 'pw'), ST_Segmentize('POINT(1 1)', 1e-9)"
    )
    measures = measure_postgres(tree[0].stmt)
    reason = over_budget(measures, Budget())
    assert reason is not None
    assert "pgp_sym_decrypt" in reason and "st_segmentize" in reason
    fine = measure_postgres(pglast.parse_sql("SELECT digest('x', 'sha256'), ST_MakePoint(1, 2)")[0].stmt)
    assert over_budget(fine, Budget()) is None


def test_a_cast_to_a_dense_vector_counts_its_dimensions() -> None:
    import pglast

    one = measure_postgres(pglast.parse_sql("SELECT '{1:1}/16000'::sparsevec::vector")[0].stmt)
    assert one.constant_bytes >= 64_000
    many = ", ".join(["'{1:1}/16000'::sparsevec::vector"] * 300)
    verdict = check_sql(f"SELECT {many}", "postgresql")
    assert verdict.kind == LIMIT and "preflight.max_constant_bytes" in (verdict.reason or ""), verdict


# --- F2 (re-audit): a function the budget cannot size, called on constants ---------------------------------
# The budget is decided by name: a trusted extension's member created under another name (a SQL body calling
# pg_catalog.repeat, an internal function AS 'repeat', a C function of pgcrypto's library running
# pgp_sym_decrypt_text) counted as the size of its arguments. A name that is neither a PostgreSQL built-in nor a
# reviewed function of a trusted extension is of unknown size on constants: refused, naming the call.

UNSIZED_ON_CONSTANTS = [
    ("trgm_pad", "SELECT id FROM orders WHERE note = trgm_pad('x', 200000000)"),
    ("trgm_pad_i", "SELECT id FROM orders WHERE note = trgm_pad_i('x', 100000000)"),
    ("trgm_match", f"SELECT id FROM orders WHERE trgm_match('1', '{BOMB_PATH}')"),
    ("public.trgm_pad", "SELECT id FROM orders WHERE note = public.trgm_pad('x', 200000000)"),
    ("public.crypt_text", f"SELECT public.crypt_text(decode('{PGP_MESSAGE}', 'hex'), 'pw')"),
    ("crypt_text", "SELECT crypt_text()"),  # no arguments: all of them constants
    (
        "crypt_text",
        f"WITH c AS NOT MATERIALIZED (SELECT crypt_text(decode('{PGP_MESSAGE}', 'hex'), 'pw') AS v) "
        "SELECT 1 FROM orders, c c0, c c1, c c2, c c3, c c4 WHERE c0.v || c1.v || c2.v || c3.v || c4.v = 'a'",
    ),
    # through a constant column of a derived table, and in FROM
    ("trgm_pad", "SELECT trgm_pad('x', d.n) FROM (SELECT 200000000 AS n) d"),
    ("trgm_pad", "SELECT * FROM trgm_pad('x', 200000000) AS p"),
    # a built-in's name in another schema is not the built-in
    ("public.repeat", "SELECT public.repeat('x', 10)"),
    ("ext.lower", "SELECT ext.lower('X')"),
    # pg_catalog holds built-ins (and extensions created there): a name of neither is unknown there too
    ("pg_catalog.trgm_pad", "SELECT pg_catalog.trgm_pad('x', 200000000)"),
]


@pytest.mark.parametrize(
    ("name", "sql"), UNSIZED_ON_CONSTANTS, ids=[sql[:60] for _, sql in UNSIZED_ON_CONSTANTS]
)
def test_a_function_the_budget_cannot_size_on_constants_is_refused(name: str, sql: str) -> None:
    """Measured strictly (the routine gate's measure, once every routine left is trusted): of unknown size, named;
    the guard, without the catalog, counts it as its arguments (the gate decides whether it may run at all), and
    a routine the profile allow-lists is vouched for."""
    import pglast

    tree = pglast.parse_sql(sql)[0].stmt
    strict = measure_postgres(tree, vouched=lambda schema, routine: False)
    reason = over_budget(strict, Budget())
    assert reason is not None and f"{name}()" in reason, reason
    assert "neither a PostgreSQL built-in nor a reviewed function" in reason, reason
    allowed = measure_postgres(tree, vouched=lambda schema, routine: True)
    assert not any("neither a PostgreSQL built-in" in label for label in allowed.unknown)
    guard = measure_postgres(tree)
    assert not any("neither a PostgreSQL built-in" in label for label in guard.unknown)


@pytest.mark.parametrize(
    "sql",
    [
        # on a column: never folded, whatever the function
        "SELECT trgm_pad(note, 200000000), public.trgm_pad(note, 5) FROM orders",
        "SELECT crypt_text(note::bytea, 'pw') FROM orders WHERE trgm_match(doc, '$.a == 1')",
        "SELECT myschema.f(id, 1, 'x') FROM orders",
        # built-ins on constants keep their sizing, qualified or not
        "SELECT now(), lower('X'), pg_catalog.lower('X'), upper('y'), length('abc'), abs(-1), round(1.5)",
        "SELECT date_trunc('day', '2024-01-01'::timestamp), make_date(2024, 1, 1), make_interval(days => 1)",
        "SELECT to_char(now(), 'YYYY-MM-DD'), to_char(12.5, '999D9'), to_date('2024-01-01', 'YYYY-MM-DD')",
        "SELECT pg_catalog.repeat('-', 40), repeat('=', 10), lpad('7', 3, '0'), coalesce(NULL, 1)",
        "SELECT extract(year FROM date '2024-01-01'), substring('abc' FROM 2), position('b' IN 'abc')",
        "SELECT trim(both ' ' FROM ' a '), overlay('abc' placing 'x' from 2), '2024-01-01' AT TIME ZONE 'UTC'",
        "SELECT current_setting('TimeZone'), format('%s-%s', 1, 2), concat('a', 1), md5('x')",
        "SELECT jsonb_build_object('a', 1), to_jsonb('x'::text), json_build_array(1, 2), uuid('00000000-0000-0000-0000-000000000000')",
        "SELECT int4('1'), float8('1.5'), date('2024-01-01'), inet('10.0.0.1')",
        "SELECT id FROM orders WHERE created_at > now() - interval '1 day' AND note ILIKE lower('%X%')",
        # names added in PostgreSQL 16, 17 and 18
        "SELECT random_normal(), date_add(now(), interval '1 day'), to_bin(5), uuidv7(), casefold('ß')",
        # reviewed functions of trusted extensions, qualified or not
        "SELECT ST_MakePoint(1, 2), public.st_makepoint(1, 2), public.digest('x', 'sha256')",
        "SELECT crypt('pw', gen_salt('bf')), hstore('a', 'b'), uuid_generate_v4(), public.uuid_generate_v4()",
        "SELECT similarity('abc', 'abd'), word_similarity('a', 'ab'), levenshtein('a', 'b'), ext.similarity('a', 'b')",
        "SELECT earth_distance(ll_to_earth(0, 0), ll_to_earth(1, 1)), cosine_distance('[1,2]', '[2,1]')",
        # aggregates and window functions of any name are not folded
        "SELECT myschema.my_agg(1) OVER (), count(*) FROM orders",
    ],
)
def test_ordinary_constant_calls_stay_admitted(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason


def test_the_budget_function_names_the_unsized_call() -> None:
    import pglast

    def strict(sql: str) -> Any:
        return measure_postgres(pglast.parse_sql(sql)[0].stmt, vouched=lambda schema, routine: False)

    measures = strict("SELECT public.trgm_pad('x', 200000000)")
    reason = over_budget(measures, Budget())
    assert reason is not None and "public.trgm_pad()" in reason, reason
    assert measures.unknown and "public.trgm_pad()" in measures.unknown[0]
    fine = strict("SELECT trgm_pad(note, 200000000) FROM orders")
    assert over_budget(fine, Budget()) is None and not fine.unknown


def test_the_built_in_names_are_postgresql_s() -> None:
    from dbmeta_app.preflight.pg_builtins import PG_BUILTINS

    # PostgreSQL 15 (generated), 16–18 (added), and type names a call may cast to
    assert {"repeat", "lower", "jsonb_path_match", "pg_sleep", "generate_series", "now"} <= PG_BUILTINS
    assert {"any_value", "system_user", "uuid_extract_version", "casefold", "uuidv7"} <= PG_BUILTINS
    assert {"uuid", "jsonb", "inet"} <= PG_BUILTINS
    assert not {"trgm_pad", "crypt_text", "digest", "similarity", "st_makepoint"} & PG_BUILTINS


def test_the_names_the_budget_sizes_are_the_ones_it_measures_without_anyone_vouching() -> None:
    """The routine gate skips its second measure when every call is sized by name: the two must agree."""
    import pglast

    from dbmeta_app.preflight.budget import pg_sized_by_name

    cases = [("", "repeat", True), ("pg_catalog", "REPEAT", True), ("public", "repeat", False)]
    cases += [("", "trgm_pad", False), ("public", "similarity", True), ("", "pgp_sym_encrypt", True)]
    for schema, name, sized in cases:
        assert pg_sized_by_name(schema, name) is sized, (schema, name)
        called = f"{schema}.{name}" if schema else name
        tree = pglast.parse_sql(f"SELECT {called}('x', 2)")[0].stmt
        strict = measure_postgres(tree, vouched=lambda schema, routine: False)
        assert any("neither a PostgreSQL built-in" in label for label in strict.unknown) is (not sized), (
            called
        )
