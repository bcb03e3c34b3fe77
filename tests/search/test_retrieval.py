"""Ranking: fusion, schema coherence, FK neighbours and bridge tables."""

from __future__ import annotations

from dbmeta_app.schema.models import Snapshot, Table
from dbmeta_app.search.retrieval import (
    RetrievalWeights,
    SchemaGraph,
    Signals,
    expand_with_bridges,
    fuse,
    rank,
    select_tables,
)
from tests.search._snapshots import col, sqlite_shop, warehouse


def test_graph_links_fk_neighbours_both_ways() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    assert graph.neighbours["shop.order_items"] == {"shop.orders", "shop.products"}
    assert "shop.order_items" in graph.neighbours["shop.products"]
    assert graph.schema_of["hr.departments"] == "hr"


def test_schema_coherence_prefers_the_top_schemas_weaker_tables() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    # hr.departments matches a little better alone, but the request clearly lives in the shop.
    signals = Signals(
        tables={"shop.orders": 0.8, "shop.customers": 0.6, "shop.products": 0.3, "hr.departments": 0.35},
        schemas={"shop": 0.7, "hr": 0.2},
    )
    ranked = [name for name, _ in rank(fuse(signals, graph))]
    assert ranked.index("shop.products") < ranked.index("hr.departments")


def test_fuse_adds_the_best_column_and_ignores_keys_missing_from_the_snapshot() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    signals = Signals(tables={"shop.orders": 0.5, "shop.gone": 0.9}, columns={"school.students": 0.9})
    scores = fuse(signals, graph, RetrievalWeights(neighbour=0.0, schema=0.0))
    assert "shop.gone" not in scores
    assert scores["school.students"] == 0.45
    assert scores["shop.orders"] == 0.25


def test_bridge_table_joining_two_top_tables_is_added_within_the_budget() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    ranked = [("shop.orders", 0.9), ("shop.products", 0.8), ("hr.employees", 0.3), ("school.courses", 0.2)]
    out = expand_with_bridges(ranked, graph, top_k=3)
    names = [name for name, _ in out]
    assert names == ["shop.orders", "shop.products", "shop.order_items"]
    assert dict(out)["shop.order_items"] == 0.8


def test_bridges_never_push_out_the_core_and_respect_the_budget() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    ranked = [("shop.orders", 0.9), ("shop.products", 0.8)]
    assert [n for n, _ in expand_with_bridges(ranked, graph, top_k=2)] == ["shop.orders", "shop.products"]
    for k in range(0, 6):
        assert len(expand_with_bridges(ranked, graph, top_k=k)) <= k


def test_no_bridge_when_the_top_tables_already_join_directly() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    ranked = [("shop.orders", 0.9), ("shop.customers", 0.8), ("hr.employees", 0.3)]
    assert [n for n, _ in expand_with_bridges(ranked, graph, top_k=3)] == [
        "shop.orders",
        "shop.customers",
        "hr.employees",
    ]


def test_names_are_exactly_the_snapshot_keys_including_bare_sqlite_names() -> None:
    snap = sqlite_shop()
    graph = SchemaGraph.from_snapshot(snap)
    signals = Signals(tables={"Orders": 0.9, "Products": 0.85, "Customers": 0.1})
    out = select_tables(signals, graph, top_k=3)
    assert [n for n, _ in out] == ["Orders", "Products", "Order Lines"]
    assert {n for n, _ in out} <= set(snap.tables)


def test_scores_come_back_best_first() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    signals = Signals(tables={"shop.orders": 0.4, "hr.employees": 0.9, "school.courses": 0.1})
    scores = [s for _, s in select_tables(signals, graph, top_k=5)]
    assert scores == sorted(scores, reverse=True)


def test_a_table_missing_from_a_cut_column_list_counts_the_lists_lowest_score_not_zero() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    # The column list holds the warehouse's best columns; shop.customers had none among them, so its
    # best column scores at most 0.4 — ranking it as if it had no matching column at all is wrong.
    signals = Signals(
        tables={"shop.orders": 0.5, "shop.customers": 0.5}, columns={"shop.orders": 0.6}, column_floor=0.4
    )
    scores = fuse(signals, graph, RetrievalWeights(neighbour=0.0, schema=0.0))
    assert scores["shop.customers"] == 0.25 + 0.2
    assert scores["shop.orders"] == 0.25 + 0.3
    uncut = fuse(
        Signals(tables=signals.tables, columns=signals.columns),
        graph,
        RetrievalWeights(neighbour=0.0, schema=0.0),
    )
    assert uncut["shop.customers"] == 0.25


def test_a_schema_with_two_good_tables_beats_one_with_a_single_slightly_better_table() -> None:
    graph = SchemaGraph.from_snapshot(warehouse())
    # A request needs several tables: hr has one table that matches a little better than any of the
    # shop's, but the shop has two that match well.
    signals = Signals(
        tables={"shop.orders": 0.8, "shop.customers": 0.7, "hr.employees": 0.85, "hr.departments": 0.1}
    )
    ranked = [name for name, _ in rank(fuse(signals, graph, RetrievalWeights(neighbour=0.0)))]
    assert ranked.index("shop.customers") < ranked.index("hr.employees")
    # a schema of one table is scored by that table alone (not halved)
    alone = Signals(tables={"school.courses": 0.6})
    assert fuse(alone, graph, RetrievalWeights(neighbour=0.0))["school.courses"] == 0.3 + 0.3


def _two_schemas() -> Snapshot:
    """Ten fact tables in one schema, and a schema of two with the population figures."""
    facts = [
        Table("facts", f"t{i}", columns=(col("state"), col(f"measure_{i}", "INTEGER"))) for i in range(10)
    ]
    census = [Table("census", "population", columns=(col("state"), col("people", "INTEGER")))]
    census.append(Table("census", "area", columns=(col("zip"), col("sq_km", "INTEGER"))))
    return Snapshot.build("two", "postgresql", facts + census)


def test_a_strong_table_of_a_second_schema_is_not_crowded_out_by_the_first_schemas_weak_tables() -> None:
    # "accidents per 100,000 people, by state": the fact tables and the census table.
    graph = SchemaGraph.from_snapshot(_two_schemas(), inferred=False)
    signals = Signals(
        tables={**{f"facts.t{i}": 0.9 - 0.05 * i for i in range(10)}, "census.population": 0.85},
        schemas={"facts": 0.8, "census": 0.3},
    )
    weights = RetrievalWeights(neighbour=0.0)
    top = [name for name, _ in select_tables(signals, graph, 10, weights)]
    assert "census.population" in top
    assert top[:2] == ["facts.t0", "facts.t1"]  # the schema's best tables keep its full score
    # with no decay, the first schema fills the whole top 10
    flat = [
        name
        for name, _ in select_tables(signals, graph, 10, RetrievalWeights(neighbour=0.0, schema_decay=1.0))
    ]
    assert "census.population" not in flat


def test_within_one_schema_the_decay_keeps_the_order() -> None:
    snapshot = _two_schemas()
    graph = SchemaGraph.from_snapshot(snapshot, inferred=False)
    signals = Signals(
        tables={f"facts.t{i}": (37 * i % 11) / 11 for i in range(10)},
        columns={f"facts.t{i}": (53 * i % 7) / 7 for i in range(10)},
        schemas={"facts": 0.4},
    )
    decayed = [name for name, _ in rank(fuse(signals, graph))]
    flat = [name for name, _ in rank(fuse(signals, graph, RetrievalWeights(schema_decay=1.0)))]
    assert decayed == flat
    assert len(decayed) == 10
