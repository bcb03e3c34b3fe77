"""ClickHouse introspection on chDB: every type family, comments, keys, views, materialized views, dictionaries,
fingerprint drift, sample rows, and how the layout is rendered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.schema import Snapshot, introspect, schema_fingerprint
from dbmeta_app.schema.models import Layout, Table
from dbmeta_app.schema.render import render_schema, render_table
from dbmeta_app.schema.samples import SAMPLE_VALUE_MAX, sample_rows

pytestmark = pytest.mark.integration

SCRATCH = "i17a_ch_schema"


@pytest.fixture(scope="module")
def engine(chdb_url: str) -> Iterator[Engine]:
    eng = sa.create_engine(chdb_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def snapshot(engine: Engine) -> Snapshot:
    return introspect(engine, "ch", include_schemas=("analytics",))


@pytest.fixture
def scratch(engine: Engine) -> Iterator[Engine]:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {SCRATCH}")
        conn.exec_driver_sql(f"CREATE DATABASE {SCRATCH}")
    yield engine
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {SCRATCH}")


def _types(table: Table) -> dict[str, str]:
    return {c.name: c.type for c in table.columns}


def test_every_table_view_mv_and_dictionary_of_the_sample_is_read_without_inner_tables(
    snapshot: Snapshot,
) -> None:
    kinds = {key: t.kind for key, t in snapshot.tables.items()}
    assert kinds["analytics.events"] == "table"
    assert kinds["analytics.v_user_lifetime_value"] == "view"
    assert kinds["analytics.mv_daily_revenue"] == "materialized_view"
    assert kinds["analytics.mv_events_hourly"] == "materialized_view"
    assert kinds["analytics.product_names"] == "dictionary"
    assert not [k for k in kinds if ".inner" in k]
    assert snapshot.dialect == "chdb" and len(snapshot.tables) == 14


def test_types_keep_lowcardinality_nullable_array_map_tuple_enum_and_flatten_nested(
    snapshot: Snapshot,
) -> None:
    users = _types(snapshot.tables["analytics.users"])
    assert users["country"] == "LowCardinality(String)"
    assert users["email"] == "Nullable(String)"
    assert users["traits"] == "Map(String, String)"
    assert users["tags"] == "Array(LowCardinality(String))"
    assert users["plan"].startswith("Enum8('free' = 1")
    sessions = _types(snapshot.tables["analytics.sessions"])
    assert sessions["device"].startswith("Tuple(type LowCardinality(String), os ")
    assert sessions["utm.source"] == "Array(LowCardinality(String))"  # Nested, as queries name it
    nullable = {c.name: c.nullable for c in snapshot.tables["analytics.users"].columns}
    assert nullable["email"] is True and nullable["user_id"] is False


def test_table_and_column_comments_are_read(snapshot: Snapshot) -> None:
    users = snapshot.tables["analytics.users"]
    assert users.comment == "Registered user accounts, one row per account"
    assert {c.name: c.comment for c in users.columns}["user_id"] == "Surrogate key of the user account"


def test_layout_has_engine_and_sorting_primary_partition_sampling_keys(snapshot: Snapshot) -> None:
    events = snapshot.tables["analytics.events"].layout
    assert events is not None
    assert events.engine == "MergeTree"
    assert events.sorting_key == "event_type, toDate(event_time), intHash32(user_id)"
    assert events.partition_key == "toYYYYMM(event_time)" and events.sampling_key == "intHash32(user_id)"
    assert events.primary_key is None  # the same as the sorting key
    page_views = snapshot.tables["analytics.page_views"].layout
    assert page_views is not None and page_views.primary_key == "session_id"
    assert snapshot.tables["analytics.products"].layout.engine == "ReplacingMergeTree"  # type: ignore[union-attr]
    # ClickHouse's primary key is not unique and it has no foreign keys: neither is claimed
    assert all(not t.primary_key and not t.foreign_keys for t in snapshot.tables.values())


def test_materialized_views_name_their_target(snapshot: Snapshot) -> None:
    assert snapshot.tables["analytics.mv_daily_revenue"].layout.target == "analytics.daily_revenue"  # type: ignore[union-attr]
    assert snapshot.tables["analytics.mv_events_hourly"].layout.target is None  # type: ignore[union-attr]


def test_render_shows_keys_once_per_table_says_no_foreign_keys_and_no_not_null_noise(
    snapshot: Snapshot,
) -> None:
    text = render_table(snapshot.tables["analytics.events"], snapshot)
    lines = text.splitlines()
    assert lines[1] == (
        "engine MergeTree; ORDER BY (event_type, toDate(event_time), intHash32(user_id)); "
        "PARTITION BY toYYYYMM(event_time); SAMPLE BY intHash32(user_id); no foreign keys declared"
    )
    assert "NOT NULL" not in text
    full = render_schema(snapshot)
    assert "materialized view: writes to analytics.daily_revenue" in full
    assert "read with dictGet('analytics.product_names', 'column', key)" in full
    assert "\nutm.source Array(LowCardinality(String))" in full  # a Nested field, written as in SQL


def test_snapshot_with_layout_round_trips_through_json_and_old_snapshots_still_load(
    snapshot: Snapshot,
) -> None:
    again = Snapshot.from_json(snapshot.to_json())
    assert again == snapshot
    old = {"profile": "p", "dialect": "sqlite", "tables": [{"schema": None, "name": "t", "columns": []}]}
    assert Snapshot.from_json(old).tables["t"].layout is None
    assert "layout" not in Table(schema=None, name="t").to_json()
    assert Layout.from_json(Layout(engine="Log").to_json()) == Layout(engine="Log")


def test_database_filter_includes_and_excludes(engine: Engine, scratch: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {SCRATCH}.t (a UInt8) ENGINE = Memory")
    everything = introspect(engine, "ch")
    assert f"{SCRATCH}.t" in everything.tables and "analytics.users" in everything.tables
    assert not [
        k
        for k in everything.tables
        if k.startswith(("system.", "INFORMATION_SCHEMA.", "information_schema."))
    ]
    without = introspect(engine, "ch", exclude_schemas=("analytics",))
    assert f"{SCRATCH}.t" in without.tables and "analytics.users" not in without.tables


def test_fingerprint_changes_on_new_column_changed_comment_and_new_table(scratch: Engine) -> None:
    engine = scratch
    only = (SCRATCH,)
    with engine.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {SCRATCH}.t (a UInt8 COMMENT 'first') ENGINE = MergeTree ORDER BY a"
        )
    seen = [schema_fingerprint(engine, only)]
    assert seen[0] == schema_fingerprint(engine, only)  # stable while nothing changes
    for ddl in (
        f"ALTER TABLE {SCRATCH}.t ADD COLUMN b String",
        f"ALTER TABLE {SCRATCH}.t COMMENT COLUMN a 'second'",
        f"ALTER TABLE {SCRATCH}.t MODIFY COMMENT 'a table comment'",
        f"CREATE TABLE {SCRATCH}.u (x UInt8) ENGINE = Memory",
    ):
        with engine.connect() as conn:
            conn.exec_driver_sql(ddl)
        seen.append(schema_fingerprint(engine, only))
    assert len(set(seen)) == len(seen), seen
    # another database's change is outside the filter
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS default.i17a_other (x UInt8) ENGINE = Memory")
    assert schema_fingerprint(engine, only) == seen[-1]
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP TABLE default.i17a_other")


def test_sample_rows_read_local_tables_with_values_cut_and_skip_views_dictionaries_and_remote_engines(
    engine: Engine, scratch: Engine
) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {SCRATCH}.long (s String) ENGINE = Memory")
        conn.exec_driver_sql(f"INSERT INTO {SCRATCH}.long VALUES ('{'x' * 500}')")
        # a table whose reads go to a URL: its rows must never be read
        conn.exec_driver_sql(
            f"CREATE TABLE {SCRATCH}.remote (s String) ENGINE = URL('http://127.0.0.1:9/never.csv', CSV)"
        )
    snap = introspect(engine, "ch", include_schemas=("analytics", SCRATCH))
    rows = sample_rows(engine, snap.tables.values(), 2)
    assert len(rows["analytics.users"]) == 2
    assert len(rows[f"{SCRATCH}.long"][0][0] or "") <= SAMPLE_VALUE_MAX
    for key in (f"{SCRATCH}.remote", "analytics.product_names", "analytics.v_user_lifetime_value"):
        assert key not in rows
    assert "analytics.mv_events_hourly" not in rows


def test_introspection_reads_the_catalog_in_a_fixed_number_of_queries(
    engine: Engine, scratch: Engine
) -> None:
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        introspect(engine, "ch", include_schemas=("analytics",))
        few = len(statements)
        with engine.connect() as conn:
            for i in range(20):
                conn.exec_driver_sql(f"CREATE TABLE {SCRATCH}.t{i} (a UInt8) ENGINE = Memory")
        statements.clear()
        introspect(engine, "ch", include_schemas=("analytics", SCRATCH))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == few == 1  # the schema and its fingerprint in one query


def test_the_snapshot_fingerprint_is_what_the_drift_check_reads(engine: Engine, snapshot: Snapshot) -> None:
    assert snapshot.fingerprint and snapshot.fingerprint == schema_fingerprint(engine, ("analytics",))


def test_the_bundled_sample_loads_once(engine: Engine, chdb_url: str) -> None:
    from dbmeta_app.db.engines import materialize_clickhouse_sample

    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT count() FROM analytics.events").scalar()
    materialize_clickhouse_sample(chdb_url)  # already there: nothing is loaded again
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count() FROM analytics.events").scalar() == before == 30_000
        assert (
            conn.exec_driver_sql("SELECT count() FROM system.tables WHERE database = 'analytics'").scalar()
            == 15
        )
