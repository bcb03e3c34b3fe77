"""``dbmeta serve --workers 2`` on Milvus Lite: one worker holds the file, both answer from the index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _fresh(base: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    # A new connection per request: the kernel hands each one to whichever worker accepts first.
    with httpx.Client(base_url=base, timeout=30) as client:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def test_serve_with_two_workers_answers_from_the_index_in_both(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROFILES_FILE", "MILVUS_URI")}
    env.update(DATA_DIR=str(tmp_path), REDIS_CACHE_ENABLED="false", HF_HUB_OFFLINE="1", LOG_LEVEL="WARNING")
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbmeta_app", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        ready: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 240
        while len(ready) < 2:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, f"ready workers: {ready}"
            try:
                r = _fresh(base, "GET", "/readyz")
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if r.status_code == 200:
                ready[r.headers["x-dbmeta-worker"]] = r.json()
            time.sleep(0.1)
        roles = sorted(str(body["checks"]["search"]["index_owner"]["role"]) for body in ready.values())  # type: ignore[index]
        assert roles == ["follower", "owner"] and all(b["degraded"] is False for b in ready.values())

        answered: dict[str, int] = {}
        for _ in range(200):
            r = _fresh(
                base,
                "POST",
                "/v1/tables/search",
                json={"query": "open support tickets by priority", "top_k": 3},
            )
            body = r.json()
            assert r.status_code == 200 and body["degraded"] is False, body
            assert body["tables"][0]["name"] == "tickets"
            worker = r.headers["x-dbmeta-worker"]
            answered[worker] = answered.get(worker, 0) + 1
            if len(answered) == 2 and min(answered.values()) >= 3:
                break
        assert set(answered) == set(ready), answered  # both workers answered, none degraded

        # The owner dies: the other worker takes the file over, uvicorn starts a new worker that follows it.
        owner = next(
            pid for pid, b in ready.items() if b["checks"]["search"]["index_owner"]["role"] == "owner"
        )  # type: ignore[index]
        os.kill(int(owner), signal.SIGKILL)
        after: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 240
        while len(after) < 2:
            assert time.monotonic() < deadline, f"ready workers after the owner died: {after}"
            try:
                r = _fresh(base, "GET", "/readyz")
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if r.status_code == 200 and r.headers["x-dbmeta-worker"] != owner:
                after[r.headers["x-dbmeta-worker"]] = r.json()
            time.sleep(0.1)
        roles = sorted(str(b["checks"]["search"]["index_owner"]["role"]) for b in after.values())  # type: ignore[index]
        assert roles == ["follower", "owner"]
        for _ in range(10):
            body = _fresh(base, "POST", "/v1/tables/search", json={"query": "salary of each employee"}).json()
            assert body["degraded"] is False and body["tables"][0]["name"] in {"salaries", "employees"}, body
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    # a clean stop removes the owner record: the CLI then works on the file itself
    assert not (tmp_path / "milvus.db.owner.json").exists()
