"""Okapi BM25 over pre-normalised terms (``documents.lexical_terms``). Pure, no I/O.

The one in-process lexical scorer: the index mirror's lexical half, the keyword fallback when Milvus or
the model is unavailable, and the fallback ranking of query examples all use it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

K1 = 1.2
B = 0.75


@dataclass(frozen=True, slots=True)
class Bm25(Generic[K]):
    """Postings of a set of documents, each with its length-normalised term weight (worked out once)."""

    postings: dict[str, list[tuple[K, float]]]  # term -> (document, tf * (K1 + 1) / (tf + K1 * length norm))
    documents: int

    @classmethod
    def build(cls, documents: Mapping[K, Sequence[str]]) -> Bm25[K]:
        """Index documents given as lists of terms (an empty list is a document with no terms)."""
        average = (
            sum(len(terms) for terms in documents.values()) / len(documents) if documents else 0.0
        ) or 1.0
        postings: dict[str, list[tuple[K, float]]] = {}
        for key, terms in documents.items():
            norm = K1 * (1 - B + B * len(terms) / average)
            for term, tf in Counter(terms).items():
                postings.setdefault(term, []).append((key, tf * (K1 + 1) / (tf + norm)))
        return cls(postings, len(documents))

    def scores(self, terms: Iterable[str]) -> dict[K, float]:
        """Score every document sharing a term with the query (each distinct query term counts once)."""
        n = self.documents
        out: dict[K, float] = {}
        for term in set(terms):
            found = self.postings.get(term)
            if not found:
                continue
            idf = math.log(1 + (n - len(found) + 0.5) / (len(found) + 0.5))
            for key, weight in found:
                out[key] = out.get(key, 0.0) + idf * weight
        return out
