"""The keyword ranking (the degraded path when Milvus or the model is unavailable)."""

from __future__ import annotations

from dbmeta_app.schema.models import Snapshot, Table
from dbmeta_app.search.keyword import KeywordIndex
from tests.search._snapshots import col, fk


def _shop() -> Snapshot:
    # every table but one refers to a customer: "customer" is a common word among columns, rare among names
    tables = [
        Table("s", "customers", columns=(col("id", "BIGINT", pk=True), col("company_name"), col("segment"))),
        Table("s", "warehouses", columns=(col("id", "BIGINT", pk=True), col("city"))),
        Table(
            "s",
            "stock_levels",
            columns=(col("warehouse_id", "BIGINT"), col("quantity_on_hand", "INT"), col("last_counted_at")),
            foreign_keys=(fk("warehouse_id", "s.warehouses"),),
        ),
    ]
    for name, extra in (("orders", "order_date"), ("invoices", "due_date"), ("tickets", "priority")):
        tables.append(
            Table(
                "s",
                name,
                columns=(col("id", "BIGINT", pk=True), col("customer_id", "BIGINT"), col(extra)),
                foreign_keys=(fk("customer_id", "s.customers"),),
            )
        )
    return Snapshot.build("p", "postgresql", tables)


def test_a_word_that_names_a_table_outranks_a_rarer_word_in_a_column_name() -> None:
    # "counted" is in one column only (a high IDF); "customers" names one table but is in most tables' columns
    index = KeywordIndex.build(_shop())
    hits = index.search("which customers were counted", 3)
    assert hits[0].name == "s.customers", [h.name for h in hits]
    scores = index.scores("which customers were counted")
    assert scores["s.customers"] > scores["s.stock_levels"]


def test_the_column_words_still_rank_the_tables_no_name_matches() -> None:
    index = KeywordIndex.build(_shop())
    assert index.search("quantity on hand per warehouse", 2)[0].name == "s.stock_levels"
    assert index.search("tickets by priority", 1)[0].name == "s.tickets"


def test_a_relative_period_does_not_match_a_column_named_last_something() -> None:
    index = KeywordIndex.build(_shop())
    assert index.scores("which customers churned last quarter").get("s.stock_levels", 0.0) == 0.0
    assert index.search("when was stock last counted", 1)[0].name == "s.stock_levels"
