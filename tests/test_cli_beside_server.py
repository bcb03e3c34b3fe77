"""The CLI while a server runs on the same DATA_DIR (it holds the Milvus Lite file): a real uvicorn process.

The CLI runs as a user runs it, ``python -m dbmeta_app …`` in another process, with the same DATA_DIR.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
_LEAKY = ("DATABASE_URL", "PROFILES_FILE", "MILVUS_URI", "SEARCH_BACKEND", "DBMETA_URL", "ADMIN_TOKEN")


@dataclass
class Server:
    base: str
    data: Path
    proc: subprocess.Popen[bytes]


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env.update(DATA_DIR=str(data), REDIS_CACHE_ENABLED="false", HF_HUB_OFFLINE="1", SCHEMA_CHECK_INTERVAL="0")
    env.update(extra)
    return env


def _indexed(base: str) -> bool:
    try:
        body = httpx.get(f"{base}/readyz", timeout=5).json()
    except httpx.HTTPError:
        return False
    state = body["checks"].get("search", {}).get("profiles", {}).get("default", {})
    return state.get("state") == "ready" and state.get("examples", {}).get("state") == "ready"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("beside")
    port = free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dbmeta_app.main:app", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=_env(data, LOG_LEVEL="WARNING"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _indexed(base):
            assert proc.poll() is None, (data / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not index the sample warehouse"
            time.sleep(0.3)
        yield Server(base, data, proc)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def cli(data: Path, *args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbmeta_app", *args],
        cwd=cwd,
        env=_env(data, PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


def test_search_beside_the_server_gives_the_server_s_answer(server: Server) -> None:
    query = "which customers pay late"
    expected = httpx.post(f"{server.base}/v1/tables/search", json={"query": query, "top_k": 5}).json()
    assert expected["degraded"] is False
    result = cli(server.data, "search", query, "-k", "5")
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines()]
    assert names == [t["name"] for t in expected["tables"]]
    assert "degraded" not in result.stderr and server.base in result.stderr  # says who answered


def test_index_beside_the_server_is_done_by_the_server(server: Server) -> None:
    result = cli(server.data, "index")
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "tables: added 0 · updated 0 · removed 0 · unchanged 24 · embedded 0" in result.stderr
    assert "examples: added 0 · updated 0 · removed 0 · unchanged 37 · embedded 0" in result.stderr
    report = json.loads(cli(server.data, "index", "--json").stdout)
    assert report["profile"] == "default" and report["tables"]["unchanged"] == 24
    # the server did it: its own state records the sync
    state = httpx.get(f"{server.base}/readyz").json()["checks"]["search"]["profiles"]["default"]
    assert state["last_sync"]["unchanged"] == 24 and state["state"] == "ready"


def test_cache_stats_beside_the_server_are_the_server_s(server: Server) -> None:
    for _ in range(3):
        httpx.post(f"{server.base}/v1/prompt-items/schema", json={})
    schema = httpx.get(f"{server.base}/v1/cache/stats").json()["kinds"]["schema"]
    served = schema["hits"] + schema["memory_hits"]  # in-process cache: memory hits (no Redis here)
    assert served >= 3
    result = cli(server.data, "cache", "stats")
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["kinds"]["schema"]
    assert shown["hits"] + shown["memory_hits"] >= served


def test_cache_clear_beside_the_server_clears_the_server_s_cache(server: Server) -> None:
    first = httpx.post(f"{server.base}/v1/prompt-items/schema", json={}).json()["metadata"]
    assert httpx.post(f"{server.base}/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "hit"
    result = cli(server.data, "cache", "clear")
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "answered by the dbmeta server" in result.stderr + result.stdout, result.stdout + result.stderr
    assert "cleared 1 schema" in result.stderr, result.stderr  # the server's own entry
    again = httpx.post(f"{server.base}/v1/prompt-items/schema", json={}).json()["metadata"]
    assert again["cache"] == "miss" and again["schema_version"] == first["schema_version"]


def test_a_cli_on_another_database_gets_its_own_tables_and_no_search_from_the_server_s_index(
    server: Server, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE planets (planet_id INTEGER PRIMARY KEY, name TEXT)")
    url = f"sqlite:///{other}"
    schema = cli(server.data, "schema", DATABASE_URL=url)
    _no_traceback(schema)
    assert schema.returncode == 0 and "# planets" in schema.stdout and "# orders" not in schema.stdout
    found = cli(server.data, "search", "planet names", DATABASE_URL=url)
    _no_traceback(found)
    assert found.returncode == 2 and found.stdout == ""
    lines = found.stderr.strip().splitlines()
    assert len(lines) == 1 and "held by the dbmeta server" in lines[0] and server.base in lines[0]


def test_an_explicit_server_is_used_from_anywhere(server: Server, tmp_path: Path) -> None:
    result = cli(tmp_path, "search", "open support tickets by priority", "-k", "2", DBMETA_URL=server.base)
    _no_traceback(result)
    assert result.returncode == 0 and result.stdout.splitlines()[0].endswith("tickets")
    index = cli(tmp_path, "--server", server.base, "index")  # no ADMIN_TOKEN, no local token: refused
    _no_traceback(index)
    assert index.returncode == 2 and "unauthorized" in index.stderr
    local = cli(server.data, "--server", server.base, "index")  # the server on this DATA_DIR: its local token
    assert local.returncode == 0 and "unchanged 24" in local.stderr, local.stderr


def test_dbmeta_url_in_dot_env_names_the_server(server: Server, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DBMETA_URL={server.base}\n")
    result = cli(tmp_path / "elsewhere", "cache", "stats", cwd=tmp_path)
    _no_traceback(result)
    assert result.returncode == 0 and server.base in result.stderr and "no server runs" not in result.stderr


def test_a_lite_file_held_by_another_program_is_one_line_saying_so(tmp_path: Path) -> None:
    # e.g. an older dbmeta, or any program using Milvus Lite on that file: it holds Milvus Lite's own lock
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pymilvus import MilvusClient; "
            f"MilvusClient({str(tmp_path / 'milvus.db')!r}); print('held', flush=True); time.sleep(120)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        index = cli(tmp_path, "index")
        _no_traceback(index)
        lines = index.stderr.strip().splitlines()
        assert index.returncode == 2 and len(lines) == 1, index.stderr
        assert "cannot open the Milvus Lite file" in lines[0] and "another program holds it" in lines[0]
        found = cli(tmp_path, "search", "open support tickets by priority", "-k", "2")
        _no_traceback(found)
        assert found.returncode == 1 and found.stdout.splitlines()[0].endswith("tickets")
        assert "degraded" in found.stderr and "another program holds it" in found.stderr
    finally:
        holder.kill()
        holder.wait(10)
