"""Did-you-mean hints for unknown tables and columns, from PostgreSQL, MySQL and SQLite wordings."""

from __future__ import annotations

import pytest

from dbmeta_app.preflight.suggest import missing_name, suggest_names

TABLES = ["sales.orders", "sales.order_items", "sales.customers", "hr.employees"]
COLUMNS = {
    "sales.orders": ["id", "customer_id", "amount", "created_at"],
    "sales.customers": ["id", "name", "email"],
    "hr.employees": ["id", "full_name", "salary"],
}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ('relation "ordrs" does not exist', ("table", "ordrs")),
        ('relation "sales.ordrs" does not exist', ("table", "sales.ordrs")),
        ('missing FROM-clause entry for table "o"', ("table", "o")),
        ('column "amout" does not exist', ("column", "amout")),
        ("column o.amout does not exist", ("column", "o.amout")),
        ("Table 'shop.ordrs' doesn't exist", ("table", "shop.ordrs")),
        ("Unknown column 'amout' in 'field list'", ("column", "amout")),
        ("Unknown column 'o.amout' in 'where clause'", ("column", "o.amout")),
        ("no such table: ordrs", ("table", "ordrs")),
        ("no such column: o.amout", ("column", "o.amout")),
        ('syntax error at or near "FROM"', None),
    ],
)
def test_missing_name_is_parsed_from_each_database_wording(
    error: str, expected: tuple[str, str] | None
) -> None:
    assert missing_name(error) == expected


def test_bare_misspelled_table_suggests_the_qualified_name() -> None:
    assert suggest_names('relation "ordrs" does not exist', TABLES, COLUMNS) == "did you mean sales.orders?"


def test_table_in_the_wrong_schema_suggests_the_right_one() -> None:
    hint = suggest_names("Table 'public.customers' doesn't exist", TABLES, COLUMNS)
    assert hint == "did you mean sales.customers?"


def test_table_match_is_case_insensitive() -> None:
    assert suggest_names("no such table: EMPLOYES", TABLES, COLUMNS) == "did you mean hr.employees?"


def test_equally_close_tables_in_several_schemas_are_all_offered() -> None:
    hint = suggest_names('relation "custmers" does not exist', [*TABLES, "crm.customers"], COLUMNS)
    assert hint == "did you mean crm.customers or sales.customers?"


def test_only_names_nearly_as_close_as_the_best_are_offered() -> None:
    # "order_items" also clears the cut-off, but is much further than "orders".
    assert suggest_names('relation "ordrs" does not exist', TABLES, COLUMNS) == "did you mean sales.orders?"


def test_column_is_looked_up_in_the_referenced_tables_first() -> None:
    hint = suggest_names(
        "Unknown column 'o.nme' in 'field list'", TABLES, COLUMNS, referenced_tables=["sales.customers"]
    )
    assert hint == "did you mean name (sales.customers)?"


def test_column_falls_back_to_every_table_when_the_referenced_ones_have_no_match() -> None:
    hint = suggest_names('column "salary_" does not exist', TABLES, COLUMNS, referenced_tables=["orders"])
    assert hint == (
        "did you mean salary (hr.employees)? The columns of sales.orders: id, customer_id, amount, created_at"
    )


def test_without_a_close_name_in_the_tables_read_their_columns_are_listed() -> None:
    # a name from another table alone would send the caller to a table its query does not read
    assert suggest_names("no such column: placed_on", TABLES, COLUMNS, referenced_tables=["orders"]) == (
        "The columns of sales.orders: id, customer_id, amount, created_at"
    )
    assert suggest_names(
        'column "zzz" does not exist', TABLES, COLUMNS, referenced_tables=["sales.orders", "customers"]
    ) == (
        "The columns of sales.orders: id, customer_id, amount, created_at; "
        "of sales.customers: id, name, email"
    )
    wide = {"w.t": [f"c{i}" for i in range(100)]}
    hint = suggest_names("no such column: zzz", ["w.t"], wide, referenced_tables=["t"])
    assert hint is not None and hint.endswith("c38, c39 and 60 more") and len(hint) < 400, hint
    # no table the query reads is known: no list
    assert suggest_names("no such column: zzz", TABLES, COLUMNS, referenced_tables=["nope"]) is None


def test_nothing_close_gives_no_hint() -> None:
    assert suggest_names('relation "zzz" does not exist', TABLES, COLUMNS) is None
    assert suggest_names("permission denied for table orders", TABLES, COLUMNS) is None


# --- names written as the dialect must write them (audit S7) -------------------------------------------------

WEIRD = ["Weird Schema.Mixed Case Tbl", "public.orders"]
WEIRD_COLUMNS = {"Weird Schema.Mixed Case Tbl": ["id", "Mixed Col"], "public.orders": ["id", "amount"]}


def test_postgresql_names_that_need_quotes_are_suggested_quoted_part_by_part() -> None:
    error = 'relation "Weird Schema.Mixed Case Tb" does not exist'
    assert suggest_names(error, WEIRD, WEIRD_COLUMNS) == 'did you mean "Weird Schema"."Mixed Case Tbl"?'
    column = 'column "Mixed Co" does not exist'
    hint = suggest_names(column, WEIRD, WEIRD_COLUMNS, referenced_tables=['"Weird Schema"."Mixed Case Tbl"'])
    assert hint == 'did you mean "Mixed Col" ("Weird Schema"."Mixed Case Tbl")?'


