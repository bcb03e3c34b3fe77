"""Keyword ranking in process: the degraded path when Milvus or the model is unavailable. Pure, no I/O.

BM25 over the same lexical table documents the index uses, then the same fusion (schema coherence,
FK neighbours) and bridge-table expansion as the full retrieval — worse at synonyms, still correct.
Date-sharded families are one logical table here too: a hit names the shards the request's dates need.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmeta_app.schema.families import Family, collapse, dated_families, detect_families
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.search.bm25 import Bm25
from dbmeta_app.search.documents import lexical_terms, request_terms, table_lexical
from dbmeta_app.search.hits import TableHit, table_hit
from dbmeta_app.search.retrieval import SchemaGraph, Signals, select_tables

#: The name field's weight beside the whole table document's BM25.
NAME_WEIGHT = 1.0


@dataclass(frozen=True, slots=True)
class KeywordIndex:
    """BM25 over a snapshot's table documents (build once per snapshot version)."""

    version: str
    bm25: Bm25[str]
    graph: SchemaGraph
    families: dict[str, Family]
    names: Bm25[str] | None = None  # BM25 over the tables' names alone

    @classmethod
    def build(cls, snapshot: Snapshot) -> KeywordIndex:
        families = detect_families(snapshot)
        logical = collapse(snapshot, families)
        documents = {key: lexical_terms(table_lexical(t)) for key, t in logical.tables.items()}
        names = {key: lexical_terms(t.name) for key, t in logical.tables.items()}
        return cls(
            snapshot.version,
            Bm25.build(documents),
            SchemaGraph.from_snapshot(logical),
            families,
            Bm25.build(names),
        )

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every table that shares a term with the query, scaled to [0, 1].

        The name is a field of its own (BM25F-like): a word that names a table ("customers") is rare among
        names even where every table has a ``customer_id``, and counts for more than the same word among a
        table's columns, or than a rarer word such as "counted" in one ``last_counted_at`` column.
        """
        terms = request_terms(query)
        raw = self.bm25.scores(terms)
        if self.names is not None:
            for key, value in self.names.scores(terms).items():
                raw[key] = raw.get(key, 0.0) + NAME_WEIGHT * value
        top = max(raw.values(), default=0.0)
        return {key: value / top for key, value in raw.items()} if top else {}

    def search(self, query: str, top_k: int) -> list[TableHit]:
        """Rank tables for a request by keywords, with the retrieval's fusion and FK expansion."""
        scores = self.scores(query)
        if not scores:
            return []
        ranked = select_tables(
            Signals(tables=scores), self.graph, top_k, dated=dated_families(self.families, query)
        )
        return [table_hit(self.families, query, key, round(score, 6)) for key, score in ranked]
