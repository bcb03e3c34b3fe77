"""Warm latency of POST /v1/prompt-items/schema with a request vs embedding the request alone, same run.

    python bench/search_latency.py [--n 200] [--url postgresql+psycopg://postgres@127.0.0.1/birdunion]

Serves the BirdUnion warehouse (load it first with `python bench/retrieval.py`, which creates the
`birdunion` database) with the Milvus Lite index kept under /tmp/dbmeta-bench-search (built on the first
run), warms the schema snapshot, then, sequentially:
  1. embeds --n BIRD questions with the same model in this process (the baseline),
  2. asks the server for the schema of --n *other* questions (texts it has not seen),
  3. asks the server --n times for one repeated question.
Prints the p50 of each and the ratios (issue bars: novel ≤ 2.5× embedding; repeated ≤ 5 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import serve
from dbmeta_app.search.embedder import Embedder

QUESTIONS = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "birdunion" / "questions.jsonl"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/birdunion")
    parser.add_argument("--data-dir", default="/tmp/dbmeta-bench-search")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()]
    novel_a, novel_b = questions[: args.n], questions[args.n : 2 * args.n]
    env = {"DATABASE_URL": args.url, "SCHEMA_CHECK_INTERVAL": "0", "SEARCH_BACKEND": "milvus"}
    with serve(DATA_DIR=args.data_dir, **env) as server:
        client = httpx.Client(base_url=server.base, timeout=60)
        deadline = time.monotonic() + 900
        while True:
            state = client.get("/readyz").json()["checks"]["search"]["profiles"].get("default", {})
            if state.get("state") == "ready":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"index not ready: {state}")
            time.sleep(1)
        client.post("/v1/prompt-items/schema", json={})  # warm: the full snapshot is cached
        client.post("/v1/prompt-items/schema", json={"user_request": "warm-up request", "top_k": 10})

        embedder = Embedder()
        embedder.encode(["warm-up"])
        embed_times = []
        for text in novel_a:
            started = time.perf_counter()
            embedder.encode([text])
            embed_times.append(time.perf_counter() - started)

        novel_times = []
        for text in novel_b:
            started = time.perf_counter()
            r = client.post("/v1/prompt-items/schema", json={"user_request": text, "top_k": 10})
            novel_times.append(time.perf_counter() - started)
            assert r.status_code == 200 and r.json()["metadata"]["degraded"] is False, r.text[:300]

        repeated_times = []
        for _ in range(args.n):
            started = time.perf_counter()
            client.post("/v1/prompt-items/schema", json={"user_request": novel_b[0], "top_k": 10})
            repeated_times.append(time.perf_counter() - started)
    e, n, r = (statistics.median(x) * 1000 for x in (embed_times, novel_times, repeated_times))
    print(f"embedding a request alone (in process): p50 {e:.2f} ms over {args.n}")
    print(f"POST /v1/prompt-items/schema, new request text: p50 {n:.2f} ms over {args.n}")
    print(f"POST /v1/prompt-items/schema, repeated text:    p50 {r:.2f} ms over {args.n}")
    print(
        f"ratio new request / embedding = {n / e:.2f}  (bar: <= 2.5); repeated p50 {r:.2f} ms (bar: <= 5 ms)"
    )


if __name__ == "__main__":
    main()
