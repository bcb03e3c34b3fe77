"""Throughput and latency percentiles of the main endpoints at rising concurrency, driven by wrk.

    python bench/load.py [--seconds 5] [--rounds 1] [--concurrency 1,10,50,100,200] [--backend redis|memory]

Starts one uvicorn server (one worker) with the real app on the bundled sample warehouse, backed by a
private redis-server (``--backend redis``, default) or the in-process cache alone, warms every cache, then
runs ``wrk --latency`` per endpoint and concurrency (``--rounds`` times, each figure the median of the
rounds) and prints one table: requests/s, p50, p99, non-2xx answers and socket errors (a request unanswered
after wrk's 10 s ``--timeout`` counts there), summed over the rounds, with the machine's load average. Not a test: it asserts nothing but prints what it saw.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._faults import AppServer, RedisServer
from bench._server import lua_post

PREFLIGHT_SQL = (
    "SELECT c.customer_id, count(*) AS orders FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
    "GROUP BY c.customer_id"
)


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    body: str | None  # None: GET


ENDPOINTS = [
    Endpoint("schema (full)", "/v1/prompt-items/schema", "{}"),
    Endpoint(
        "schema (3 tables)", "/v1/prompt-items/schema", '{"tables": ["orders", "order_items", "customers"]}'
    ),
    Endpoint("preflight (cached)", "/v1/preflight", f'{{"sql": "{PREFLIGHT_SQL}"}}'),
    Endpoint("healthz", "/healthz", None),
]


@dataclass(frozen=True)
class Row:
    endpoint: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int  # connect/read/write errors and requests past wrk's --timeout


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> tuple[float, float, float, int, int, int]:
    """Return (requests/s, p50 ms, p99 ms, requests, non-2xx answers, socket errors) from ``wrk --latency``."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or p50 is None or p99 is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (
        float(rps.group(1)),
        _ms(p50.group(1), p50.group(2)),
        _ms(p99.group(1), p99.group(2)),
        int(total.group(1)),
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in sock.groups()) if sock else 0,
    )


def run_wrk(base: str, endpoint: Endpoint, connections: int, seconds: int, scripts: Path) -> Row:
    """Drive one endpoint at one concurrency with wrk (one thread) and parse its figures."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    if endpoint.body is not None:
        script = scripts / f"{abs(hash(endpoint.body))}.lua"
        script.write_text(lua_post(endpoint.body))
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, base + endpoint.path], capture_output=True, text=True, check=True).stdout
    return Row(endpoint.name, connections, *parse_wrk(out))


def warm(base: str) -> None:
    """Fill every cache the endpoints read, and check each answers 200."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for endpoint in ENDPOINTS:
            for _ in range(2):
                if endpoint.body is None:
                    r = client.get(endpoint.path)
                else:
                    r = client.post(
                        endpoint.path, content=endpoint.body, headers={"content-type": "application/json"}
                    )
                r.raise_for_status()


def median_row(rounds: list[Row]) -> Row:
    """Combine the rounds of one cell: median figures, summed counts."""
    return Row(
        rounds[0].endpoint,
        rounds[0].connections,
        statistics.median(r.rps for r in rounds),
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
        sum(r.requests for r in rounds),
        sum(r.non2xx for r in rounds),
        sum(r.socket_errors for r in rounds),
    )


def print_table(rows: list[Row], backend: str, seconds: int, rounds: int, load: str) -> None:
    print(
        f"\nbackend: {backend}; wrk -t1, {seconds} s per cell, median of {rounds} round(s); one uvicorn worker;"
        f" sample warehouse; load average {load}\n"
    )
    print("| endpoint | connections | req/s | p50 ms | p99 ms | requests | non-2xx | socket errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r.endpoint} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.requests:,} | {r.non2xx} | {r.socket_errors} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", default="1,10,50,100,200")
    parser.add_argument("--backend", choices=("redis", "memory"), default="redis")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    levels = [int(x) for x in args.concurrency.split(",")]
    redis_server = RedisServer() if args.backend == "redis" else None
    # None of the measured endpoints searches tables: keep the model and Milvus Lite (and their start-up
    # indexing, which would compete for the CPU during the first cells) out of the server.
    env = {"REDIS_CACHE_ENABLED": "false", "SEARCH_BACKEND": "keyword", "INDEX_ON_STARTUP": "false"}
    if redis_server is not None:
        redis_server.start()
        env.update(REDIS_CACHE_ENABLED="true", REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_server.port))
    server = AppServer(env=env)
    rows: list[Row] = []
    try:
        server.start()
        warm(server.base)
        scripts = server.data_dir
        load_before = os.getloadavg()[0]
        for endpoint in ENDPOINTS:
            run_wrk(server.base, endpoint, 10, 1, scripts)  # warm the connection path
            for connections in levels:
                row = median_row(
                    [
                        run_wrk(server.base, endpoint, connections, args.seconds, scripts)
                        for _ in range(args.rounds)
                    ]
                )
                print(
                    f"{row.endpoint:20} c={connections:<4} {row.rps:8.0f} req/s  p50 {row.p50_ms:7.2f} ms  "
                    f"p99 {row.p99_ms:8.2f} ms  non-2xx {row.non2xx}  socket errors {row.socket_errors}",
                    flush=True,
                )
                rows.append(row)
        load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 cores)"
        print_table(rows, args.backend, args.seconds, args.rounds, load)
    finally:
        server.cleanup()
        if redis_server is not None:
            redis_server.close()


if __name__ == "__main__":
    main()
