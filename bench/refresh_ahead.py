"""Latency across soft-TTL boundaries under steady load: does any request wait for a refresh?

    python bench/refresh_ahead.py [--seconds 20] [--ttl 5] [--concurrency 4] [--redis]

Uses the generated 1,000-table PostgreSQL warehouse of bench/introspection.py (created if missing). Runs the
server with SCHEMA_CACHE_TTL=--ttl (soft TTL at 80 %), warms it, then keeps --concurrency clients asking for
three tables' schema for --seconds — crossing several soft-TTL boundaries — and prints the warm p50, the p99,
the slowest request, how many answers were "stale", and the ratio slowest / warm p50 (issue bar: ≤ 3).
Then a control run: the same load for the same time with a TTL no boundary falls in, to show how slow the
slowest request is on this machine when nothing is refreshed. Latencies are reported as the client saw
them and as the server measured them (its Server-Timing header).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile
from bench._server import serve
from bench.introspection import ensure_warehouse

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dbmeta_bench"
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


async def drive(base: str, seconds: float, concurrency: int) -> list[tuple[float, float, str, float]]:
    body = {"tables": ["wh_1.t_0001", "wh_2.t_0002", "wh_3.t_0003"]}
    out: list[tuple[float, float, str, float]] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                r = await client.post("/v1/prompt-items/schema", json=body)
                elapsed = time.perf_counter() - started
                r.raise_for_status()
                server = float(r.headers["server-timing"].split("dur=")[1]) / 1000
                out.append((time.monotonic(), elapsed, r.json()["metadata"]["cache"], server))

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ttl", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    ensure_warehouse(ADMIN_URL, URL, 1000)
    run(args, args.ttl)
    print("--- control: the same load, no soft-TTL boundary (TTL 3600 s)")
    run(args, 3600.0)


def run(args: argparse.Namespace, ttl: float) -> None:
    env = {
        "DATABASE_URL": URL,
        "SCHEMA_CACHE_TTL": str(ttl),
        "SCHEMA_CHECK_INTERVAL": "0",
        "REDIS_CACHE_ENABLED": "true" if args.redis else "false",
        "CLIENT": f"bench-{time.time_ns()}",  # a fresh key space: the first request is a real miss
    }
    with serve(**env) as server:
        first = httpx.post(
            f"{server.base}/v1/prompt-items/schema", json={"tables": ["wh_1.t_0001"]}, timeout=60
        )
        print(
            f"cold request (introspection of 1,000 tables): {first.elapsed.total_seconds() * 1000:.0f} ms, "
            f"cache={first.json()['metadata']['cache']}"
        )
        # the client's own garbage collection would stall all its requests at once: not the server's latency
        gc.disable()
        samples = asyncio.run(drive(server.base, args.seconds, args.concurrency))
        gc.enable()
    hits = [e for _, e, status, _ in samples if status == "hit"]
    all_lat = [e for _, e, _, _ in samples]
    stale = sum(1 for _, _, status, _ in samples if status == "stale")
    misses = sum(1 for _, _, status, _ in samples if status == "miss")
    p50 = statistics.median(hits)
    worst = max(all_lat)
    print(
        f"{len(samples)} requests over {args.seconds:.0f} s, soft TTL {ttl * 0.8:.1f} s: "
        f"{stale} answered stale, {misses} misses"
    )
    print(
        f"warm p50 {p50 * 1000:.2f} ms · p99 {percentile(all_lat, 99) * 1000:.2f} ms · "
        f"slowest {worst * 1000:.2f} ms"
    )
    t0 = samples[0][0]
    stale_at = sorted({round(t - t0, 1) for t, _, status, _ in samples if status == "stale"})
    slowest = sorted(samples, key=lambda x: -x[1])[:5]
    print("stale answers at (s):", stale_at[:3], "...", stale_at[-3:])
    print(
        "slowest (t s, client ms, status, server ms):",
        [(round(t - t0, 2), round(e * 1000, 1), st, round(sv * 1000, 1)) for t, e, st, sv in slowest],
    )
    # the soft-TTL boundaries: where a run of stale answers starts
    boundaries = [
        t
        for i, (t, _, st, _) in enumerate(samples)
        if st == "stale" and (i == 0 or samples[i - 1][2] != "stale")
    ]
    near = [(e, sv) for t, e, _, sv in samples if any(abs(t - b) <= 1.0 for b in boundaries)]
    if near:
        worst_client = max(e for e, _ in near)
        worst_server = max(sv for _, sv in near)
        server_p50 = statistics.median(sv for _, _, st, sv in samples if st == "hit")
        print(
            f"within 1 s of a soft-TTL boundary ({len(boundaries)} crossed): {len(near)} requests, "
            f"slowest {worst_client * 1000:.2f} ms, ratio to warm p50 {worst_client / p50:.2f}  (bar: <= 3)"
        )
        print(
            f"  measured in the server (Server-Timing): warm p50 {server_p50 * 1000:.2f} ms, slowest near a "
            f"boundary {worst_server * 1000:.2f} ms, ratio {worst_server / server_p50:.2f}"
        )
    server_hits = [sv for _, _, st, sv in samples if st == "hit"]
    print(
        f"ratio slowest / warm p50 over the whole run = {worst / p50:.2f} (client); "
        f"{max(sv for *_, sv in samples) / statistics.median(server_hits):.2f} (server)"
    )


if __name__ == "__main__":
    main()
