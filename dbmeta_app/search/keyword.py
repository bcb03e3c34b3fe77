"""Keyword ranking in process: the degraded path when Milvus or the model is unavailable. Pure, no I/O.

BM25 over the same lexical table documents the index uses, then the same fusion (schema coherence,
FK neighbours) and bridge-table expansion as the full retrieval — worse at synonyms, still correct.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmeta_app.schema.models import Snapshot
from dbmeta_app.search.bm25 import Bm25
from dbmeta_app.search.documents import lexical_terms, table_lexical
from dbmeta_app.search.retrieval import SchemaGraph, Signals, select_tables


@dataclass(frozen=True, slots=True)
class KeywordIndex:
    """BM25 over a snapshot's table documents (build once per snapshot version)."""

    version: str
    bm25: Bm25[str]
    graph: SchemaGraph

    @classmethod
    def build(cls, snapshot: Snapshot) -> KeywordIndex:
        documents = {key: lexical_terms(table_lexical(t)) for key, t in snapshot.tables.items()}
        return cls(snapshot.version, Bm25.build(documents), SchemaGraph.from_snapshot(snapshot))

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every table that shares a term with the query, scaled to [0, 1]."""
        raw = self.bm25.scores(lexical_terms(query))
        top = max(raw.values(), default=0.0)
        return {key: value / top for key, value in raw.items()} if top else {}

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        """Rank tables for a request by keywords, with the retrieval's fusion and FK expansion."""
        scores = self.scores(query)
        if not scores:
            return []
        return select_tables(Signals(tables=scores), self.graph, top_k)
