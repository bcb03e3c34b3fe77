"""Keyword ranking in process: the degraded path when Milvus or the model is unavailable. Pure, no I/O.

BM25 over the same lexical table documents the index uses, then the same fusion (schema coherence,
FK neighbours) and bridge-table expansion as the full retrieval — worse at synonyms, still correct.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from dbmeta_app.introspection.models import Snapshot
from dbmeta_app.search.documents import lexical_terms, table_lexical
from dbmeta_app.search.retrieval import SchemaGraph, Signals, select_tables

_K1 = 1.2
_B = 0.75


@dataclass(frozen=True, slots=True)
class KeywordIndex:
    """Term statistics of a snapshot's table documents (build once per snapshot version)."""

    version: str
    terms: dict[str, Counter[str]]
    lengths: dict[str, int]
    document_frequency: Counter[str]
    average_length: float
    graph: SchemaGraph

    @classmethod
    def build(cls, snapshot: Snapshot) -> KeywordIndex:
        terms = {key: Counter(lexical_terms(table_lexical(t))) for key, t in snapshot.tables.items()}
        lengths = {key: sum(c.values()) for key, c in terms.items()}
        df: Counter[str] = Counter()
        for counts in terms.values():
            df.update(counts.keys())
        average = (sum(lengths.values()) / len(lengths)) if lengths else 1.0
        return cls(snapshot.version, terms, lengths, df, average or 1.0, SchemaGraph.from_snapshot(snapshot))

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every table that shares a term with the query, scaled to [0, 1]."""
        wanted = set(lexical_terms(query))
        n = len(self.terms)
        raw: dict[str, float] = {}
        for key, counts in self.terms.items():
            score = 0.0
            for term in wanted:
                tf = counts.get(term, 0)
                if not tf:
                    continue
                idf = math.log(
                    1 + (n - self.document_frequency[term] + 0.5) / (self.document_frequency[term] + 0.5)
                )
                norm = tf + _K1 * (1 - _B + _B * self.lengths[key] / self.average_length)
                score += idf * tf * (_K1 + 1) / norm
            if score > 0:
                raw[key] = score
        top = max(raw.values(), default=0.0)
        return {key: value / top for key, value in raw.items()} if top else {}

    def search(self, query: str, top_k: int) -> list[tuple[str, float]]:
        """Rank tables for a request by keywords, with the retrieval's fusion and FK expansion."""
        scores = self.scores(query)
        if not scores:
            return []
        return select_tables(Signals(tables=scores), self.graph, top_k)
