"""Rendering is pure and deterministic; names resolve to snapshot keys."""

from __future__ import annotations

import pytest

from dbmeta_app.schema.models import Column, ForeignKey, Snapshot, Table
from dbmeta_app.schema.render import quote_ident, render_schema, render_table, resolve_table_names


def _snapshot(dialect: str = "postgresql") -> Snapshot:
    customers = Table(
        schema="sales",
        name="customers",
        columns=(
            Column("id", "integer", False, True),
            Column("name", "text", False, description="Legal name"),
        ),
        primary_key=("id",),
        description="Buyers",
    )
    orders = Table(
        schema="sales",
        name="Order Lines",
        columns=(
            Column("id", "bigint", False, True),
            Column("customer_id", "integer", False),
            Column("status", "varchar(20)", True, comment="db comment", examples=("open", "shipped")),
            Column("discount %", "numeric(5,2)"),
        ),
        primary_key=("id",),
        foreign_keys=(ForeignKey(("customer_id",), "sales.customers", ("id",)),),
        sample_rows=(("1", "7", "open", None),),
    )
    return Snapshot.build("p", dialect, [orders, customers])


def test_renders_name_description_columns_pk_and_fk_markers() -> None:
    snap = _snapshot()
    text = render_table(snap.tables["sales.customers"], snap)
    assert text.splitlines() == [
        "# sales.customers — Buyers",
        "id integer PK",
        "name text NOT NULL — Legal name",
    ]
    lines = render_table(snap.tables["sales.Order Lines"], snap).splitlines()
    assert lines[0] == '# sales."Order Lines"'
    assert "customer_id integer NOT NULL → sales.customers.id" in lines
    assert "status varchar(20) — db comment; e.g. open, shipped" in lines
    assert '"discount %" numeric(5,2)' in lines
    assert lines[-3:] == ["sample rows (CSV):", "id,customer_id,status,discount %", "1,7,open,"]


def test_rendering_is_deterministic_and_sorted_by_key() -> None:
    a, b = render_schema(_snapshot()), render_schema(_snapshot())
    assert a == b
    assert a.index('# sales."Order Lines"') < a.index("# sales.customers")


def test_rendering_only_the_requested_tables_in_the_requested_order() -> None:
    snap = _snapshot()
    text = render_schema(snap, ["sales.customers", "sales.Order Lines"])
    assert text.index("sales.customers") < text.index('"Order Lines"')
    assert render_schema(snap, []) == ""


def test_samples_can_be_left_out() -> None:
    assert "sample rows" not in render_schema(_snapshot(), with_samples=False)


def test_quoting_follows_the_dialect() -> None:
    assert quote_ident("orders", "postgresql") == "orders"
    assert quote_ident("Orders", "postgresql") == '"Orders"'
    assert quote_ident("Orders", "mysql") == "Orders"
    assert quote_ident("order", "mysql") == "`order`"
    assert quote_ident('we"ird', "sqlite") == '"we""ird"'
    assert quote_ident("a`b", "mysql") == "`a``b`"


def test_names_resolve_exactly_case_insensitively_and_by_unique_bare_name() -> None:
    snap = _snapshot()
    keys, unknown = resolve_table_names(snap, ["SALES.CUSTOMERS", "order lines", "nope", "sales.customers"])
    assert keys == ["sales.customers", "sales.Order Lines"]
    assert unknown == ["nope"]


def test_names_differing_only_in_case_resolve_by_their_exact_spelling_first() -> None:
    lower, upper = Table("sales", "customers"), Table("sales", "Customers")
    snap = Snapshot.build("p", "postgresql", [lower, upper, Table("sales", "orders")])
    assert resolve_table_names(snap, ["customers", "Customers", 'sales."Customers"', '"Customers"']) == (
        ["sales.customers", "sales.Customers"],
        [],
    )
    # a spelling that is neither is ambiguous between the two: not guessed
    assert resolve_table_names(snap, ["CUSTOMERS", "SALES.CUSTOMERS"]) == (
        [],
        ["CUSTOMERS", "SALES.CUSTOMERS"],
    )
    assert resolve_table_names(snap, ["ORDERS", "Sales.Orders"]) == (["sales.orders"], [])


def test_qualified_names_resolve_to_sqlite_bare_keys() -> None:
    snap = Snapshot.build("p", "sqlite", [Table(None, "orders", columns=(Column("id", "INTEGER"),))])
    assert resolve_table_names(snap, ["main.orders", "orders"]) == (["orders"], [])


def test_snapshot_json_round_trip_keeps_everything() -> None:
    snap = _snapshot()
    again = Snapshot.from_json(snap.to_json())
    assert again == snap
    assert render_schema(again) == render_schema(snap)


# ---- control characters of a hostile database never reach the prompt text or a terminal ----------------

_ESC_NAME = "orders\x1b[2K\rfake_table"
_CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x202E)]


def _hostile(dialect: str) -> Snapshot:
    table = Table(
        schema="s",
        name=_ESC_NAME,
        comment="a\x1b]0;title\x07 b\x1b[8m\nc\td",
        columns=(
            Column("id\x1b[1m", "integer\x1b[31m", False, True, comment="x\x9b31m y\u202e"),
            Column("a\\x1b", "text"),
        ),
        primary_key=("id\x1b[1m",),
        sample_rows=(("1\x1b[2J", "v\x07"),),
    )
    return Snapshot.build("p", dialect, [table])


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite", "clickhouse", "duckdb"])
def test_control_characters_of_names_comments_types_and_values_are_escaped(dialect: str) -> None:
    text = render_schema(_hostile(dialect), None, True)
    assert not any(c in text for c in _CONTROLS if c != "\n"), repr(text)
    assert len(text.splitlines()) == 6  # header, 2 columns, the sample block's 3 lines, no line of its own
    assert "title\\x07 b\\x1b[8m c d" in text  # comment: escaped, line breaks and tabs made spaces
    assert "\\x9b31m y\\u202e" in text and "integer\\x1b[31m" in text and "1\\x1b[2J" in text


def test_an_escaped_name_is_sql_on_postgresql_and_a_name_without_control_characters_is_exact() -> None:
    # PostgreSQL: its Unicode-escape identifier, exactly the name (a backslash is \\ in it)
    assert quote_ident(_ESC_NAME, "postgresql") == 'U&"orders\\001B[2K\\000Dfake_table"'
    assert quote_ident("a\x1b\\", "postgresql") == 'U&"a\\001B\\\\"'
    assert quote_ident("a\\x1b", "postgresql") == '"a\\x1b"'  # no control character: as written
    # elsewhere: \x1b escapes (with the name's backslashes doubled); a name without a control character is
    # written exactly, backslashes included: MySQL and SQLite take no escapes in a quoted identifier
    assert quote_ident("a\x1b", "mysql") == "`a\\x1b`"
    assert quote_ident("a\x1b\\", "mysql") == "`a\\x1b\\\\`"
    assert quote_ident("a\\b", "mysql") == "`a\\b`"
    assert quote_ident("a\\b", "sqlite") == '"a\\b"'
