"""Per-process runtime: settings, the cache and one set of engines per profile, opened in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.cache.keys import Scope, database_identity
from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Profile, Settings, sample_file
from dbmeta_app.errors import ConfigError
from dbmeta_app.preflight.admission import Admission
from dbmeta_app.preflight.policy import RoutineGate
from dbmeta_app.preflight.privileges import PrivilegeCheck
from dbmeta_app.schema.descriptions import Descriptions, load_descriptions

if TYPE_CHECKING:
    from dbmeta_app.ownership import Anchor
    from dbmeta_app.search.runtime import SearchRuntime

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5


def _connect_args(dialect: str) -> dict[str, Any]:
    if dialect == "postgresql":
        return {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "dbmeta"}
    if dialect in ("mysql", "mariadb"):
        return {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": 60, "write_timeout": 60}
    if dialect == "sqlite":
        return {"timeout": CONNECT_TIMEOUT_S, "check_same_thread": False}
    if dialect == "duckdb":
        # no files, URLs, extensions or ATTACH from any query, whatever the guard let through
        return {"config": {"enable_external_access": False}}
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
        return sa.create_engine(url, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"profile {profile.name!r}: cannot use its database URL ({exc})") from None


def materialize_sample(path: Path) -> None:
    """Create the bundled sample warehouse (SQLite) at path unless it already exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
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


def materialize_clickhouse_sample(url: str) -> None:
    """Load the bundled ClickHouse sample into the chDB database at url unless it is already there."""
    script = sample_file("clickhouse_warehouse.sql").read_text(encoding="utf-8")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            # the dictionary is created last: present means the whole script ran
            done = conn.exec_driver_sql(
                "SELECT count() FROM system.tables WHERE database = 'analytics' AND name = 'product_names'"
            ).scalar()
            if done:
                return
            conn.exec_driver_sql("DROP DATABASE IF EXISTS analytics")
            # statements end with a semicolon at the end of a line (the script says so)
            for statement in script.split(";\n"):
                code = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
                if code.strip():
                    conn.exec_driver_sql(code)
        log.info("Created the ClickHouse sample warehouse (chDB)")
    finally:
        engine.dispose()


def file_digest(path: Path | None) -> str:
    """Hash a file's content (empty string for no file), so its edits change cache keys."""
    if path is None:
        return ""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


@dataclass
class DatabaseHealth:
    """What this process last learned about a profile's database: that it answered, or why it did not."""

    error: str | None = None  # the failure's class name while the database does not answer
    down_since: float | None = None  # wall-clock time of the first failure in a row
    checked_at: float | None = None  # monotonic time of the last contact; None: never contacted
    ping: asyncio.Future[None] | None = None  # the running background ping, if any

    def record(self, error: BaseException | None) -> None:
        """Note the outcome of a contact with the database (None: it answered)."""
        self.checked_at = time.monotonic()
        if error is None:
            self.error, self.down_since = None, None
            return
        if self.error is None:
            self.down_since = time.time()
        self.error = type(error).__name__

    def age(self) -> float | None:
        """Seconds since the last contact (None: never contacted)."""
        return None if self.checked_at is None else time.monotonic() - self.checked_at

    def reason(self) -> str | None:
        """Why cached answers are stale, while the database does not answer."""
        if self.error is None:
            return None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.down_since or time.time()))
        return f"database unavailable since {since} ({self.error}); serving the last snapshot read from it"


