"""Ranking of candidate tables: score fusion, schema coherence, FK expansion. Pure, no I/O.

Signals (all in [0, 1], higher is better) come from the index:
- the table document (hybrid dense + BM25),
- the table's best-matching column (dense),
- the schema document (hybrid), when the snapshot has several schemas.

Two structural priors are generic to relational requests:
- join coherence: a request's tables are joined, so a table next to a strong table (one FK
  away) is more likely to matter;
- schema coherence: a request's tables usually share a schema, so every table gets its
  schema's score (the mean of its two best tables, plus the schema document: one strong table
  alone makes a weaker case than two good ones); in a single-schema database this adds the same
  amount to every table and changes nothing.
Tables are neighbours along declared FKs, inferred references and links (the same key column
``id_rssd`` in two tables, name siblings ``x_entities`` / ``x_timeseries``; ``search/joins.py``).
Finally, bridge tables that a join between two top tables needs are pulled into the budget,
and the tables the strongest tables reference (declared or inferred keys, ``search/joins.py``),
or that several selected tables reference, complete the set: a request that reaches
``condition_occurrence`` needs ``concept`` and ``person``.
Only references are followed (a table's own key columns), never the tables that reference a
hub, so a hub cannot flood the top k.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from dbmeta_app.schema.models import Snapshot
from dbmeta_app.search.joins import inferred_references, shared_key_links


@dataclass(frozen=True, slots=True)
class RetrievalWeights:
    """The few generic weights of the fusion (tuned once, not per dataset)."""

    table: float = 0.5  # table document, hybrid score
    column: float = 0.5  # best column, cosine
    neighbour: float = 0.15  # best FK neighbour's score
    schema: float = 1.0  # schema score added to each of its tables
    schema_tables: int = 2  # a schema's score: the mean of its best this-many tables
    schema_document: float = 0.5  # schema document's share of the schema score
    schema_decay: float = 0.9  # the schema score's factor for each table past its best schema_tables
    bridge_core: float = 0.5  # share of top_k whose pairwise joins get bridge tables
    inferred_joins: bool = True  # join keys inferred from column names are edges too
    completion_core: int = 3  # the tables whose references complete the set
    completion_share: float = 0.3  # at most this share of top_k is given to completion
    dated_reach: int = 3  # a family the request's dates name is placed when it ranks within this many × top_k


@dataclass(frozen=True, slots=True)
class Signals:
    """Per-key scores from the index: tables and columns keyed by table, schemas by schema."""

    tables: Mapping[str, float] = field(default_factory=dict)
    columns: Mapping[str, float] = field(default_factory=dict)
    schemas: Mapping[str, float] = field(default_factory=dict)
    # The column list is the top of all columns, not of each table: when it was cut short, a table
    # absent from it has a best column of at most the list's lowest score (not of nothing).
    column_floor: float = 0.0


@dataclass(frozen=True, slots=True)
class SchemaGraph:
    """The structure ranking needs: each table's schema and its FK neighbours (both ways)."""

    schema_of: Mapping[str, str]
    neighbours: Mapping[str, frozenset[str]]
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # directed, sorted

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, *, inferred: bool = True) -> SchemaGraph:
        """Collect schemas, undirected adjacency and references (FKs, plus inferred join keys)."""
        refs: dict[str, set[str]] = {key: set() for key in snapshot.tables}
        for key, table in snapshot.tables.items():
            refs[key].update(fk.ref_table for fk in table.foreign_keys if fk.ref_table in refs)
        if inferred:
            for key, targets in inferred_references(snapshot).items():
                refs[key].update(targets)
        links: dict[str, set[str]] = {key: set() for key in snapshot.tables}
        for key, targets in refs.items():
            targets.discard(key)
            for target in targets:
                links[key].add(target)
                links[target].add(key)
        if inferred:
            for a, b in shared_key_links(snapshot):
                links[a].add(b)
                links[b].add(a)
        return cls(
            schema_of={key: table.schema or "" for key, table in snapshot.tables.items()},
            neighbours={key: frozenset(n) for key, n in links.items()},
            references={key: tuple(sorted(t)) for key, t in refs.items() if t},
        )


def fuse(signals: Signals, graph: SchemaGraph, weights: RetrievalWeights | None = None) -> dict[str, float]:
    """Combine the signals into one score per table known to the graph."""
    w = weights or RetrievalWeights()
    base: dict[str, float] = {}
    for key in signals.tables.keys() | signals.columns.keys():
        if key in graph.schema_of:  # a stale index may still hold dropped tables
            column = signals.columns.get(key, signals.column_floor)
            base[key] = w.table * signals.tables.get(key, 0.0) + w.column * column
    # Neighbours of candidates are candidates too: a bridge may match no word of the request.
    # Each candidate passes its score on to its neighbours (a table gets its best neighbour's).
    best_neighbour: dict[str, float] = {}
    for key, score in base.items():
        for n in graph.neighbours.get(key, ()):
            if n not in best_neighbour or score > best_neighbour[n]:
                best_neighbour[n] = score
    joined = {
        key: base.get(key, 0.0) + w.neighbour * best_neighbour.get(key, 0.0)
        for key in base.keys() | best_neighbour.keys()
    }
    per_schema: dict[str, list[tuple[float, str]]] = {}
    for key, score in joined.items():
        per_schema.setdefault(graph.schema_of[key], []).append((score, key))
    # A request needs several tables: a schema is as good as its best few (its only one, if alone).
    fused: dict[str, float] = {}
    for schema, members in per_schema.items():
        members.sort(key=lambda item: (-item[0], item[1]))
        best = [score for score, _ in members[: w.schema_tables]]
        schema_score = sum(best) / len(best) + w.schema_document * signals.schemas.get(schema, 0.0)
        for position, (score, key) in enumerate(members):
            past = max(0, position - w.schema_tables + 1)
            fused[key] = score + w.schema * schema_score * w.schema_decay**past
    return fused


