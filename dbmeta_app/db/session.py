"""A read-only, time-boxed, rolled-back transaction on a pooled connection, per dialect.

The one way the service runs anything on a profile's database that an untrusted party shaped: an EXPLAIN
built around LLM-written SQL, a sample read of a table the database defines. Blocking (SQLAlchemy sync
engines): use it from a worker thread. Every change made to the session is transaction-scoped or undone when
the transaction ends; whatever else a statement left behind (user variables, advisory or user locks,
temporary objects, prepared statements, settings) is reset right after the rollback, before the connection
goes back to the pool. A connection that cannot be reset is discarded, never lent out again.

- PostgreSQL: ``READ ONLY`` transaction; ``statement_timeout``/``lock_timeout`` and the planner's own bounds
  (collapse limits, GEQO on for wide joins, no partition-wise planning, no JIT) set transaction-local with
  ``set_config(..., true)``; ``DISCARD ALL`` after the rollback.
- MySQL/MariaDB: ``START TRANSACTION READ ONLY``; MariaDB bounds each statement with ``SET STATEMENT
  max_statement_time``, MySQL (whose ``max_execution_time`` does not cover EXPLAIN) with a ``KILL QUERY``
  watchdog; ``COM_RESET_CONNECTION`` after the rollback.
- SQLite: ``PRAGMA query_only``, a progress-handler deadline and an ``interrupt()`` watchdog; the preflight
  engine does not pool SQLite connections.
- ClickHouse (server or chDB): no transactions; every statement carries its own ``SETTINGS`` clause
  (``readonly = 2``, ``max_execution_time``, ``max_memory_usage``, result rows and bytes: see
  :func:`clickhouse_limits`), so nothing outlives the statement.
- DuckDB: the engine opens the file read-only without external access; the statement runs in SQLAlchemy's
  transaction, rolled back, with an ``interrupt()`` watchdog.

The server enforces those timeouts; a server that stops answering altogether (hung, frozen, a stalled network
path) enforces nothing, and the driver would wait on its socket for ever. So every statement on a
PostgreSQL or MySQL connection, the service's own catalog reads included, runs under a silence watchdog
(:func:`bound_silence`): when no answer came within its limit, the connection's socket is shut down, the
driver raises, and the connection is discarded.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Final

import sqlalchemy
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from dbmeta_app.dialects import dialect_family

try:  # psycopg 3 (the PostgreSQL driver the service installs); other drivers return JSON as text already
    from psycopg.types.string import TextLoader
except ImportError:  # pragma: no cover
    TextLoader = None  # type: ignore[assignment,misc]

__all__ = [
    "CALLER_PATH",
    "ReadOnlySession",
    "SessionRefused",
    "caller_search_path",
    "clickhouse_limits",
    "own_search_path_on_connect",
    "read_only_session",
    "use_own_search_path",
]

logger = logging.getLogger(__name__)

# PostgreSQL planner settings that bound planning work, each lowered to at most this (never raised):
# wide FROM lists go to GEQO instead of an exhaustive join search, and sub-queries and explicit JOINs are
# flattened into join problems of at most 8 items.
_PG_PLANNER_CAPS: Final = (("from_collapse_limit", 8), ("join_collapse_limit", 8), ("geqo_threshold", 12))
_PG_PLANNER_FIXED: Final = (
    ("geqo", "on"),
    ("geqo_effort", "1"),  # pool and generations of 50 (5: 250 each, 25× the work)
    ("geqo_pool_size", "0"),
    ("geqo_generations", "0"),
    ("enable_partitionwise_join", "off"),
    ("enable_partitionwise_aggregate", "off"),
    ("jit", "off"),
)
# Statements that run before the service's own search_path is set: every name spelled with its schema, no
# operator, no type name.
_PG_GET_PATH: Final = "SELECT pg_catalog.current_setting('search_path')"
_PG_OWN_PATH: Final = "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)"
_PG_OWN_SESSION_PATH: Final = "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)"
_PG_SET_PATH: Final = "SELECT pg_catalog.set_config('search_path', :path, true)"
#: Key of ``Connection.info`` (kept for the connection's life) holding the database's own search_path.
CALLER_PATH: Final = "dbmeta_caller_search_path"
OWN_SESSION_PATH: Final = "dbmeta_own_session_search_path"  # set by the connect hook
# COM_RESET_CONNECTION (MySQL 5.7.3+, MariaDB 10.2.4+): PyMySQL has the command code but no method for it.
_COM_RESET_CONNECTION: Final = 0x1F


#: Bounds of every statement the service runs on ClickHouse (seconds and bytes are set from the profile's timeout).
MAX_MEMORY_BYTES: Final = 1_000_000_000
#: chDB runs in the service's own process (EXPLAIN evaluates scalar subqueries and builds IN sets: +1 GB of the
#: process at the server's bound, measured): a tighter bound there.
CHDB_MAX_MEMORY_BYTES: Final = 256_000_000
MAX_RESULT_ROWS: Final = 10_000
MAX_RESULT_BYTES: Final = 10_000_000


def clickhouse_limits(timeout_ms: int, *, in_process: bool = False) -> str:
    """Return the SETTINGS clause that bounds one statement: read-only, time, memory, result size."""
    seconds = max(1, -(-int(timeout_ms) // 1000))
    memory = CHDB_MAX_MEMORY_BYTES if in_process else MAX_MEMORY_BYTES
    return (
        f" SETTINGS readonly = 2, max_execution_time = {seconds}, timeout_overflow_mode = 'throw',"
        f" max_memory_usage = {memory}, max_result_rows = {MAX_RESULT_ROWS},"
        f" max_result_bytes = {MAX_RESULT_BYTES}, result_overflow_mode = 'break',"
        " allow_introspection_functions = 0"
    )


def own_search_path_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    """Pool ``connect`` hook of PostgreSQL engines: the service's search_path, before anything else runs.

    Set for the session (SQLAlchemy's own first queries, introspection and fingerprints included) and again
    after every ``DISCARD ALL``; the database's own path is kept beside the connection for the caller's
    statement (:func:`caller_search_path`). See :func:`use_own_search_path` for why.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_PG_GET_PATH)
        path = cursor.fetchone()[0]
        cursor.execute(_PG_OWN_SESSION_PATH)
    finally:
        cursor.close()
    dbapi_connection.commit()  # a session setting made in a transaction that is rolled back is undone
    connection_record.info[CALLER_PATH] = path
    connection_record.info[OWN_SESSION_PATH] = True