def test_a_name_written_as_one_quoted_identifier_is_suggested_as_its_parts() -> None:
    # "Weird Schema.Mixed Case Tbl" is one identifier with a dot in it: the table is two
    error = 'relation "Weird Schema.Mixed Case Tbl" does not exist'
    assert suggest_names(error, WEIRD, WEIRD_COLUMNS) == 'did you mean "Weird Schema"."Mixed Case Tbl"?'
    # a plain name the database cannot find is not offered back to the caller as it is
    assert suggest_names('relation "public.orders" does not exist', WEIRD, WEIRD_COLUMNS) is None


def test_plain_lower_case_names_stay_unquoted() -> None:
    assert suggest_names('relation "ordrs" does not exist', TABLES, COLUMNS) == "did you mean sales.orders?"
    hint = suggest_names('column "amout" does not exist', TABLES, COLUMNS, referenced_tables=["sales.orders"])
    assert hint == "did you mean amount (sales.orders)?"


@pytest.mark.parametrize(
    ("error", "dialect", "expected"),
    [
        # MySQL/MariaDB: backticks; mixed case is plain there
        ("Table 'shop.Mixed Case Tb' doesn't exist", None, "did you mean shop.`Mixed Case Tbl`?"),
        ("Table 'shop.Ordrs' doesn't exist", None, "did you mean shop.Orders?"),
        (
            "Unknown column 'Mixed Co' in 'field list'",
            None,
            "did you mean `Mixed Col` (shop.`Mixed Case Tbl`)?",
        ),
        # SQLite: double quotes, names with spaces parsed whole
        ("no such table: Mixed Case Tb", None, 'did you mean shop."Mixed Case Tbl"?'),
        ("no such column: Mixed Co", None, 'did you mean "Mixed Col" (shop."Mixed Case Tbl")?'),
        # DuckDB
        (
            "Catalog Error: Table with name Mixed Case Tb does not exist!",
            None,
            'did you mean shop."Mixed Case Tbl"?',
        ),
        ("Catalog Error: Table with name ordrs does not exist!", None, "did you mean shop.Orders?"),
        (
            'Binder Error: Referenced column "Mixed Co" not found in FROM clause!',
            None,
            'did you mean "Mixed Col" (shop."Mixed Case Tbl")?',
        ),
        # a reserved word is quoted too
        ('relation "ordr" does not exist', "postgresql", 'did you mean shop."order"?'),
    ],
)
def test_every_dialect_writes_its_suggestions_with_the_schema_renderers_quoting(
    error: str, dialect: str | None, expected: str
) -> None:
    tables = ["shop.Mixed Case Tbl", "shop.Orders"] if dialect is None else ["shop.order"]
    columns = {"shop.Mixed Case Tbl": ["id", "Mixed Col"], "shop.Orders": ["id"]}
    assert suggest_names(error, tables, columns, dialect=dialect) == expected


def test_a_name_with_control_characters_is_suggested_escaped_once() -> None:
    hint = suggest_names("no such column: evil_col", ["t"], {"t": ["evil\x1bcol"]})
    assert hint == 'did you mean "evil\\x1bcol" (t)?'
    pg = suggest_names('column "evil_col" does not exist', ["s.t"], {"s.t": ["evil\x1bcol"]})
    assert pg == 'did you mean U&"evil\\001Bcol" (s.t)?'


# --- ClickHouse (audit S14) -----------------------------------------------------------------------------------

CH_TABLES = ["analytics.events", "analytics.users", "analytics.Mixed Case"]
CH_COLUMNS = {"analytics.events": ["event_type", "user_id"], "analytics.users": ["email"]}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "Code: 60. DB::Exception: Unknown table expression identifier 'evnts'. Maybe you meant analytics.events?"
            " In scope SELECT * FROM evnts. (UNKNOWN_TABLE)",
            "did you mean analytics.events?",
        ),
        (
            "Code: 60. DB::Exception: Table analytics.evnts does not exist. (UNKNOWN_TABLE)",
            "did you mean analytics.events?",
        ),
        (
            "Code: 60. DB::Exception: Unknown table expression identifier 'analytics.Mixed Cas'. (UNKNOWN_TABLE)",
            'did you mean analytics."Mixed Case"?',
        ),
        (
            "Code: 47. DB::Exception: Unknown expression identifier `evnt_type`. Maybe you meant: ['…']. In scope"
            " SELECT evnt_type FROM analytics.events. (UNKNOWN_IDENTIFIER)",
            "did you mean event_type (analytics.events)?",
        ),
        (
            "Code: 47. DB::Exception: Identifier 'e.evnt_type' cannot be resolved from table with name e (an alias"
            " of events). In scope SELECT e.evnt_type FROM analytics.events AS e. (UNKNOWN_IDENTIFIER)",
            "did you mean event_type (analytics.events)?",
        ),
        (
            "Code: 47. DB::Exception: Missing columns: 'evnt_type' while processing query",
            "did you mean event_type (analytics.events)?",
        ),
        ("Code: 47. DB::Exception: Unknown expression identifier `…`. (UNKNOWN_IDENTIFIER)", None),
    ],
)
def test_clickhouse_unknown_tables_and_columns_get_a_suggestion_from_the_snapshot(
    error: str, expected: str | None
) -> None:
    referenced = ["analytics.events"]
    assert suggest_names(error, CH_TABLES, CH_COLUMNS, referenced_tables=referenced) == expected
