"""Documents: identifier splitting, lexical terms, content hashes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dbmeta_app.search.documents import (
    KIND_COLUMN,
    KIND_SCHEMA,
    KIND_TABLE,
    build_groups,
    lexical_query,
    split_identifier,
    table_group,
    table_text,
    truncate_utf8,
)
from tests.search._snapshots import col, sqlite_shop, warehouse


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("order_items", ["order", "items"]),
        ("orderDate", ["order", "date"]),
        ("HTTPServerLog", ["http", "server", "log"]),
        ("CustomerID", ["customer", "id"]),
        ("transactions_1k", ["transactions", "1k"]),
        ("Percent (%) Eligible Free (K-12)", ["percent", "eligible", "free", "k", "12"]),
        ("T-BIL", ["t", "bil"]),
        ("mtgjsonv4Id", ["mtgjsonv", "4", "id"]),
        ("Straße_Größe", ["straße", "größe"]),
        ("school", ["school"]),
    ],
)
def test_split_identifier_handles_snake_camel_abbreviations_and_punctuation(
    name: str, words: list[str]
) -> None:
    assert split_identifier(name) == words


def test_lexical_query_drops_stop_words_and_folds_plurals() -> None:
    assert lexical_query("List the names of all the Customers who placed orders") == (
        "name customer placed order"
    )


@pytest.mark.parametrize(
    ("request_text", "terms"),
    [
        ("which customers churned last quarter", "customer churned quarter"),
        ("orders in the past 7 days", "order day"),
        ("payroll over the previous two years", "payroll year"),
        ("Last Month revenue", "month revenue"),
        # a "last" that is no relative period is a word like any other
        ("last_name of employees", "last name employee"),
        ("customers whose last order was in march", "customer last order march"),
    ],
)
def test_a_relative_period_is_a_date_filter_not_a_name(request_text: str, terms: str) -> None:
    # "churned last quarter" must not match last_counted_at / last_name lexically
    assert lexical_query(request_text) == terms


def test_table_text_reads_as_words_with_comments_and_fk_targets() -> None:
    text = table_text(warehouse().tables["shop.order_items"])
    assert text.startswith("order items (shop). Columns: order id, product id, qty (quantity ordered)")
    assert text.endswith("References: orders, products")


def test_content_hash_is_stable_for_the_same_table_and_model() -> None:
    table = warehouse().tables["shop.orders"]
    assert table_group(table, "m").content_hash == table_group(table, "m").content_hash


def test_content_hash_changes_with_a_column_a_comment_or_the_model() -> None:
    table = warehouse().tables["shop.orders"]
    base = table_group(table, "m").content_hash
    added = replace(table, columns=(*table.columns, col("status")))
    commented = replace(table, comment="one row per order")
    assert table_group(added, "m").content_hash != base
    assert table_group(commented, "m").content_hash != base
    assert table_group(table, "other-model").content_hash != base


def test_a_changed_table_leaves_the_other_tables_hashes_alone() -> None:
    snap = warehouse()
    before = {g.key: g.content_hash for g in build_groups(snap, "m") if g.kind == KIND_TABLE}
    tables = dict(snap.tables)
    tables["hr.employees"] = replace(tables["hr.employees"], comment="staff")
    after = {
        g.key: g.content_hash for g in build_groups(replace(snap, tables=tables), "m") if g.kind == KIND_TABLE
    }
    assert {k for k in before if before[k] != after[k]} == {"hr.employees"}


def test_groups_hold_a_table_row_and_one_row_per_column() -> None:
    group = table_group(warehouse().tables["hr.employees"], "m")
    assert [d.kind for d in group.documents] == [KIND_TABLE] + [KIND_COLUMN] * 4
    assert len({d.id for d in group.documents}) == 5
    assert all(len(d.id) <= 64 for d in group.documents)


def test_schema_documents_exist_only_with_several_schemas() -> None:
    assert sorted(g.key for g in build_groups(warehouse(), "m") if g.kind == KIND_SCHEMA) == [
        "hr",
        "school",
        "shop",
    ]
    assert not [g for g in build_groups(sqlite_shop(), "m") if g.kind == KIND_SCHEMA]


def test_truncate_utf8_never_splits_a_character() -> None:
    assert truncate_utf8("ééé", 3) == "é"