def use_own_search_path(conn: Connection) -> None:
    """In a PostgreSQL transaction just begun: run the service's own statements with pg_catalog alone.

    The database chooses the session's search_path (ALTER DATABASE / ROLE … SET search_path), and a function
    of any schema on it that matches an argument type better than the built-in wins even over pg_catalog (a
    ``public.unnest(text[])``), as does any look-alike placed before pg_catalog: every statement the service
    writes runs with ``pg_catalog, pg_temp``, set transaction-locally by a call spelled in full. The database's
    own path is kept for what must resolve names the way the caller's statement does (:func:`caller_search_path`).
    """
    if CALLER_PATH not in conn.info:
        # an engine without the connect hook: the session's path is still the database's
        conn.info[CALLER_PATH] = conn.exec_driver_sql(_PG_GET_PATH).scalar_one()
    conn.exec_driver_sql(_PG_OWN_PATH)


@contextlib.contextmanager
def caller_search_path(conn: Connection) -> Iterator[None]:
    """Run the enclosed statements with the database's own search_path (PostgreSQL read-only sessions).

    What resolves names the way the caller's statement will (to_regclass, current_schemas) runs here, and
    must itself be spelled in full: schema-qualified functions and types, no operators. Outside, the
    service's own path (pg_catalog alone) is back.
    """
    path = conn.info.get(CALLER_PATH)
    if path is None:
        yield
        return
    conn.execute(sqlalchemy.text(_PG_SET_PATH), {"path": path})
    yield
    # Not after a failure: the transaction is then aborted, and only the rollback comes next.
    conn.exec_driver_sql(_PG_OWN_PATH)