def rank(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """Order tables best first; ties by name so results are deterministic."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def expand_with_bridges(
    ranked: Sequence[tuple[str, float]],
    graph: SchemaGraph,
    top_k: int,
    core_share: float = 0.5,
) -> list[tuple[str, float]]:
    """Keep top_k tables, making room for the bridge tables joins between core tables need.

    The core is the first ``ceil(top_k * core_share)`` tables (at least two). For each pair of
    core tables that are not FK neighbours and have no selected table in common, the best
    table adjacent to both is added with the weaker endpoint's score; it displaces the
    weakest non-core tables, so the core is never pushed out and the budget always holds.
    """
    if top_k <= 0:
        return []
    selected = list(ranked[:top_k])
    n_core = min(len(selected), max(2, math.ceil(top_k * core_share)))
    core = selected[:n_core]
    room = top_k - n_core
    scores = dict(ranked)
    chosen = {key for key, _ in core}
    bridges: list[tuple[str, float]] = []
    for i, (a, score_a) in enumerate(core):
        for b, score_b in core[i + 1 :]:
            if len(bridges) >= room:
                break
            around_a = graph.neighbours.get(a, frozenset())
            around_b = graph.neighbours.get(b, frozenset())
            if b in around_a or around_a & around_b & chosen:
                continue  # already joinable within the selection
            options = around_a & around_b
            if not options:
                continue
            bridge = max(options, key=lambda n: (scores.get(n, 0.0), n))
            chosen.add(bridge)
            bridges.append((bridge, min(score_a, score_b)))
    tail = [item for item in selected[n_core:] if item[0] not in chosen]
    merged = core + bridges + tail
    # Stable sort: a bridge sits right after the weaker table of the pair it joins.
    merged.sort(key=lambda item: -item[1])
    return merged[:top_k]


def complete_references(
    ranked: Sequence[tuple[str, float]],
    graph: SchemaGraph,
    top_k: int,
    core: int = 3,
    share: float = 0.3,
    relevance: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Keep top_k tables, adding the tables the ``core`` best ones reference, then the shared ones.

    A table the selection needs to join through is one that a core table references, or one that
    two or more of the selected tables reference (OMOP's ``person`` and ``concept`` under
    ``drug_exposure`` and ``condition_occurrence``, a star schema's dimension under two facts). It
    joins right after the table that brought it in (the referencing core table, or the second best of
    those referencing it) with that table's score a hair lower; at most ``floor(top_k * share)`` are
    added, which displace the weakest tables; when a core table references more tables than there is
    room for, the ones most relevant to the request (``relevance``: the fused scores) come first. References
    are followed one hop and in one direction only, so a table referenced by many others never pulls them in.
    """
    selected = list(ranked[:top_k])
    room = math.floor(top_k * share)
    if room <= 0:
        return selected
    chosen = {key for key, _ in selected}
    added: list[tuple[str, float]] = []
    scores = relevance or {}
    for key, score in selected[:core]:
        targets = sorted(graph.references.get(key, ()), key=lambda t: (-scores.get(t, 0.0), t))
        for target in targets:
            if len(added) >= room:
                break
            if target not in chosen:
                chosen.add(target)
                added.append((target, score - 1e-6))
    referrers: dict[str, list[float]] = {}  # a table outside the selection → its referrers' scores
    for key, score in selected:
        for target in graph.references.get(key, ()):
            if target not in chosen:
                referrers.setdefault(target, []).append(score)
    shared = [(target, scores) for target, scores in referrers.items() if len(scores) >= 2]
    # most referrers first, then the better second referrer; ties by name
    shared.sort(key=lambda item: (-len(item[1]), -item[1][1], item[0]))
    added.extend((target, scores[1] - 1e-6) for target, scores in shared[: room - len(added)])
    if not added:
        return selected
    kept = selected[: top_k - len(added)] if len(selected) + len(added) > top_k else selected
    merged = kept + added
    merged.sort(key=lambda item: -item[1])
    return merged[:top_k]


def select_tables(
    signals: Signals,
    graph: SchemaGraph,
    top_k: int,
    weights: RetrievalWeights | None = None,
    dated: Collection[str] = (),
) -> list[tuple[str, float]]:
    """Fuse, rank, bridge and complete along references: the top_k tables for a request, best first.

    ``dated``: the date-sharded families the request's dates name (``families.dated_families``). When none
    of them made the selection, the most relevant one takes the last place (top_k of 2 or more), if the
    request's words make it a candidate at all (within ``dated_reach`` × top_k): "…on January 18, 2023" needs
    the day family's shard even where the words rank other tables above it, but a date does not pull in a
    family the request is not about.
    """
    w = weights or RetrievalWeights()
    fused = fuse(signals, graph, w)
    ranked = rank(fused)
    bridged = expand_with_bridges(ranked, graph, top_k, w.bridge_core)
    selected = complete_references(bridged, graph, top_k, w.completion_core, w.completion_share, fused)
    reach = {key for key, _ in ranked[: w.dated_reach * top_k]}
    known = [key for key in dated if key in reach]
    if top_k < 2 or not known or any(key in known for key, _ in selected):
        return selected
    best = max(known, key=lambda key: (fused.get(key, 0.0), key))
    kept = selected[: top_k - 1]
    return [*kept, (best, min(fused.get(best, 0.0), kept[-1][1] - 1e-6) if kept else fused.get(best, 0.0))]
