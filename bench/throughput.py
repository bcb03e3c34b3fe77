"""Cache-hit throughput of POST /v1/prompt-items/schema vs a bare FastAPI endpoint returning the same bytes.

    python bench/throughput.py [--seconds 8] [--rounds 3] [--connections 32] [--redis]

Needs wrk (Debian package `wrk`). Starts one uvicorn server (same settings for both endpoints) with the
real app plus a bare route that answers the full-schema prompt item's bytes from memory, warms the cache,
then alternates wrk runs against both and prints requests/s and the ratio (issue bar: ≥ 0.5).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import median  # noqa: E402

LUA = 'wrk.method = "POST"\nwrk.body = \'{}\'\nwrk.headers["Content-Type"] = "application/json"\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, seconds: int, connections: int, script: Path) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} failed responses:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--redis", action="store_true", help="use the Redis on 127.0.0.1:6379 (default: memory)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    port = free_port()
    data = tempfile.mkdtemp(prefix="dbmeta-bench-")
    body_file = Path(data) / "body.json"
    env = dict(
        os.environ,
        DATA_DIR=data,
        BENCH_BODY_FILE=str(body_file),
        LOG_LEVEL="WARNING",
        REDIS_CACHE_ENABLED="true" if args.redis else "false",
    )
    env.pop("DATABASE_URL", None)
    env.pop("PROFILES_FILE", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench._bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.post(f"{base}/v1/prompt-items/schema", json={})  # miss: introspect and cache
        real = httpx.post(f"{base}/v1/prompt-items/schema", json={}).content
        body_file.write_bytes(real)
        bare = httpx.post(f"{base}/bench/bare", json={}).content
        assert real == bare and b'"cache":"hit"' in real, "bodies differ"
        print(f"body: {len(real)} bytes, backend: {'redis' if args.redis else 'memory'}")
        script = Path(data) / "post.lua"
        script.write_text(LUA)
        wrk(f"{base}/bench/bare", 2, args.connections, script)  # warm-up
        wrk(f"{base}/v1/prompt-items/schema", 2, args.connections, script)
        bare_rps: list[float] = []
        real_rps: list[float] = []
        for _ in range(args.rounds):
            bare_rps.append(wrk(f"{base}/bench/bare", args.seconds, args.connections, script))
            real_rps.append(wrk(f"{base}/v1/prompt-items/schema", args.seconds, args.connections, script))
        b, r = median(bare_rps), median(real_rps)
        print(
            f"bare endpoint (same bytes from memory): {', '.join(f'{x:.0f}' for x in bare_rps)} req/s; median {b:.0f}"
        )
        print(
            f"POST /v1/prompt-items/schema (hit):     {', '.join(f'{x:.0f}' for x in real_rps)} req/s; median {r:.0f}"
        )
        print(f"ratio = {r / b:.3f}")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
