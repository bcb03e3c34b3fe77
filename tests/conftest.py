"""Shared fixtures: settings on the sample warehouse, caches (memory, fakeredis, real Redis), real databases."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings, load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PG_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

# These variables would leak the developer's environment into the tests' settings.
for _var in (
    "DATABASE_URL",
    "PROFILES_FILE",
    "REDIS_URL",
    "DEFAULT_PROFILE",
    "CLIENT",
    "ENV",
    "ADMIN_TOKEN",
    "DBMETA_URL",
):
    os.environ.pop(_var, None)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


_EPHEMERAL = _ephemeral_range()
_HANDED_OUT: set[int] = set()
_PORTS = random.Random(os.getpid())


def free_port() -> int:
    """A loopback port that is free now and stays free until a test binds it.

    A port the kernel picked (bind to 0) can be reused by the kernel for the next outgoing connection
    before the server binds it, and the same port may come back twice before either is bound. So the port
    is drawn outside the ephemeral range, where the kernel never assigns ports on its own, and never twice
    in one process.
    """
    for _ in range(1000):
        port = _PORTS.randrange(20000, 30000)
        if port in _HANDED_OUT or port in _EPHEMERAL:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000-29999")


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Build Settings on the sample warehouse in a private data dir, Redis off unless asked."""

    def build(**overrides: Any) -> Settings:
        # keyword search by default: the model and Milvus Lite are exercised by the search tests
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "redis_cache_enabled": False,
            "search_backend": "keyword",
        }
        values.update(overrides)
        return load_settings(**values)

    return build


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    s: Settings = make_settings()
    return s


@pytest.fixture
async def fake_cache(settings: Settings) -> AsyncIterator[RedisCache]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server)
    cache = RedisCache(settings.model_copy(update={"redis_cache_enabled": True}), redis_client=client)
    cache.fake_server = server  # type: ignore[attr-defined]
    yield cache
    await cache.close()


@pytest.fixture(scope="session")
def real_redis() -> tuple[str, int]:
    if not port_open(REDIS_HOST, REDIS_PORT):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return REDIS_HOST, REDIS_PORT


class RedisProcess:
    """A private redis-server on a free port that a test can stop, freeze and restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _reachable(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> str:
    if not _reachable(PG_URL):
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    return PG_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    if not _reachable(MYSQL_URL):
        pytest.skip("MariaDB is not reachable at 127.0.0.1:3306")
    return MYSQL_URL


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one chDB database of the test session, with the bundled ClickHouse sample loaded (``analytics``).

    chDB runs one embedded server per process, bound to the first path opened: every test that uses chDB must
    use this URL (other databases in it are free), never a path of its own.
    """
    pytest.importorskip("chdb_sqlalchemy", reason="chDB is not installed (pip install 'dbmeta[chdb]')")
    from dbmeta_app.db.engines import materialize_clickhouse_sample

    url = f"chdb:///{tmp_path_factory.mktemp('chdb')}"
    materialize_clickhouse_sample(url)
    return url


# The Milvus standalone servers are session fixtures of the whole suite: defined here once, so the modules that
# use them share one server each (imported into each module, every module started its own).
from tests.milvus_server import milvus_server, milvus_server_auth, milvus_uri  # noqa: E402, F401