class SessionRefused(Exception):
    """The database would not open a read-only transaction (e.g. a server without READ ONLY support)."""


class ReadOnlySession:
    """A connection inside a read-only, time-boxed transaction; :meth:`run` executes one statement."""

    def __init__(self, conn: Connection, backend: str, timeout_ms: int, run: Callable[[str], Any]) -> None:
        self.conn = conn
        self.backend = backend
        self.timeout_ms = timeout_ms
        self._run = run
        self.timed_out = False  # set when a watchdog cancelled the statement

    def run(self, sql: str) -> Any:
        """Execute a statement built by the service and return its SQLAlchemy result."""
        return self._run(sql)


@contextlib.contextmanager
def read_only_session(
    engine: sqlalchemy.Engine, timeout_ms: int, *, mysql_timeout: str | None = None
) -> Iterator[ReadOnlySession]:
    """Open a read-only, time-boxed transaction on a pooled connection; it is always rolled back and reset.

    ``mysql_timeout`` picks how a MySQL-family statement is bounded: "statement" (MariaDB's SET STATEMENT)
    or "watchdog" (KILL QUERY from a second connection); by default whatever the server supports.
    Raises what the driver raises (``DBAPIError``, pool errors) and :class:`SessionRefused`.
    """
    backend = engine.dialect.name
    timeout_ms = max(1, int(timeout_ms))
    with engine.connect() as conn:
        conn.execution_options(no_parameters=True)
        # Each statement's own limit is enforced by the server; one the server leaves unanswered is cut here.
        conn.info[SILENCE_KEY] = 2 * timeout_ms / 1000 + 2
        try:
            with _opened(engine, conn, backend, timeout_ms, mysql_timeout) as session:
                yield session
        finally:
            if not conn.invalidated:  # an invalidated connection's info goes with it
                conn.info.pop(SILENCE_KEY, None)


def _opened(
    engine: sqlalchemy.Engine, conn: Connection, backend: str, timeout_ms: int, mysql_timeout: str | None
) -> contextlib.AbstractContextManager[ReadOnlySession]:
    """The dialect's read-only session on ``conn``."""
    if backend == "postgresql":
        return _postgres(conn, timeout_ms)
    if backend in ("mysql", "mariadb"):
        mariadb = bool(getattr(engine.dialect, "is_mariadb", False)) or backend == "mariadb"
        per_statement = mariadb if mysql_timeout is None else mysql_timeout == "statement"
        return _mysql(engine, conn, timeout_ms, mariadb=per_statement)
    if backend == "sqlite":
        return _sqlite(conn, timeout_ms)
    if dialect_family(backend) == "clickhouse":
        return _clickhouse(conn, timeout_ms)
    if backend == "duckdb":
        return _duckdb(conn, timeout_ms)
    return _generic(conn, timeout_ms)


