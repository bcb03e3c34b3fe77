"""Engines for a profile's database (created without connecting) and the bundled sample warehouse."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.config import Profile, sample_file
from dbmeta_app.db.session import bound_silence, own_search_path_on_connect
from dbmeta_app.errors import ConfigError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
#: DuckDB runs in the service's process: every connection the service opens to a DuckDB file may allocate at most
#: this much (a sample read of a 300 MB value, stored compressed in an 800 KB file, loaded it whole: 1.1 GB RSS).
#: A statement that needs more fails (an error verdict, a table not sampled); nothing is spilled to disk.
DUCKDB_MEMORY_LIMIT = 256 * 1024 * 1024
#: SQLite plans in the service's process too, and nothing stops it while it expands views and CTEs (a caller's CTE
#: chain: 5.3 GB, then a MemoryError). Its heap is capped: an allocation past this fails (SQLITE_NOMEM, which the
#: sqlite3 module raises as MemoryError: a "limit" verdict, preflight/explain.py) and the connection stays usable.
#: The cap is SQLite's, for the whole process (every SQLite connection of the service shares it), and only ever
#: lowered (``PRAGMA hard_heap_limit`` cannot raise it).
SQLITE_HARD_HEAP_LIMIT = 256 * 1024 * 1024


class HeapLimitedSQLite(sqlite3.Connection):
    """A sqlite3 connection that sets SQLite's hard heap limit (:data:`SQLITE_HARD_HEAP_LIMIT`) when it opens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute(f"PRAGMA hard_heap_limit = {int(SQLITE_HARD_HEAP_LIMIT)}").close()


def _connect_args(dialect: str) -> dict[str, Any]:
    if dialect == "postgresql":
        # The database chooses its sessions' defaults (ALTER DATABASE / ROLE … SET); a startup parameter wins
        # over them: the service decodes text as UTF-8 (SQL_ASCII made psycopg return bytes: every route a 500).
        return {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "dbmeta", "client_encoding": "utf8"}
    if dialect in ("mysql", "mariadb"):
        return {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": 60, "write_timeout": 60}
    if dialect == "sqlite":
        return {"timeout": CONNECT_TIMEOUT_S, "check_same_thread": False, "factory": HeapLimitedSQLite}
    if dialect == "duckdb":
        # no files, URLs, extensions or ATTACH from any query, whatever the guard let through; bounded memory,
        # and no temporary files beside the database (temp_directory '' disables spilling)
        return {
            "config": {
                "enable_external_access": False,
                "memory_limit": f"{DUCKDB_MEMORY_LIMIT // 2**20}MiB",
                "temp_directory": "",
            }
        }
    return {}


def create_profile_engine(profile: Profile, *, pool_size: int = 5, preflight: bool = False) -> Engine:
    """Create (without connecting) an engine for the profile's database.

    ``preflight``: the pool for EXPLAINs and sample reads, sized to the profile's concurrency bound (which
    admits no more than that at once, so nobody waits here), without psycopg's prepared statements (reset
    after each use), and without pooling for SQLite (a fresh connection is cheap and has no leftover state).
    """
    url = profile.database_url.get_secret_value()
    connect_args = _connect_args(profile.dialect)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "connect_args": connect_args}
    if preflight and profile.dialect == "postgresql":
        connect_args["prepare_threshold"] = None
    if profile.dialect == "duckdb" and ":memory:" not in url and not url.endswith(":///"):
        connect_args["read_only"] = True
    if preflight and profile.dialect == "sqlite" and ":memory:" not in url and "mode=memory" not in url:
        kwargs["poolclass"] = sa.pool.NullPool
    elif profile.dialect != "sqlite":
        overflow = 0 if preflight else pool_size
        kwargs.update(pool_size=pool_size, max_overflow=overflow, pool_timeout=10, pool_recycle=1800)
    try:
        engine = sa.create_engine(url, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"profile {profile.name!r}: cannot use its database URL ({exc})") from None
    if engine.dialect.name == "postgresql":
        # First of the connect hooks, before SQLAlchemy's own first queries (its current_schema() included).
        sa.event.listen(engine, "connect", own_search_path_on_connect, insert=True)
    bound_silence(engine)  # a server that stops answering cuts the connection, never hangs a worker
    _driver_errors_as_database_errors(engine)
    return engine


def _driver_errors_as_database_errors(engine: Engine) -> None:
    """A driver that fails to connect with a plain Python error (PyMySQL with ``?charset=bogus``: an
    AttributeError) fails like a database that cannot be reached: a 503 naming the profile, not a 500."""
    dbapi = getattr(engine.dialect, "dbapi", None)
    error, operational = getattr(dbapi, "Error", None), getattr(dbapi, "OperationalError", None)
    if not (isinstance(error, type) and issubclass(error, Exception)) or not isinstance(operational, type):
        return  # a driver without the DBAPI's exception classes: its errors stay its own
    connect = engine.dialect.connect

    def guarded(*cargs: Any, **cparams: Any) -> Any:
        try:
            return connect(*cargs, **cparams)
        except error:
            raise
        except Exception as exc:  # any driver failure to connect is the database's
            raise operational(f"the driver could not connect ({type(exc).__name__})") from exc

    engine.dialect.connect = guarded  # type: ignore[method-assign]


def materialize_sample(path: Path) -> None:
    """Create the bundled sample warehouse (SQLite) at path unless it already exists."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"DATA_DIR: cannot create {str(path.parent)!r} ({exc.strerror or exc})") from None
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    script = sample_file("warehouse.sql").read_text(encoding="utf-8")
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(script)
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)  # atomic: a concurrent reader sees no half-built file
    log.info("Created the sample warehouse at %s", path)


def materialize_clickhouse_sample(url: str, engine: sa.Engine | None = None) -> None:
    """Load the bundled ClickHouse sample into the chDB database at url unless it is already there.

    ``engine``: the profile's own (kept open): chDB keeps a loaded dictionary only while a connection of the
    process stays open, so the sample's dictionary is loaded through the engine that will serve it.
    """
    script = sample_file("clickhouse_warehouse.sql").read_text(encoding="utf-8")
    own = engine is None
    engine = engine if engine is not None else sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            # the dictionary is created last: present means the whole script ran
            done = conn.exec_driver_sql(
                "SELECT count() FROM system.tables WHERE database = 'analytics' AND name = 'product_names'"
            ).scalar()
            if not done:
                conn.exec_driver_sql("DROP DATABASE IF EXISTS analytics")
                # statements end with a semicolon at the end of a line (the script says so)
                for statement in script.split(";\n"):
                    code = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
                    if code.strip():
                        conn.exec_driver_sql(code)
                log.info("Created the ClickHouse sample warehouse (chDB)")
            # A preflight never loads a dictionary (docs/SECURITY.md); the sample is the service's own, so its
            # dictionary is loaded here, in each process that opens it (chDB loads dictionaries per process).
            conn.exec_driver_sql("SYSTEM RELOAD DICTIONARY analytics.product_names")
    finally:
        if own:
            engine.dispose()
