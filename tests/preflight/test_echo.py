"""What a preflight answer repeats of the database's text: the caller's words and the schema's names, no values."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight.echo import Echo
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql

STATEMENT = "SELECT * FROM shop.orders WHERE status = 'paid' AND amount > 1.5 AND note = 'it''s'"
NAMES = ["shop.orders", "orders", "shop", "customer_id", "field_list"]


def test_a_value_the_caller_wrote_or_a_name_of_the_schema_is_kept() -> None:
    echo = Echo(STATEMENT, lambda: NAMES)
    assert echo.message("Table 'shop.orders' doesn't exist") == "Table 'shop.orders' doesn't exist"
    assert echo.message("Unknown column 'customer_id' in 'paid'") == "Unknown column 'customer_id' in 'paid'"
    assert (
        echo.message('invalid input syntax for type integer: "it\'s"')
        == 'invalid input syntax for type integer: "it\'s"'
    )


def test_a_value_from_elsewhere_is_replaced_in_messages_cut_short_too() -> None:
    echo = Echo(STATEMENT, lambda: NAMES)
    assert echo.message("XPATH syntax error: '~1:hunter2,2:other-...'") == "XPATH syntax error: '…'"
    assert echo.message("XPATH syntax error: '~1:hunter2,2:oth") == "XPATH syntax error: '…'"
    assert echo.message("Cannot parse string 'hunter2' as UInt32") == "Cannot parse string '…' as UInt32"


def test_plans_lose_foreign_values_and_foreign_numbers_of_expressions_only() -> None:
    echo = Echo(STATEMENT, lambda: NAMES)
    plan = {
        "table": {
            "key_length": "4",
            "rows": 77,
            "const_condition": "'hunter2' is not null",
            "attached_condition": "o.amount > 8686 and o.amount > 1.5 and o.status = 'paid'",
            "ref": ["const", "31337"],
        },
        "indexes": [{"Condition": "(x in ['hunter2', 'hunter2'])"}],
    }
    assert echo.plan(plan) == {
        "table": {
            "key_length": "4",
            "rows": 77,
            "const_condition": "'…' is not null",
            "attached_condition": "o.amount > ? and o.amount > 1.5 and o.status = 'paid'",
            "ref": ["const", "?"],
        },
        "indexes": [{"Condition": "(x in ['…', '…'])"}],
    }


def test_a_value_is_never_let_through_piecewise() -> None:
    """The caller writes an alphabet: a secret spelt out in single letters is still not its words."""
    alphabet = " ".join("abcdefghijklmnopqrstuvwxyz0123456789")
    echo = Echo(
        f"SELECT h, u, n, t, e, r FROM shop.orders WHERE note = '{alphabet}' AND id IN (3, 1)", lambda: NAMES
    )
    assert echo.message("XPATH syntax error: '~h u n t e r 2'") == "XPATH syntax error: '…'"
    assert echo.message("Unknown column 'h.u.n.t.e.r'") == "Unknown column '…'"
    assert echo.message("Unknown column 'h'") == "Unknown column 'h'"  # whole: a name the caller wrote
    assert echo.plan({"attached_condition": "o.x = '31' and o.y > 31"}) == {
        "attached_condition": "o.x = '…' and o.y > ?"
    }


def test_numbers_in_messages_of_planners_that_read_rows_are_the_caller_s_only() -> None:
    echo = Echo("SELECT toDateTime64(0, (SELECT any(n) FROM v)) WHERE 7 = 7", lambda: NAMES, reads_rows=True)
    message = "Code: 69. DB::Exception: Scale 31337 is out of bounds (max scale: 7): While processing 'x'"
    assert (
        echo.message(message)
        == "Code: 69. DB::Exception: Scale ? is out of bounds (max scale: 7): While processing '…'"
    )
    assert Echo("SELECT 31337", reads_rows=False).message("value 31337 'x'") == "value 31337 '…'"


def test_the_schema_s_names_are_read_only_when_a_value_is_not_the_caller_s() -> None:
    asked: list[int] = []

    def names() -> list[str]:
        asked.append(1)
        return NAMES

    echo = Echo(STATEMENT, names)
    assert echo.message("column 'paid' and 'it''s'") == "column 'paid' and 'it''s'"
    assert asked == []
    echo.message("'customer_id'")
    echo.message("'shop'")
    assert asked == [1]


# --- ClickHouse runs scalar subqueries while planning ---------------------------------------------------


@pytest.fixture(scope="module")
def vault(chdb_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(chdb_url)
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS echo_db")
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS echo_db.vault (id UInt32, secret String) ENGINE = MergeTree ORDER BY id"
        )
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS echo_db.t (x String) ENGINE = MergeTree ORDER BY x")
        conn.exec_driver_sql("INSERT INTO echo_db.vault VALUES (1, 'hunter2-TOPSECRET'), (2, 'other-secret')")
    yield engine
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE echo_db")
    engine.dispose()


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM echo_db.t WHERE x = (SELECT arrayStringConcat(groupArray(secret), '|') FROM echo_db.vault)",
        "SELECT * FROM echo_db.t WHERE x = toString(toUInt32((SELECT groupArray(secret) FROM echo_db.vault)[1]))",
        # the secret spelt out letter by letter, every letter a word the caller wrote
        "SELECT * FROM echo_db.t WHERE x = (SELECT arrayStringConcat(splitByString('', any(secret)), ' ') "
        "FROM echo_db.vault WHERE id = 1) AND x <> 'a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4'",
        # a number ClickHouse prints without quotes: 4 bytes of the secret per request
        "SELECT * FROM echo_db.t WHERE x = toString(toDateTime64(0, (SELECT reinterpretAsUInt32(substring("
        "any(secret), 1, 4)) FROM echo_db.vault WHERE id = 1)))",
    ],
    ids=["in_the_plan", "in_the_error", "spelt_out", "unquoted_number"],
)
def test_clickhouse_scalar_subquery_values_are_not_in_the_answer(vault: sa.Engine, sql: str) -> None:
    verdict = check_sql(sql, "clickhouse")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    result = run_explain(
        vault, verdict.statement, names=lambda: ["echo_db.t", "x", "echo_db.vault", "secret"]
    )
    text = json.dumps([result.error, result.plan])
    assert result.error_kind in (None, "sql")
    assert "hunter2" not in text and "other-secret" not in text
    assert "h u n t" not in text and "1953396072" not in text


# --- ClickHouse prints some values without quotes (finding 11) ------------------------------------------


def test_clickhouse_error_words_are_an_allow_list_of_the_caller_s_the_schema_s_and_the_engine_s() -> None:
    statement = "SELECT toTimeZone(now(), (SELECT secret FROM w.vault LIMIT 1)) FROM echo_db.t"
    echo = Echo(statement, lambda: ["echo_db.t", "x", "w.vault", "secret"], reads_rows=True)
    message = (
        "Code: 36. DB::Exception: Cannot load time zone hunter2xyz: while executing 'FUNCTION "
        "toTimeZone(now() :: 1, _subquery_1 :: 2)'. (BAD_ARGUMENTS)"
    )
    masked = echo.message(message)
    assert "hunter2xyz" not in masked
    assert masked.startswith("Code: 36. DB::Exception: Cannot load time zone …")
    assert masked.endswith("(BAD_ARGUMENTS)")
    # an ordinary mistake keeps its words: the engine's, the caller's, the schema's
    unknown = (
        "Code: 47. DB::Exception: Unknown expression identifier `nosuch` in scope SELECT nosuch FROM echo_db.t. "
        "Maybe you meant: ['x']. (UNKNOWN_IDENTIFIER)"
    )
    assert (
        Echo("SELECT nosuch FROM echo_db.t", lambda: ["echo_db.t", "x"], reads_rows=True).message(unknown)
        == unknown
    )
    syntax = (
        "Code: 62. DB::Exception: Syntax error: failed at position 8 (FROM): FROM t. "
        "Expected one of: expression, list of elements. (SYNTAX_ERROR)"
    )
    assert (
        Echo("SELECT FROM t", reads_rows=True)
        .message(syntax)
        .startswith("Code: 62. DB::Exception: Syntax error")
    )
    # a value in upper case is not taken for an error code name
    assert "HUNTER2" not in echo.message(
        "Code: 50. DB::Exception: Unknown data type family: HUNTER2. (UNKNOWN_TYPE)"
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT toTimeZone(now(), (SELECT secret FROM echo_db.vault WHERE id = 1))",
        "SELECT JSONExtract('{}', (SELECT secret FROM echo_db.vault WHERE id = 1))",
        "SELECT extractAll('a', (SELECT concat('(', secret) FROM echo_db.vault WHERE id = 1))",
    ],
    ids=["time_zone", "type_name", "regexp"],
)
def test_clickhouse_values_printed_without_quotes_are_not_in_the_answer(vault: sa.Engine, sql: str) -> None:
    verdict = check_sql(sql, "clickhouse")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    result = run_explain(
        vault, verdict.statement, names=lambda: ["echo_db.t", "x", "echo_db.vault", "secret"]
    )
    assert not result.ok and result.error_kind == "sql", result
    assert "hunter2" not in (result.error or "") and "TOPSECRET" not in (result.error or ""), result.error


# --- audit B 6: unquoted words the caller wrote are not let through piecewise -------------------------------


def test_clickhouse_unquoted_caller_words_are_not_let_through_piecewise() -> None:
    """A vocabulary written as aliases (or literals) must not spell an unquoted value back in order."""
    vocabulary = "".join(
        f", 1 AS {w}" for w in "apple battery cable correct dog elephant horse staple zebra".split()
    )
    statement = f"SELECT toDateTime('2020-01-01', (SELECT any(secret) FROM w.s2)) AS x{vocabulary}"
    echo = Echo(statement, lambda: ["w.s2", "secret", "id"], reads_rows=True)
    message = (
        "Code: 36. DB::Exception: Cannot load time zone correct horse battery staple: In scope SELECT "
        "toDateTime('2020-01-01', (SELECT any(secret) FROM w.s2)) AS x, 1 AS apple. (BAD_ARGUMENTS)"
    )
    masked = echo.message(message)
    for word in ("correct", "horse", "battery", "staple"):
        assert word not in masked.split(": In scope")[0], masked
    assert masked.startswith(
        "Code: 36. DB::Exception: Cannot load time zone … … … …: In scope SELECT toDateTime"
    )
    # with the words as string literals, or separated by words of the engine's vocabulary: the same
    literals = (
        "SELECT 'correct', 'horse', 'battery', 'staple', toTimeZone(now(), (SELECT any(secret) FROM w.s2))"
    )
    spaced = "Code: 36. DB::Exception: Cannot load time zone correct: the horse: the battery: the staple. (BAD_ARGUMENTS)"
    for text in (literals, statement):
        out = Echo(text, lambda: ["w.s2", "secret"], reads_rows=True).message(spaced)
        assert not any(w in out for w in ("correct", "horse", "battery", "staple")), out
    # one word the caller wrote, alone (a time zone, a type name), is a membership test: kept
    single = Echo("SELECT toTimeZone(now(), 'Mars/Base') AS t", reads_rows=True)
    assert "Mars/Base" in single.message(
        "Code: 36. DB::Exception: Cannot load time zone Mars/Base. (BAD_ARGUMENTS)"
    )
    typed = Echo("SELECT CAST(1 AS mytype) FROM t", reads_rows=True)
    assert typed.message(
        "Code: 50. DB::Exception: Unknown data type family: mytype. (UNKNOWN_TYPE)"
    ).endswith("family: mytype. (UNKNOWN_TYPE)")
    # the statement echoed by the engine (its words in the caller's order) is kept
    echoed = Echo("SELECT nosuchfn(x) AS pretty_name FROM t", lambda: ["t", "x"], reads_rows=True)
    text = (
        "Code: 46. DB::Exception: Unknown function nosuchfn: In scope SELECT nosuchfn(x) AS pretty_name FROM t. "
        "(UNKNOWN_FUNCTION)"
    )
    assert echoed.message(text) == text


def test_a_clickhouse_error_does_not_repeat_the_services_own_settings_clause() -> None:
    """Audit S14: the SETTINGS the service appends are not the caller's problem (nor their words, mangled)."""
    statement = "SELECT * FROM evnts"
    echo = Echo(statement, lambda: ["analytics.events", "events", "analytics"], reads_rows=True)
    raw = (
        "Code: 60. DB::Exception: Unknown table expression identifier 'evnts'. Maybe you meant analytics.events?"
        " In scope SELECT * FROM evnts SETTINGS readonly = 2, max_execution_time = 3, timeout_overflow_mode = "
        "'throw', max_memory_usage = 256000000, max_result_rows = 100000, max_result_bytes = 104857600, "
        "result_overflow_mode = 'break', allow_introspection_functions = 0. (UNKNOWN_TABLE)"
    )
    assert echo.message(raw) == (
        "Code: 60. DB::Exception: Unknown table expression identifier 'evnts'. Maybe you meant analytics.events?"
        " In scope SELECT * FROM evnts. (UNKNOWN_TABLE)"
    )