@contextlib.contextmanager
def _postgres(conn: Connection, timeout_ms: int) -> Iterator[ReadOnlySession]:
    try:
        raw: Any = conn.connection.dbapi_connection
        if hasattr(raw, "prepare_threshold") and TextLoader is not None:
            # psycopg prepares a statement run 5 times, and its cache cannot follow the DISCARD ALL below:
            # this connection never prepares (a one-off EXPLAIN gains nothing from it).
            raw.prepare_threshold = None
            # EXPLAIN (FORMAT JSON) returns json, which psycopg would decode whole (a 50 MB plan: gigabytes of
            # Python objects): this connection reads json as text, for the caller to decode what it can afford.
            raw.adapters.register_loader("json", TextLoader)
            raw.adapters.register_loader("jsonb", TextLoader)
        # In autocommit mode nothing has begun a transaction, and SET TRANSACTION would be a no-op.
        begin = "BEGIN READ ONLY" if getattr(raw, "autocommit", False) else "SET TRANSACTION READ ONLY"
        conn.exec_driver_sql(begin)
        use_own_search_path(conn)
        idle_ms = max(1000, 2 * timeout_ms)
        caps = ", ".join(
            f"set_config('{name}', least(current_setting('{name}')::int, {cap})::text, true)"
            for name, cap in _PG_PLANNER_CAPS
        )
        fixed = ", ".join(f"set_config('{name}', '{value}', true)" for name, value in _PG_PLANNER_FIXED)
        read_only = conn.exec_driver_sql(
            f"SELECT set_config('statement_timeout', '{timeout_ms}', true),"
            f" set_config('lock_timeout', '{timeout_ms}', true),"
            f" set_config('idle_in_transaction_session_timeout', '{idle_ms}', true),"
            # pglast writes standard strings; never let the server read backslashes as escapes.
            " set_config('standard_conforming_strings', 'on', true),"
            f" {caps}, {fixed},"
            " current_setting('transaction_read_only')"
        ).one()[-1]
        if read_only != "on":
            raise SessionRefused("could not open a read-only transaction")
        yield ReadOnlySession(conn, "postgresql", timeout_ms, conn.exec_driver_sql)
    finally:
        # DISCARD ALL gives the session the database's search_path back: the service's is set again where the
        # connect hook had set it.
        hooked = bool(conn.info.get(OWN_SESSION_PATH))
        _end(conn, _reset_postgres_to_own_path if hooked else _reset_postgres)


