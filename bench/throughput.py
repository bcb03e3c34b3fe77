"""Cache-hit throughput of POST /v1/prompt-items/schema vs a bare FastAPI endpoint returning the same bytes.

    python bench/throughput.py [--seconds 8] [--rounds 3] [--connections 32] [--redis]

Needs wrk (Debian package `wrk`). Starts one uvicorn server (same settings for both endpoints) with the
real app plus a bare route that answers the full-schema prompt item's bytes from memory, warms the cache,
then alternates wrk runs against both and prints requests/s and the ratio (issue bar: ≥ 0.8). The machine's
speed drifts between rounds, so the ratio of each round's back-to-back pair is printed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median
from bench._server import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--redis", action="store_true", help="use the Redis on 127.0.0.1:6379 (default: memory)"
    )
    args = parser.parse_args()
    body_file = Path("/tmp") / f"dbmeta-bench-body-{id(args)}.json"
    env = {"BENCH_BODY_FILE": str(body_file), "REDIS_CACHE_ENABLED": "true" if args.redis else "false"}
    with serve("bench._bare_app:app", **env) as server:
        httpx.post(f"{server.base}/v1/prompt-items/schema", json={})  # miss: introspect and cache
        real = httpx.post(f"{server.base}/v1/prompt-items/schema", json={}).content
        body_file.write_bytes(real)
        bare = httpx.post(f"{server.base}/bench/bare", json={}).content
        assert real == bare and b'"cache":"hit"' in real, "bodies differ"
        print(f"body: {len(real)} bytes, backend: {'redis' if args.redis else 'memory'}")
        server.wrk("/bench/bare", "{}", 2, args.connections)  # warm-up
        server.wrk("/v1/prompt-items/schema", "{}", 2, args.connections)
        bare_rps: list[float] = []
        real_rps: list[float] = []
        for _ in range(args.rounds):  # alternate so machine noise hits both alike
            bare_rps.append(server.wrk("/bench/bare", "{}", args.seconds, args.connections)[0])
            real_rps.append(server.wrk("/v1/prompt-items/schema", "{}", args.seconds, args.connections)[0])
    body_file.unlink(missing_ok=True)
    b, r = median(bare_rps), median(real_rps)
    print(
        f"bare endpoint (same bytes from memory): {', '.join(f'{x:.0f}' for x in bare_rps)} req/s; median {b:.0f}"
    )
    print(
        f"POST /v1/prompt-items/schema (hit):     {', '.join(f'{x:.0f}' for x in real_rps)} req/s; median {r:.0f}"
    )
    paired = sorted(x / y for x, y in zip(real_rps, bare_rps, strict=True))
    print(f"ratio of the medians = {r / b:.3f}")
    print(
        f"per-round ratios (each round runs both back to back): {', '.join(f'{x:.2f}' for x in paired)}; "
        f"median {median(paired):.3f}  (bar: >= 0.8)"
    )


if __name__ == "__main__":
    main()
