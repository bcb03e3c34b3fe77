"""PostgreSQL partitions and inheritance children are one logical table: the parent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.schema import introspect


@pytest.fixture
def schema(pg_url: str, unique: str) -> Iterator[tuple[sa.Engine, str]]:
    name = f"i18a_fam_{unique}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        for stmt in (
            f"CREATE SCHEMA {name}",
            f"CREATE TABLE {name}.measurements (id int, taken date) PARTITION BY RANGE (taken)",
            f"CREATE TABLE {name}.measurements_2023 PARTITION OF {name}.measurements"
            " FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
            f"CREATE TABLE {name}.cities (name text, population int)",
            f"CREATE TABLE {name}.capitals (country text) INHERITS ({name}.cities)",
            f"CREATE TABLE {name}.plain (id int)",
        ):
            conn.exec_driver_sql(stmt)
    try:
        yield engine, name
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        engine.dispose()


@pytest.mark.integration
def test_children_are_folded_into_their_parent(schema: tuple[sa.Engine, str]) -> None:
    engine, name = schema
    snapshot = introspect(engine, "p", include_schemas=(name,))
    assert set(snapshot.tables) == {f"{name}.measurements", f"{name}.cities", f"{name}.plain"}
    assert [c.name for c in snapshot.tables[f"{name}.cities"].columns] == ["name", "population"]


@pytest.mark.integration
def test_a_foreign_key_to_a_partitioned_table_names_the_parent_once(pg_url: str, unique: str) -> None:
    """PostgreSQL clones a foreign key to a partitioned table for each partition: one reference is shown."""
    name = f"i18a_fkp_{unique}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        conn.exec_driver_sql(
            f"CREATE TABLE {name}.orders (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)"
        )
        for month in range(1, 4):
            conn.exec_driver_sql(
                f"CREATE TABLE {name}.orders_{month} PARTITION OF {name}.orders"
                f" FOR VALUES FROM ('2024-0{month}-01') TO ('2024-0{month + 1}-01')"
            )
        conn.exec_driver_sql(
            f"CREATE TABLE {name}.items (order_id int, order_day date, qty int,"
            f" FOREIGN KEY (order_id, order_day) REFERENCES {name}.orders (id, day))"
        )
    try:
        snapshot = introspect(engine, "p", include_schemas=(name,))
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        engine.dispose()
    keys = snapshot.tables[f"{name}.items"].foreign_keys
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in keys] == [
        (("order_id", "order_day"), f"{name}.orders", ("id", "day"))
    ]