@dataclass
class ProfileRuntime:
    """A profile with its open resources: the introspection engine, the preflight engine, curated files."""

    profile: Profile
    engine: Engine
    descriptions: Descriptions
    descriptions_digest: str
    #: Whose cached values and indexes these are (deployment, profile, the database's identity): every key
    #: and Milvus name of the profile is built from it.
    scope: Scope
    health: DatabaseHealth = field(default_factory=DatabaseHealth)
    keys: dict[Any, str] = field(default_factory=dict)  # memoised cache keys (their inputs never change)
    #: The role's latest privilege report (preflight/privileges.py).
    privileges: PrivilegeCheck = field(default_factory=PrivilegeCheck)
    _routines: RoutineGate | None = None
    # the bound on concurrent EXPLAINs and sample reads, from the profile's preflight limits
    admission: Admission = field(init=False, repr=False)
    _preflight_engine: Engine | None = None
    _limiter: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        limits = self.profile.preflight
        self.admission = Admission(limits.concurrency, limits.queue, limits.queue_wait_ms / 1000)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def preflight_engine(self) -> Engine:
        """A pool kept apart from introspection, created on first use (EXPLAINs and sample reads)."""
        with self._lock:
            if self._preflight_engine is None:
                size = self.profile.preflight.concurrency
                self._preflight_engine = create_profile_engine(self.profile, pool_size=size, preflight=True)
            return self._preflight_engine

    @property
    def routines(self) -> RoutineGate:
        """The routine policy of this profile, with its cached catalog facts (preflight/policy.py)."""
        with self._lock:
            if self._routines is None:
                self._routines = RoutineGate(self.dialect, self.profile.preflight.allow_functions)
            return self._routines

    def thread_limiter(self) -> anyio.CapacityLimiter:
        """Worker threads for this profile's database work, apart from the process's shared ones (per loop)."""
        loop = asyncio.get_running_loop()
        held = self._limiter
        if held is None or held[0] is not loop:
            held = self._limiter = (loop, anyio.CapacityLimiter(self.profile.preflight.concurrency))
        return held[1]

    def ping_database(self) -> None:
        """Connect and run ``SELECT 1`` (blocking), noting the outcome in ``health``; raise on failure."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            self.health.record(exc)
            raise
        self.health.record(None)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._preflight_engine is not None:
            self._preflight_engine.dispose()


def profile_scope(settings: Settings | None, profile: Profile, engine: Engine | None = None) -> Scope:
    """The cache scope of a profile: this deployment's CLIENT and ENV, the profile, its database's identity."""
    client = settings.client if settings is not None else Settings.model_fields["client"].default
    env = settings.env if settings is not None else Settings.model_fields["env"].default
    url = engine.url if engine is not None else profile.database_url.get_secret_value()
    return Scope(client=client, env=env, profile=profile.name, database=database_identity(url))


def open_profile(
    profile: Profile, settings: Settings | None = None, *, engine: Engine | None = None
) -> ProfileRuntime:
    """Open (without connecting) a profile's engines and read its descriptions file.

    ``settings`` names the deployment (CLIENT, ENV) in the profile's cache scope (their defaults without it);
    ``engine``, when given, is used instead of one created from the profile's URL, and its URL is the identity.
    """
    if profile.sample:
        url = profile.database_url.get_secret_value()
        if profile.dialect == "chdb":
            materialize_clickhouse_sample(url)
        else:
            materialize_sample(Path(url.split(":///", 1)[1]))
    return ProfileRuntime(
        profile=profile,
        engine=engine if engine is not None else create_profile_engine(profile),
        descriptions=load_descriptions(profile.descriptions_file),
        descriptions_digest=file_digest(profile.descriptions_file),
        scope=profile_scope(settings, profile, engine),
    )


@dataclass
class Runtime:
    """Everything a request needs, held on ``app.state.runtime``."""

    settings: Settings
    cache: RedisCache
    profiles: dict[str, ProfileRuntime]
    #: Called with (profile runtime, drift result) when a profile's schema changed.
    schema_listeners: list[Callable[[ProfileRuntime, dict[str, Any]], Awaitable[None]]] = field(
        default_factory=list
    )
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    search: SearchRuntime | None = None  # table search (None: keyword ranking only)
    anchor: Anchor | None = None  # this process's claim on the local index, or how it finds the owner
    http_url: str | None = None  # where this process serves HTTP, once known (published to the CLI)

    def profile(self, name: str | None) -> ProfileRuntime:
        """Return the named profile's runtime (default when None) or raise UnknownProfileError."""
        found = self.profiles.get(name or self.settings.default_profile)
        return found if found is not None else self.profiles[self.settings.profile(name).name]

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background task for the life of the runtime."""
        self.tasks.append(asyncio.create_task(coro, name=name))

    async def close(self) -> None:
        if self.search is not None:
            await self.search.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for rt in self.profiles.values():
            rt.dispose()
        if self.anchor is not None:
            self.anchor.release()
        await self.cache.close()


def open_runtime(settings: Settings, cache: RedisCache | None = None) -> Runtime:
    """Open the cache and every profile (nothing connects yet)."""
    return Runtime(
        settings=settings,
        cache=cache if cache is not None else RedisCache(settings),
        profiles={name: open_profile(p, settings) for name, p in settings.profiles.items()},
    )
