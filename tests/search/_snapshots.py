"""Small hand-built snapshots shared by the search tests."""

from __future__ import annotations

from dbmeta_app.schema.models import Column, ForeignKey, Snapshot, Table


def col(name: str, type_: str = "TEXT", comment: str | None = None, pk: bool = False) -> Column:
    return Column(name=name, type=type_, primary_key=pk, comment=comment)


def fk(column: str, ref_table: str, ref_column: str = "id") -> ForeignKey:
    return ForeignKey(columns=(column,), ref_table=ref_table, ref_columns=(ref_column,))


def warehouse() -> Snapshot:
    """Three schemas: a shop (orders join products through order_items), HR and a school."""
    tables = [
        Table(
            "shop",
            "customers",
            columns=(col("id", "BIGINT", pk=True), col("full_name"), col("email")),
            primary_key=("id",),
        ),
        Table(
            "shop",
            "products",
            columns=(col("id", "BIGINT", pk=True), col("product_name"), col("unit_price", "NUMERIC")),
            primary_key=("id",),
        ),
        Table(
            "shop",
            "orders",
            columns=(col("id", "BIGINT", pk=True), col("customer_id", "BIGINT"), col("orderDate", "DATE")),
            primary_key=("id",),
            foreign_keys=(fk("customer_id", "shop.customers"),),
        ),
        Table(
            "shop",
            "order_items",
            columns=(
                col("order_id", "BIGINT"),
                col("product_id", "BIGINT"),
                col("qty", "INTEGER", comment="quantity ordered"),
            ),
            foreign_keys=(fk("order_id", "shop.orders"), fk("product_id", "shop.products")),
        ),
        Table(
            "hr",
            "employees",
            columns=(
                col("id", "BIGINT", pk=True),
                col("first_name"),
                col("salary", "NUMERIC"),
                col("dept_id", "BIGINT"),
            ),
            primary_key=("id",),
            foreign_keys=(fk("dept_id", "hr.departments"),),
        ),
        Table(
            "hr", "departments", columns=(col("id", "BIGINT", pk=True), col("dept_name")), primary_key=("id",)
        ),
        Table(
            "school",
            "students",
            columns=(
                col("id", "BIGINT", pk=True),
                col("student_name"),
                col("GPA", "REAL", comment="grade point average"),
            ),
            primary_key=("id",),
        ),
        Table(
            "school",
            "courses",
            columns=(col("id", "BIGINT", pk=True), col("course_title"), col("credits", "INTEGER")),
            primary_key=("id",),
        ),
    ]
    return Snapshot.build("test", "postgresql", tables)


def sqlite_shop() -> Snapshot:
    """A single-schema database whose table keys are bare names (SQLite's main schema)."""
    tables = [
        Table(None, "Customers", columns=(col("id", pk=True), col("name"))),
        Table(
            None,
            "Order Lines",
            columns=(col("order_id"), col("product_id")),
            foreign_keys=(fk("order_id", "Orders"), fk("product_id", "Products")),
        ),
        Table(
            None,
            "Orders",
            columns=(col("id", pk=True), col("customer_id")),
            foreign_keys=(fk("customer_id", "Customers"),),
        ),
        Table(None, "Products", columns=(col("id", pk=True), col("title"))),
    ]
    return Snapshot.build("lite", "sqlite", tables)
