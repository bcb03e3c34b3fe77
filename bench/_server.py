"""Run the app under uvicorn in a subprocess and drive it with wrk (benchmarks only)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lua_post(body: str) -> str:
    """A wrk script that POSTs the given JSON body."""
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    return f'wrk.method = "POST"\nwrk.body = "{escaped}"\nwrk.headers["Content-Type"] = "application/json"\n'


@dataclass
class Server:
    base: str
    data: Path

    def wrk(self, path: str, body: str, seconds: int, connections: int) -> tuple[float, float]:
        """Drive POST path with wrk; return (requests/s, mean latency in ms). Any failed response aborts."""
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed (apt-get install wrk)")
        script = self.data / f"post-{abs(hash(body))}.lua"
        script.write_text(lua_post(body))
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), self.base + path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise SystemExit(f"wrk saw {errors.group(1)} failed responses:\n{out}")
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
        assert lat is not None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]
        return rps, float(lat.group(1)) * scale


@contextmanager
def serve(app: str = "dbmeta_app.main:app", **env_extra: str) -> Iterator[Server]:
    """Start uvicorn on a free port with a private DATA_DIR; stop it on exit."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="dbmeta-bench-"))
    # keyword search unless a bench asks for Milvus: no model load or background indexing skews timings
    env = dict(
        os.environ,
        DATA_DIR=str(data),
        LOG_LEVEL="WARNING",
        REDIS_CACHE_ENABLED="false",
        SEARCH_BACKEND="keyword",
    )
    for var in ("DATABASE_URL", "PROFILES_FILE"):
        env.pop(var, None)
    env.update(env_extra)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        yield Server(base, data)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)
