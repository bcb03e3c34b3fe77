"""Scratch PostgreSQL databases for tests that need a database of their own, and a service pointed at one."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import RoutineGate


def pg_gate(engine: sa.Engine, sql: str) -> str | None:
    """The PostgreSQL routine gate's verdict on a statement the guard admits (nothing is sent to EXPLAIN)."""
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason
    with engine.connect() as conn:
        reason = RoutineGate("postgresql").check(conn, verdict.reach, sql)
        conn.rollback()
    return reason


def pg_database(pg_url: str, statements: Sequence[str], tag: str = "scratch") -> Iterator[sa.Engine]:
    """A new database, set up by its owner (``{db}`` in a statement is the database's name), then dropped.

    Yields the owner's engine, disposed after the set-up: its next sessions take what the set-up gave the
    database (``ALTER DATABASE … SET``). A generator for module fixtures: ``yield from pg_database(…)``.
    """
    db = f"dbm{uuid.uuid4().hex[:8]}_{tag}"
    server = sa.make_url(pg_url)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {db}")
    engine = sa.create_engine(server.set(database=db, drivername="postgresql+psycopg"))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.replace("{db}", db))
        engine.dispose()
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.dispose()


def url_of(engine: sa.Engine) -> str:
    """The engine's URL as a DATABASE_URL (password included)."""
    return engine.url.render_as_string(hide_password=False)


@contextmanager
def service(engine: sa.Engine, tmp: Path, **settings: Any) -> Iterator[TestClient]:
    """The service on the engine's database: keyword search, no Redis, no background schema checks."""
    defaults: dict[str, Any] = {
        "redis_cache_enabled": False,
        "search_backend": "keyword",
        "schema_check_interval": 0,
    }
    merged = {**defaults, **settings, "database_url": url_of(engine), "data_dir": tmp / "data"}
    with TestClient(create_app(load_settings(**merged))) as client:
        yield client


def run_child(script: str, *args: str, **popen: Any) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (its own process state: SQLite's heap cap, chDB's server) and return
    the JSON object its last line of output prints."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **popen,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer
