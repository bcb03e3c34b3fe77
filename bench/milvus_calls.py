"""Why searches of a small index are answered in process: Milvus Lite call costs vs embedding a request.

    python bench/milvus_calls.py [--n 100]

Uses the BirdUnion index that `python bench/retrieval.py` builds under /tmp/dbmeta_bench. Prints, as p50 over
--n requests: a BM25 search (limit 10 and 180), a one-row query, a hybrid search as the table search runs it,
the same ranking from the in-process mirror, embedding a request alone, and embedding it while a Milvus call
runs beside it (the overlap a 2-core machine cannot give).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.retrieval import WORK_DIR
from dbmeta_app.search.documents import lexical_query
from dbmeta_app.search.embedder import Embedder
from dbmeta_app.search.milvus_index import TableIndex, connect

QUESTIONS = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "birdunion" / "questions.jsonl"
)


def p50(run: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        started = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()][: 2 * args.n]
    texts = [lexical_query(q) for q in questions]
    embedder = Embedder()
    vectors = embedder.encode(questions)
    client = connect(str(WORK_DIR / "birdunion.db"))
    names = {"client_name": "bench", "env": "local", "profile": "birdunion", "database": "bench:birdunion"}
    in_milvus = TableIndex(client, mirror_max_rows=0, **names)
    mirrored = TableIndex(client, **names)
    if not in_milvus.ready:
        raise SystemExit("no BirdUnion index: run python bench/retrieval.py first")
    for index in (in_milvus, mirrored):
        index.signals(texts[0], vectors[0], 10)  # opens and loads the collection (and the mirror)
    assert mirrored.mirrored and not in_milvus.mirrored
    alias, parts = in_milvus.alias, ["tables", "schemas"]

    def bm25(limit: int) -> Callable[[int], object]:
        return lambda i: client.search(
            alias, data=[texts[i]], anns_field="sparse", limit=limit, partition_names=parts
        )

    rows = [
        ("Milvus Lite BM25 search, limit 10", bm25(10)),
        ("Milvus Lite BM25 search, limit 180", bm25(180)),
        ("Milvus Lite one-row query", lambda i: client.query(alias, filter='kind == "schema"', limit=1)),
        (
            "Milvus hybrid_search (tables + schemas) and column search",
            lambda i: in_milvus.signals(texts[i], vectors[i], 180, column_limit=100),
        ),
        (
            "the same from the in-process mirror",
            lambda i: mirrored.signals(texts[i], vectors[i], 180, column_limit=100),
        ),
        ("embedding a request alone", lambda i: embedder.encode([questions[i]])),
    ]
    for label, run in rows:
        print(f"{label}: p50 {p50(run, args.n):.2f} ms")

    side_call = bm25(180)
    encode_times: list[float] = []

    def overlapped(i: int) -> None:
        side = threading.Thread(target=side_call, args=(i,))
        side.start()
        started = time.perf_counter()
        embedder.encode([questions[args.n + i]])
        encode_times.append(time.perf_counter() - started)
        side.join()

    both = p50(overlapped, args.n)
    print(
        f"embedding a request while a Milvus BM25 call (limit 180) runs beside it: p50 "
        f"{statistics.median(encode_times) * 1000:.2f} ms; both done: p50 {both:.2f} ms"
    )
    client.close()


if __name__ == "__main__":
    main()
