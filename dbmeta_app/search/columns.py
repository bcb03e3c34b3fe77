"""Which columns of the selected tables a request is about: the column signal of a budgeted rendering.

Pure, no I/O. A column scores by the request's terms (normalised like the index's lexical documents:
split identifiers, plurals folded, stop words out) that meet it: a term of its name counts 1, a term
of its description or comment 0.5, a word sharing a prefix of at least ``PREFIX`` letters with a name
word 0.25; a name the request writes out whole (``transaction_revenue``) adds 1. Nested fields
(``totals.transactionRevenue``) are matched by every part of their path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dbmeta_app.schema.models import Column, Snapshot
from dbmeta_app.search.documents import lexical_terms, request_terms

PREFIX = 4
NAME = 1.0
DESCRIPTION = 0.5
PARTIAL = 0.25
WHOLE_NAME = 1.0


def _score(column: Column, terms: frozenset[str], prefixes: frozenset[str], request: str) -> float:
    name_terms = set(lexical_terms(column.name))
    text_terms = set(lexical_terms(column.text or "")) - name_terms
    score = NAME * len(terms & name_terms) + DESCRIPTION * len(terms & text_terms)
    unmatched = name_terms - terms
    score += PARTIAL * sum(1 for word in unmatched if len(word) >= PREFIX and word[:PREFIX] in prefixes)
    leaf = column.name.rsplit(".", 1)[-1].lower()
    if len(leaf) >= PREFIX and ("_" in leaf or "." in column.name) and leaf in request:
        score += WHOLE_NAME
    return score


def column_relevance(
    snapshot: Snapshot, keys: Sequence[str], request: str
) -> Mapping[str, Mapping[str, float]]:
    """Score the columns of the given tables for a request; columns it does not touch are left out."""
    terms = frozenset(request_terms(request))
    if not terms:
        return {}
    prefixes = frozenset(t[:PREFIX] for t in terms if len(t) >= PREFIX)
    lowered = request.lower()
    scores: dict[str, dict[str, float]] = {}
    for key in keys:
        table = snapshot.tables.get(key)
        if table is None:
            continue
        found = {c.name: s for c in table.columns if (s := _score(c, terms, prefixes, lowered)) > 0}
        if found:
            scores[key] = found
    return scores