def test_a_clickhouse_hint_whose_every_name_is_masked_is_left_out() -> None:
    echo = Echo("SELECT evnt_type FROM analytics.events", lambda: ["analytics.events"], reads_rows=True)
    raw = (
        "Code: 47. DB::Exception: Unknown expression identifier `evnt_type`. Maybe you meant: ['hunter2']. "
        "In scope SELECT evnt_type FROM analytics.events SETTINGS readonly = 2, max_execution_time = 3. "
        "(UNKNOWN_IDENTIFIER)"
    )
    assert echo.message(raw) == (
        "Code: 47. DB::Exception: Unknown expression identifier `evnt_type`. In scope SELECT evnt_type FROM "
        "analytics.events. (UNKNOWN_IDENTIFIER)"
    )


# --- PostgreSQL folds stable functions while estimating: a setting's value can reach an error's numbers --------


def test_numbers_in_any_error_message_are_the_caller_s_only() -> None:
    """Every planner folds something it was not shown (PostgreSQL: stable functions, current_setting among
    them, while estimating), so a number in an error message is repeated only when the caller wrote it."""
    echo = Echo("SELECT chr(x + 1114112) FROM t WHERE n > 10")
    assert echo.message("requested character too large for encoding: 8678189") == (
        "requested character too large for encoding: ?"
    )
    assert (
        echo.message("value 1114112 is out of range, limit 10") == "value 1114112 is out of range, limit 10"
    )


