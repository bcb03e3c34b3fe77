"""Curated descriptions: what they hide is not named anywhere else in the schema either."""

from __future__ import annotations

from dbmeta_app.schema.descriptions import Descriptions, apply_descriptions
from dbmeta_app.schema.models import Column, ForeignKey, Snapshot, Table
from dbmeta_app.schema.render import render_schema


def _tables() -> list[Table]:
    customers = Table(
        "sales",
        "customers",
        columns=(Column("id", "integer", primary_key=True), Column("ssn", "text")),
        primary_key=("id",),
    )
    orders = Table(
        "sales",
        "orders",
        columns=(
            Column("id", "integer", primary_key=True),
            Column("customer_id", "integer"),
            Column("customer_ssn", "text"),
        ),
        primary_key=("id",),
        foreign_keys=(
            ForeignKey(("customer_id",), "sales.customers", ("id",)),
            ForeignKey(("customer_ssn",), "sales.customers", ("ssn",)),
        ),
    )
    return [customers, orders]


def _text(desc: dict[str, object]) -> str:
    tables = apply_descriptions(_tables(), Descriptions.model_validate(desc))
    snap = Snapshot.build("p", "postgresql", tables)
    return render_schema(snap, list(snap.tables))


def test_a_hidden_table_is_not_named_by_the_foreign_keys_pointing_at_it() -> None:
    text = _text({"tables": {"sales.customers": {"hidden": True}}})
    assert "customers" not in text.replace("customer_id", "").replace("customer_ssn", "")
    assert "customer_id integer" in text  # the column stays, without its arrow


def test_a_table_left_out_of_a_whitelist_is_not_named_either() -> None:
    text = _text({"whitelist": True, "tables": {"sales.orders": "Orders"}})
    assert "→" not in text and "sales.orders" in text


def test_a_hidden_column_is_not_named_by_a_foreign_key_of_another_table() -> None:
    text = _text({"tables": {"sales.customers": {"columns": {"ssn": {"hidden": True}}}}})
    assert "ssn" not in text.replace("customer_ssn", "")
    assert "customer_id integer → sales.customers.id" in text
