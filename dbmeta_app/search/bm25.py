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
    """Postings and length statistics of a set of documents."""

    postings: dict[str, list[tuple[K, int]]]  # term -> (document, term frequency)
    lengths: dict[K, int]
    average_length: float

    @classmethod
    def build(cls, documents: Mapping[K, Sequence[str]]) -> Bm25[K]:
        """Index documents given as lists of terms (an empty list is a document with no terms)."""
        postings: dict[str, list[tuple[K, int]]] = {}
        lengths: dict[K, int] = {}
        for key, terms in documents.items():
            lengths[key] = len(terms)
            for term, tf in Counter(terms).items():
                postings.setdefault(term, []).append((key, tf))
        average = sum(lengths.values()) / len(lengths) if lengths else 0.0
        return cls(postings, lengths, average or 1.0)

    def scores(self, terms: Iterable[str]) -> dict[K, float]:
        """Score every document sharing a term with the query (each distinct query term counts once)."""
        n = len(self.lengths)
        out: dict[K, float] = {}
        for term in set(terms):
            found = self.postings.get(term)
            if not found:
                continue
            idf = math.log(1 + (n - len(found) + 0.5) / (len(found) + 0.5))
            for key, tf in found:
                norm = tf + K1 * (1 - B + B * self.lengths[key] / self.average_length)
                out[key] = out.get(key, 0.0) + idf * tf * (K1 + 1) / norm
        return out