@pytest.mark.integration
def test_a_postgres_setting_read_while_planning_is_not_spelt_by_an_error_s_number(pg_url: str) -> None:
    engine = sa.create_engine(pg_url, connect_args={"options": "-c app.api_key=hunter2-TOPSECRET"})
    # three bytes of the setting per request, as the code point of a character too large for the encoding
    sql = (
        "SELECT 1 FROM pg_catalog.pg_class WHERE relname = chr(('x' || encode(convert_to(rpad(substr("
        "current_setting('app.api_key'), 1, 3), 3, ' '), 'UTF8'), 'hex'))::bit(24)::int + 1114112)"
    )
    try:
        verdict = check_sql(sql, "postgresql")
        assert verdict.ok and verdict.statement is not None, verdict.reason
        result = run_explain(engine, verdict.statement, names=lambda: ["pg_class", "relname"])
    finally:
        engine.dispose()
    secret = int.from_bytes(b"hun", "big") + 1114112
    assert result.error_kind == "sql", result
    assert "too large" in (result.error or "")
    assert str(secret) not in json.dumps([result.error, result.plan])


def test_a_value_shaped_to_slip_out_of_its_quotes_is_masked_whole() -> None:
    """A value may hold the message's own quote (PostgreSQL and MariaDB do not escape it): a quote first makes an
    empty value with the rest unquoted, a value framed by the caller's own literals leaves its middle between
    two allowed values. The span from the first quote of such a message to its last is one value."""
    echo = Echo("SELECT ('a\" ' || current_setting('app.k') || ' \"b')::int, 'a', 'b' FROM t")
    cases = {
        'invalid input syntax for type integer: ""hunter2"': 'invalid input syntax for type integer: "…"',
        'invalid input syntax for type integer: "a" hunter2 "b"': 'invalid input syntax for type integer: "…"',
        'time zone ""hunter2" not recognized': 'time zone "…" not recognized',
        'time zone "a" hunter2 "b" not recognized': 'time zone "…" not recognized',
        'time zone "x" z6875 "y" not recognized': 'time zone "…" not recognized',
        "XPATH syntax error: '' ##!#!!!'": "XPATH syntax error: '…'",
        "XPATH syntax error: '' . , . ''": "XPATH syntax error: '…'",
    }
    for message, masked in cases.items():
        assert echo.message(message) == masked, message
    # ordinary messages keep their names and words
    names = Echo("SELECT custmer_id FROM shop.orders", lambda: NAMES)
    for message in (
        "Table 'shop.orders' doesn't exist",
        'column "custmer_id" of relation "orders" does not exist',
        'relation "shop.orders" does not exist',
        "Unknown column 'shop.custmer_id' in 'customer_id'",
    ):
        assert names.message(message) == message
    assert (
        names.message("Unknown column 'custmer_id' in 'field list'") == "Unknown column 'custmer_id' in '…'"
    )


def test_hex_byte_values_in_a_message_are_numbers_too() -> None:
    """PostgreSQL names an invalid byte sequence in hex: three bytes of current_setting('app.api_key') a request
    (``0xf0 0x68 0x75 0x6e``)."""
    echo = Echo("SELECT convert_from('\\xf0'::bytea || convert_to(x, 'UTF8'), 'UTF8') WHERE y = 0x1F")
    message = 'invalid byte sequence for encoding "UTF8": 0xf0 0x68 0x75 0x6e'
    assert echo.message(message) == 'invalid byte sequence for encoding "UTF8": ? ? ? ?'
    assert echo.message("value 0x1F") == "value 0x1F"  # the caller's own
