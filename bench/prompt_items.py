"""One call for everything vs the schema item alone: warm caches, request texts not seen before, same run.

    python bench/prompt_items.py [--n 100]

Serves the bundled sample warehouse with semantic search (Milvus Lite index under a private data dir), warms
the caches, then alternates new request texts (BIRD questions, each used once) between
POST /v1/prompt-items/schema and POST /v1/prompt-items (all four item types), and prints both p50s and
their ratio (issue bar: ≤ 1.3).
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

QUESTIONS = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "birdunion" / "questions.jsonl"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    texts = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()][: 2 * args.n + 2]
    with serve(SEARCH_BACKEND="milvus", SCHEMA_CHECK_INTERVAL="0") as server:
        client = httpx.Client(base_url=server.base, timeout=60)
        deadline = time.monotonic() + 300
        while (
            client.get("/readyz").json()["checks"]["search"]["profiles"].get("default", {}).get("state")
            != "ready"
        ):
            if time.monotonic() > deadline:
                raise SystemExit("index not ready")
            time.sleep(0.5)
        client.post("/v1/prompt-items", json={"user_request": texts[0]})  # warm every part
        client.post("/v1/prompt-items/schema", json={"user_request": texts[1]})
        schema_times, all_times = [], []
        for i in range(args.n):
            for path, text, out in (
                ("/v1/prompt-items/schema", texts[2 + 2 * i], schema_times),
                ("/v1/prompt-items", texts[3 + 2 * i], all_times),
            ):
                started = time.perf_counter()
                r = client.post(path, json={"user_request": text})
                out.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text[:300]
    s, a = statistics.median(schema_times) * 1000, statistics.median(all_times) * 1000
    print(f"POST /v1/prompt-items/schema (new text): p50 {s:.2f} ms over {args.n}")
    print(f"POST /v1/prompt-items, 4 items (new text): p50 {a:.2f} ms over {args.n}")
    print(f"ratio = {a / s:.2f}  (bar: <= 1.3)")


if __name__ == "__main__":
    main()
