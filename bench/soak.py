"""Soak: at least 50,000 requests over the main endpoints against one server process, watching its memory.

    python bench/soak.py [--requests 50000] [--connections 20] [--backend redis|memory]
                         [--search keyword|milvus] [--bound-mb 50]

One uvicorn worker serves the bundled sample warehouse (with a private redis-server by default; table search
by in-process keyword ranking by default, or ``--search milvus``: the model and Milvus Lite). wrk sends
a rotating mix — full schema, named tables, a user request (new text each time), a repeated preflight, a
preflight of new SQL each time, /healthz — in 10 s rounds until the target count is reached, while the
server's VmRSS is sampled every 2 s. Prints start (after warm-up), peak and end RSS and the growth, and
exits 1 when the growth exceeds the bound or any request failed. New inputs grow the bounded caches
(L1 is capped by MEMORY_CACHE_MAX_BYTES, set to 16 MiB here so the cap sits well inside the bound).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._faults import AppServer, RedisServer

MIB = 1024 * 1024
ROUND_S = 10
SAMPLE_EVERY_S = 2.0

MIX_LUA = r"""
local n = 0
local json = {["Content-Type"] = "application/json"}
local table_sets = {
  '{"tables": ["orders", "order_items"]}',
  '{"tables": ["customers"]}',
  '{"tables": ["products", "stock_levels", "warehouses"]}',
  '{"tables": ["invoices", "payments"]}',
}
request = function()
  n = n + 1
  local k = n % 6
  if k == 0 then
    return wrk.format("POST", "/v1/prompt-items/schema", json, "{}")
  elseif k == 1 then
    return wrk.format("POST", "/v1/prompt-items/schema", json, table_sets[(n % #table_sets) + 1])
  elseif k == 2 then
    return wrk.format("POST", "/v1/prompt-items/schema", json,
      string.format('{"user_request": "orders of customer %d last month"}', n))
  elseif k == 3 then
    return wrk.format("POST", "/v1/preflight", json,
      '{"sql": "SELECT order_id, customer_id FROM orders WHERE order_id = 1"}')
  elseif k == 4 then
    return wrk.format("POST", "/v1/preflight", json,
      string.format('{"sql": "SELECT order_id, %d AS n FROM orders LIMIT 1"}', n))
  else
    return wrk.format("GET", "/healthz")
  end
end
"""


def wrk_round(base: str, script: Path, connections: int, seconds: int) -> tuple[int, int]:
    """Run one wrk round; return (requests, failures: non-2xx answers plus socket errors)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = re.search(r"(\d+) requests in", out)
    if total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failures = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return int(total.group(1)), failures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--backend", choices=("redis", "memory"), default="redis")
    parser.add_argument("--search", choices=("keyword", "milvus"), default="keyword")
    parser.add_argument("--bound-mb", type=float, default=50.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    redis_server = RedisServer() if args.backend == "redis" else None
    env = {
        "REDIS_CACHE_ENABLED": "false",
        "MEMORY_CACHE_MAX_BYTES": str(16 * MIB),
        "SEARCH_BACKEND": args.search,
    }
    if redis_server is not None:
        redis_server.start()
        env.update(REDIS_CACHE_ENABLED="true", REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_server.port))
    server = AppServer(env=env)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), server.rss_bytes()))
            stop.wait(SAMPLE_EVERY_S)

    try:
        server.start()
        booted = server.rss_bytes()
        script = server.data_dir / "soak.lua"
        script.write_text(MIX_LUA)
        with httpx.Client(base_url=server.base, timeout=30) as client:  # each answer kind works first
            for body in ({}, {"tables": ["orders"]}, {"user_request": "orders"}):
                client.post("/v1/prompt-items/schema", json=body).raise_for_status()
            client.post("/v1/preflight", json={"sql": "SELECT 1 AS one"}).raise_for_status()
        warm_requests, warm_failures = wrk_round(server.base, script, args.connections, 5)
        start = server.rss_bytes()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        began = time.monotonic()
        total, failures = 0, warm_failures
        while total < args.requests:
            done, failed = wrk_round(server.base, script, args.connections, ROUND_S)
            total += done
            failures += failed
            print(
                f"{time.monotonic() - began:6.0f} s  {total:>7,} requests  {failures} failed  "
                f"RSS {server.rss_bytes() / MIB:6.1f} MiB",
                flush=True,
            )
        elapsed = time.monotonic() - began
        stop.set()
        sampler.join(5)
        end = server.rss_bytes()
        peak = max([start, end, *(rss for _, rss in samples)])
    finally:
        stop.set()
        server.cleanup()
        if redis_server is not None:
            redis_server.close()
    growth = (end - start) / MIB
    print(
        f"\nsoak (cache {args.backend}, search {args.search}): {total:,} requests in {elapsed:.0f} s ({total / elapsed:,.0f} req/s) "
        f"after {warm_requests:,} warm-up requests, {failures} failed, {args.connections} connections"
    )
    print(
        f"RSS: boot {booted / MIB:.1f} MiB, start {start / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB, "
        f"end {end / MIB:.1f} MiB; growth {growth:+.1f} MiB (bound {args.bound_mb:.0f} MiB); "
        f"{len(samples)} samples every {SAMPLE_EVERY_S:.0f} s"
    )
    ok = growth <= args.bound_mb and failures == 0
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
