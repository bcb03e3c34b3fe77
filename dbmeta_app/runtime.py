"""Per-process runtime: settings, the cache and one set of engines per profile, opened in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Profile, Settings, sample_file
from dbmeta_app.errors import ConfigError
from dbmeta_app.introspection.descriptions import Descriptions, load_descriptions

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
    return {}


def create_profile_engine(profile: Profile, *, pool_size: int = 5) -> Engine:
    """Create (without connecting) an engine for the profile's database."""
    url = profile.database_url.get_secret_value()
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "connect_args": _connect_args(profile.dialect)}
    if profile.dialect != "sqlite":
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=10, pool_recycle=1800)
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


def file_digest(path: Path | None) -> str:
    """Hash a file's content (empty string for no file), so its edits change cache keys."""
    if path is None:
        return ""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


@dataclass
class ProfileRuntime:
    """A profile with its open resources: the introspection engine, the preflight engine, curated files."""

    profile: Profile
    engine: Engine
    descriptions: Descriptions
    descriptions_digest: str
    keys: dict[Any, str] = field(default_factory=dict)  # memoised cache keys (their inputs never change)
    _preflight_engine: Engine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def preflight_engine(self) -> Engine:
        """A pool kept apart from introspection, created on first use."""
        with self._lock:
            if self._preflight_engine is None:
                self._preflight_engine = create_profile_engine(self.profile, pool_size=3)
            return self._preflight_engine

    def dispose(self) -> None:
        self.engine.dispose()
        if self._preflight_engine is not None:
            self._preflight_engine.dispose()


def open_profile(profile: Profile) -> ProfileRuntime:
    """Open (without connecting) a profile's engines and read its descriptions file."""
    if profile.sample:
        url = profile.database_url.get_secret_value()
        materialize_sample(Path(url.split(":///", 1)[1]))
    return ProfileRuntime(
        profile=profile,
        engine=create_profile_engine(profile),
        descriptions=load_descriptions(profile.descriptions_file),
        descriptions_digest=file_digest(profile.descriptions_file),
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
        profiles={name: open_profile(p) for name, p in settings.profiles.items()},
    )
