"""Calls the PostgreSQL planner folds whose result (or the work of evaluating them) is not bounded by their
arguments: a jsonpath evaluated on a constant json, and the functions of trusted extensions that decompress,
decrypt or generate (pgcrypto's pgp_*_decrypt, PostGIS's ST_Segmentize, ST_Buffer, …). On constants they are
refused before the EXPLAIN, naming the call; on columns (never folded) they stay admitted."""

from __future__ import annotations

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