@contextlib.contextmanager
def _mysql(
    engine: sqlalchemy.Engine, conn: Connection, timeout_ms: int, *, mariadb: bool
) -> Iterator[ReadOnlySession]:
    seconds = timeout_ms / 1000
    try:
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
        if mariadb:
            # Statement-scoped settings: the session's own values are never touched.
            prefix = (
                f"SET STATEMENT max_statement_time={seconds:.3f}, "
                f"lock_wait_timeout={max(1, math.ceil(seconds))} FOR "
            )
            yield ReadOnlySession(conn, "mysql", timeout_ms, lambda sql: conn.exec_driver_sql(prefix + sql))
            return
        # MySQL's max_execution_time does not cover EXPLAIN: cancel from a second connection.
        connection_id = int(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
        session: ReadOnlySession

        def run(sql: str) -> Any:
            watchdog = _Watchdog(seconds, _mysql_killer(engine, connection_id))
            try:
                with watchdog:
                    return conn.exec_driver_sql(sql)
            finally:
                session.timed_out = session.timed_out or watchdog.fired

        session = ReadOnlySession(conn, "mysql", timeout_ms, run)
        yield session
    finally:
        _end(conn, _reset_mysql)


def _mysql_killer(engine: sqlalchemy.Engine, connection_id: int) -> Callable[[], None]:
    """Return an action that cancels the running statement of a connection, from outside the pool."""

    def kill() -> None:
        # A fresh DBAPI connection: the pool may have no connection left to lend.
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        raw = engine.dialect.connect(*cargs, **cparams)
        try:
            cursor = raw.cursor()
            cursor.execute(f"KILL QUERY {connection_id:d}")
            cursor.close()
        finally:
            raw.close()

    return kill


@contextlib.contextmanager
def _sqlite(conn: Connection, timeout_ms: int) -> Iterator[ReadOnlySession]:
    seconds = timeout_ms / 1000
    deadline = time.monotonic() + seconds
    raw = conn.connection.dbapi_connection
    set_progress = getattr(raw, "set_progress_handler", None)
    interrupt = getattr(raw, "interrupt", None)
    previous = conn.exec_driver_sql("PRAGMA query_only").scalar()
    session: ReadOnlySession

    def run(sql: str) -> Any:
        # The progress handler only runs while the VDBE steps; interrupt() also stops a long prepare.
        watchdog = _Watchdog(
            max(0.0, deadline - time.monotonic()), interrupt if callable(interrupt) else _nothing
        )
        try:
            with watchdog:
                return conn.exec_driver_sql(sql)
        finally:
            session.timed_out = session.timed_out or watchdog.fired or time.monotonic() > deadline

    try:
        conn.exec_driver_sql("PRAGMA query_only = ON")
        if callable(set_progress):
            set_progress(lambda: int(time.monotonic() > deadline), 1000)
        session = ReadOnlySession(conn, "sqlite", timeout_ms, run)
        yield session
    finally:
        try:
            if callable(set_progress):
                set_progress(None, 0)
            conn.exec_driver_sql(f"PRAGMA query_only = {1 if previous else 0}")
            conn.rollback()
        except SQLAlchemyError:
            conn.invalidate()  # query_only could not be restored: never pool it again


@contextlib.contextmanager
def _clickhouse(conn: Connection, timeout_ms: int) -> Iterator[ReadOnlySession]:
    settings = clickhouse_limits(timeout_ms, in_process=conn.dialect.name == "chdb")

    def run(sql: str) -> Any:
        statement = sql + settings
        try:
            return conn.exec_driver_sql(statement)
        except SQLAlchemyError:
            raise
        except Exception as exc:
            # chDB raises its own error class when a statement runs without parameters: make it a driver error.
            raise sqlalchemy.exc.DatabaseError(statement, None, exc) from exc

    try:
        yield ReadOnlySession(conn, "clickhouse", timeout_ms, run)
    finally:
        try:
            conn.rollback()  # no transaction on the server; SQLAlchemy's bookkeeping only
        except SQLAlchemyError:
            conn.invalidate()


@contextlib.contextmanager
def _duckdb(conn: Connection, timeout_ms: int) -> Iterator[ReadOnlySession]:
    seconds = timeout_ms / 1000
    interrupt = getattr(conn.connection.dbapi_connection, "interrupt", None)
    session: ReadOnlySession

    def run(sql: str) -> Any:
        watchdog = _Watchdog(seconds, interrupt if callable(interrupt) else _nothing)
        try:
            with watchdog:
                return conn.exec_driver_sql(sql)
        finally:
            session.timed_out = session.timed_out or watchdog.fired

    try:
        session = ReadOnlySession(conn, "duckdb", timeout_ms, run)
        yield session
    finally:
        try:
            conn.rollback()
        except SQLAlchemyError:
            conn.invalidate()


@contextlib.contextmanager
def _generic(conn: Connection, timeout_ms: int) -> Iterator[ReadOnlySession]:
    """Dialects without a tested read-only transaction (Trino, others): the statement alone."""
    try:
        yield ReadOnlySession(conn, conn.dialect.name, timeout_ms, conn.exec_driver_sql)
    finally:
        _end(conn, None)


def _nothing() -> None:
    return None


def _end(conn: Connection, reset: Callable[[Any], None] | None) -> None:
    """End our transaction explicitly (also right in autocommit mode), then reset the session's state."""
    if conn.invalidated:
        return
    try:
        conn.exec_driver_sql("ROLLBACK")
        conn.rollback()
        if reset is not None:
            reset(conn.connection.dbapi_connection)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the connection must not be lent out again
        logger.info("discarding a connection whose session could not be reset: %s", type(exc).__name__)
        conn.invalidate()


class _Watchdog:
    """Run an action once after a delay unless disarmed first, and never after disarming returns.

    Armed around every statement (the silence bound, the MySQL and SQLite cancels): one process-wide timer
    thread keeps the deadlines (:class:`_Deadlines`), where a thread per statement cost ~0.1 ms each.
    """

    def __init__(self, seconds: float, action: Callable[[], None]) -> None:
        self._action = action
        self._seconds = seconds
        self._lock = threading.Lock()
        self._armed = False
        self.fired = False

    def __enter__(self) -> _Watchdog:
        self._armed = True
        _DEADLINES.add(time.monotonic() + self._seconds, self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Taking the lock waits out a running action, so it cannot hit the next statement.
        with self._lock:
            self._armed = False
        _DEADLINES.disarmed()

    @property
    def armed(self) -> bool:
        return self._armed

    def fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            try:
                self._action()
            except Exception as exc:  # noqa: BLE001 - a failed cancel must not kill the timer thread
                logger.warning("could not cancel a slow statement: %s", type(exc).__name__)


class _Deadlines:
    """The deadlines of armed watchdogs, kept by one daemon thread per process (started on first use, again
    in a forked child). A watchdog that is due fires on a thread of its own: its action may block (the MySQL
    cancel opens a connection) and must not hold up the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._order = itertools.count()
        self._pid = 0
        self._disarmed = 0

    def add(self, deadline: float, watchdog: _Watchdog) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first use in this process
                self._pid, self._heap, self._disarmed = os.getpid(), [], 0
                threading.Thread(target=self._run, name="dbmeta-watchdog", daemon=True).start()
            heapq.heappush(self._heap, (deadline, next(self._order), watchdog))
            if self._heap[0][2] is watchdog:
                self._cond.notify()

    def disarmed(self) -> None:
        with self._cond:
            self._disarmed += 1
            if self._disarmed > 1024 and self._disarmed > len(self._heap) // 2:
                # most entries are of statements long done: drop them rather than keep them to their deadline
                self._heap = [entry for entry in self._heap if entry[2].armed]
                heapq.heapify(self._heap)
                self._disarmed = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, watchdog = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if watchdog.armed:
                threading.Thread(target=watchdog.fire, name="dbmeta-watchdog-fire", daemon=True).start()


_DEADLINES: Final = _Deadlines()


# --- session resets (after the rollback, so nothing a statement left behind reaches the next user) -----


def _reset_postgres(dbapi_connection: Any) -> None:
    # DISCARD ALL cannot run inside a transaction block; psycopg forgets its prepared statements when it sees it.
    previous = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("DISCARD ALL", prepare=False)
    finally:
        dbapi_connection.autocommit = previous


def _reset_postgres_to_own_path(dbapi_connection: Any) -> None:
    _reset_postgres(dbapi_connection)
    own_path = dbapi_connection.cursor()
    try:
        own_path.execute(_PG_OWN_SESSION_PATH)
    finally:
        own_path.close()
    dbapi_connection.commit()


def _reset_mysql(dbapi_connection: Any) -> None:
    execute: Callable[[int, bytes], None] | None = getattr(dbapi_connection, "_execute_command", None)
    read_ok: Callable[[], Any] | None = getattr(dbapi_connection, "_read_ok_packet", None)
    if execute is None or read_ok is None:
        raise RuntimeError("this MySQL driver cannot reset a connection; it is discarded instead")
    execute(_COM_RESET_CONNECTION, b"")
    read_ok()  # user variables, temporary tables, prepared statements, GET_LOCK locks, settings: gone
    # The reset restores the server's defaults: redo what the driver did at connect time, in its order.
    charset = getattr(dbapi_connection, "charset", None)
    if isinstance(charset, str):
        dbapi_connection.set_character_set(charset, getattr(dbapi_connection, "collation", None))
    init_command = getattr(dbapi_connection, "init_command", None)
    if isinstance(init_command, str) and init_command:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(init_command)
        finally:
            cursor.close()
    autocommit = getattr(dbapi_connection, "autocommit_mode", None)
    if isinstance(autocommit, bool):
        dbapi_connection.autocommit(autocommit)


# --- a server that stops answering -----------------------------------------------------------------

#: How long any statement may go unanswered (catalog reads of a large warehouse included) before its
#: connection is cut; a read-only session sets a tighter limit from its own timeout (``SILENCE_KEY``).
SILENCE_SECONDS: Final = 60.0
SILENCE_KEY: Final = "dbmeta_silence_seconds"
PING_SILENCE_SECONDS: Final = 2.0  # the pool's pre-ping on checkout: a live server answers in milliseconds
_WATCH_KEY: Final = "dbmeta_silence_watch"


def bound_silence(engine: sqlalchemy.Engine) -> None:
    """Cut a PostgreSQL/MySQL connection whose server does not answer a statement within its limit."""
    if engine.dialect.name not in ("postgresql", "mysql", "mariadb"):
        return  # in process (SQLite, DuckDB, chDB: interrupt watchdogs), or HTTP clients with their own timeouts
    sqlalchemy.event.listen(engine, "before_cursor_execute", _arm_silence)
    sqlalchemy.event.listen(engine, "after_cursor_execute", _disarm_silence)
    sqlalchemy.event.listen(engine, "handle_error", _disarm_silence_on_error)
    # whatever path a statement ended by, a connection goes back to the pool with no watchdog left armed
    sqlalchemy.event.listen(engine.pool, "checkin", _disarm_on_checkin)
    # The pool's pre-ping (on every checkout) talks to the server without those events.
    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        with _Watchdog(PING_SILENCE_SECONDS, lambda: _cut(dbapi_connection)):
            return ping(dbapi_connection)

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def _arm_silence(conn: Connection, *_: Any) -> None:
    _disarm_silence(conn)  # one watchdog per connection: one left armed would cut the next statement
    seconds = float(conn.info.get(SILENCE_KEY, SILENCE_SECONDS))
    raw = conn.connection.dbapi_connection
    watchdog = _Watchdog(seconds, lambda: _cut(raw))
    conn.info[_WATCH_KEY] = watchdog
    watchdog.__enter__()


def _disarm_silence(conn: Connection, *_: Any) -> None:
    watchdog = conn.info.pop(_WATCH_KEY, None)
    if watchdog is not None:
        watchdog.__exit__(None, None, None)


def _disarm_silence_on_error(context: Any) -> None:
    conn = getattr(context, "connection", None)
    if conn is not None:
        _disarm_silence(conn)


def _disarm_on_checkin(_dbapi_connection: Any, record: Any) -> None:
    info = getattr(record, "info", None)
    watchdog = info.pop(_WATCH_KEY, None) if isinstance(info, dict) else None
    if watchdog is not None:
        watchdog.__exit__(None, None, None)


def _cut(raw: Any) -> None:
    """Shut down a DBAPI connection's socket: the driver's blocked read returns, and it raises."""
    pgconn = getattr(raw, "pgconn", None)  # psycopg 3
    fd = getattr(pgconn, "socket", None) if pgconn is not None else None
    sock = getattr(raw, "_sock", None)  # PyMySQL
    if isinstance(sock, socket.socket):
        fd = sock.fileno()
    if not isinstance(fd, int) or fd < 0:
        return
    logger.warning("the database did not answer a statement in time: cutting its connection")
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as cut:
        cut.shutdown(socket.SHUT_RDWR)


def connection_failure(orig: BaseException) -> str:
    """Describe a connection failure without host, port, user or database names."""
    lowered = str(orig).lower()
    for needle, summary in (
        ("refused", "connection refused"),
        ("timed out", "connection timed out"),
        ("timeout", "connection timed out"),
        ("password", "authentication failed"),
        ("authentication", "authentication failed"),
        ("access denied", "authentication failed"),
        ("gone away", "connection lost"),
        ("lost connection", "connection lost"),
        ("terminat", "connection lost"),
        ("closed", "connection lost"),
        ('role "', "authentication failed"),  # PostgreSQL: role "x" does not exist
        ("does not exist", "database does not exist"),
        ("unknown database", "database does not exist"),
        ("unable to open", "the database file cannot be opened"),
        ("the driver could not connect", "the driver could not connect"),  # engines: a driver's own error
    ):
        if needle in lowered:
            return f"database connection failed: {summary}"
    return f"database connection failed ({type(orig).__name__})"
