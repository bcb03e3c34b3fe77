"""The in-process BM25 scorer."""

from __future__ import annotations

import math

from dbmeta_app.search.bm25 import K1, B, Bm25


def test_scores_follow_okapi_bm25_and_only_matching_documents_score() -> None:
    bm25 = Bm25.build(
        {"a": ["order", "order", "line"], "b": ["customer"], "c": [], "d": ["order", "customer"]}
    )
    scores = bm25.scores(["order", "order", "missing"])  # a repeated query term counts once
    assert set(scores) == {"a", "d"}
    n, df, avg = 4, 2, 6 / 4
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    expected_a = idf * 2 * (K1 + 1) / (2 + K1 * (1 - B + B * 3 / avg))
    assert math.isclose(scores["a"], expected_a)
    assert scores["a"] > scores["d"]  # more occurrences beat a shorter document here
    assert bm25.scores([]) == {} and Bm25.build({}).scores(["order"]) == {}
