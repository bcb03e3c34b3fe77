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
    assert suggest_names('relation "ordrs" does not exist', TABLES, COLUMNS) == 'did you mean "sales.orders"?'


def test_table_in_the_wrong_schema_suggests_the_right_one() -> None:
    hint = suggest_names("Table 'public.customers' doesn't exist", TABLES, COLUMNS)
    assert hint == 'did you mean "sales.customers"?'


def test_table_match_is_case_insensitive() -> None:
    assert suggest_names("no such table: EMPLOYES", TABLES, COLUMNS) == 'did you mean "hr.employees"?'


def test_equally_close_tables_in_several_schemas_are_all_offered() -> None:
    hint = suggest_names('relation "custmers" does not exist', [*TABLES, "crm.customers"], COLUMNS)
    assert hint == 'did you mean "crm.customers" or "sales.customers"?'


def test_only_names_nearly_as_close_as_the_best_are_offered() -> None:
    # "order_items" also clears the cut-off, but is much further than "orders".
    assert suggest_names('relation "ordrs" does not exist', TABLES, COLUMNS) == 'did you mean "sales.orders"?'


def test_column_is_looked_up_in_the_referenced_tables_first() -> None:
    hint = suggest_names(
        "Unknown column 'o.nme' in 'field list'", TABLES, COLUMNS, referenced_tables=["sales.customers"]
    )
    assert hint == 'did you mean "name" (sales.customers)?'


def test_column_falls_back_to_every_table_when_the_referenced_ones_have_no_match() -> None:
    hint = suggest_names('column "salary_" does not exist', TABLES, COLUMNS, referenced_tables=["orders"])
    assert hint == 'did you mean "salary" (hr.employees)?'


def test_nothing_close_gives_no_hint() -> None:
    assert suggest_names('relation "zzz" does not exist', TABLES, COLUMNS) is None
    assert suggest_names("permission denied for table orders", TABLES, COLUMNS) is None
