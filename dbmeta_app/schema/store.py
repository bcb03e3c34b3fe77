"""The snapshot store: a profile's full snapshot, cached, decoded once, revalidated, checked for drift.

The full snapshot is cached in the profile's scope (client, env, profile, the database's identity) under
everything else that changes it (with_examples, sample rows, schema filters, descriptions); a filtered
result is never cached — it is cut from the cached snapshot in memory (items/db_struct.py).

A cached snapshot is served without touching the database (that is the cache's point, and what keeps
answers flowing while the database is down), but never passed off as fresh when this process knows its
database does not answer: it is then ``stale``, with the reason. The database's health is learned from
every contact (introspection, fingerprint checks) and, while answers come from the cache, from a ping in
the background at most every ``HEALTH_PROBE_INTERVAL`` seconds.

The store works on a ``SnapshotSource`` (a ``profiles.ProfileRuntime`` in the service): what it needs of a
profile, named here so that this layer imports nothing above it (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import orjson
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dbmeta_app import metrics
from dbmeta_app.cache.keys import Scope
from dbmeta_app.cache.redis_cache import DECODE_ERRORS, RedisCache
from dbmeta_app.config import Profile, Settings
from dbmeta_app.db.session import connection_failure
from dbmeta_app.errors import UpstreamUnavailableError
from dbmeta_app.schema import introspect, schema_fingerprint
from dbmeta_app.schema.descriptions import Descriptions
from dbmeta_app.schema.models import Snapshot, Table
from dbmeta_app.schema.render import NameIndex, render_schema
from dbmeta_app.schema.samples import RETRY_NOTES, SamplePolicy
from dbmeta_app.scrub import scrub

log = logging.getLogger(__name__)

#: Bumped when the snapshot's JSON layout changes, so old cached values are never read.
SNAPSHOT_FORMAT = 1
_DECODED_MAX = 16
_DECODE_INLINE_MAX = 256 * 1024
_ENCODE_INLINE_MAX_TABLES = 100
_HEAD = re.compile(
    rb'^\{"profile":"[^"]*","dialect":"[^"]*","version":"([0-9a-f]*)","fingerprint":"([0-9a-f]*)"'
)
#: Past this share of its TTL a cached snapshot is served as "stale" while it is revalidated in the background.
SOFT_TTL_FRACTION = 0.8
#: While answers come from the cache, the database is pinged in the background at most this often (seconds),
#: so that an answer says "stale" soon after the database stopped answering.
HEALTH_PROBE_INTERVAL = 5.0
#: ``metadata.stale_reason`` of a snapshot served while a newer one is read (refresh ahead, decoding).
REFRESHING = "refreshing in the background; this snapshot is served meanwhile"
# A service waits this long for the first comparison of a cached snapshot with its database (one fingerprint
# query, milliseconds on a database that answers) before serving the snapshot as "stale" meanwhile.
FIRST_CHECK_WAIT = 1.0
_RENDERED_MAX = 32


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
class SnapshotMemo:
    """Decoded snapshots and rendered full texts, keyed by content version (pure derivations).

    A snapshot is known by (cache key, content version, fingerprint), so the one being served and the one a
    refresh just produced are both known while the cached bytes switch from one to the other: no request
    decodes a snapshot this process already holds. One another replica stored is decoded in the background
    while the one held before keeps being served.
    """

    decoded: OrderedDict[tuple[str, str, str], Snapshot] = field(default_factory=OrderedDict)
    decoding: dict[tuple[str, str, str], asyncio.Future[Snapshot]] = field(default_factory=dict)
    latest: OrderedDict[str, Snapshot] = field(default_factory=OrderedDict)  # per cache key, last remembered
    # identities whose bytes failed to decode in the background, with the error's class name
    failed: OrderedDict[tuple[str, str, str], str] = field(default_factory=OrderedDict)
    rendered: OrderedDict[tuple[str, str, bool], str] = field(default_factory=OrderedDict)
    names: OrderedDict[tuple[str, str], NameIndex] = field(default_factory=OrderedDict)
    # per cache key: the fingerprint this process last saw in the database (None: it did not answer), and
    # the one comparison in flight; see load_snapshot
    verified: dict[str, str | None] = field(default_factory=dict)
    verifying: dict[str, asyncio.Future[Snapshot]] = field(default_factory=dict)

    @staticmethod
    def identity(key: str, raw: bytes) -> tuple[str, str, str] | None:
        # The JSON starts with profile, dialect, content version and fingerprint: equal heads, equal snapshots.
        head = _HEAD.match(raw)
        return None if head is None else (key, head.group(1).decode(), head.group(2).decode())

    def known(self, identity: tuple[str, str, str] | None) -> Snapshot | None:
        """Return the decoded snapshot of this identity, if this process has it."""
        hit = None if identity is None else self.decoded.get(identity)
        if hit is not None:
            self.decoded.move_to_end(identity)  # type: ignore[arg-type]
        return hit

    def remember(self, key: str, snapshot: Snapshot) -> None:
        identity = (key, snapshot.version, snapshot.fingerprint)
        self.decoded[identity] = snapshot
        self.decoded.move_to_end(identity)
        while len(self.decoded) > _DECODED_MAX:
            self.decoded.popitem(last=False)
        self.latest[key] = snapshot
        self.latest.move_to_end(key)
        while len(self.latest) > _DECODED_MAX:
            self.latest.popitem(last=False)

    async def decode(self, key: str, raw: bytes) -> Snapshot:
        """Return the snapshot these bytes hold; a large one is decoded once, off the event loop."""
        snapshot, _ = await self.decode_or_held(key, raw, wait=True)
        return snapshot

    async def decode_or_held(self, key: str, raw: bytes, *, wait: bool = False) -> tuple[Snapshot, bool]:
        """Like ``decode``, but while a large snapshot is decoded, return the one held for the key at once.

        Returns (snapshot, held): ``held`` is True when that older snapshot is returned (the caller reports
        it as stale), so nobody waits for a decode. With ``wait``, or when nothing is held, it waits.
        """
        identity = self.identity(key, raw)
        known = self.known(identity)
        if known is not None:
            return known, False
        if len(raw) <= _DECODE_INLINE_MAX:
            snapshot = Snapshot.from_json(orjson.loads(raw))
            self.remember(key, snapshot)
            return snapshot, False
        identity = identity or (key, "", "")
        if identity in self.failed:  # decoded once in the background and failed: the caller drops the value
            raise ValueError(f"cached snapshot does not decode: {self.failed[identity]}")
        pending = self.decoding.get(identity)
        if pending is None:
            pending = self.decoding[identity] = asyncio.ensure_future(self._decode_large(identity, raw))
            # retrieved here: when nobody awaits a failed decode, it is no "never retrieved" error
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        held = None if wait else self.latest.get(key)
        if held is not None:
            return held, True
        return await asyncio.shield(pending), False

    async def _decode_large(self, identity: tuple[str, str, str], raw: bytes) -> Snapshot:
        try:
            snapshot = await anyio.to_thread.run_sync(lambda: Snapshot.from_json(orjson.loads(raw)))
        except DECODE_ERRORS as exc:
            self.failed[identity] = type(exc).__name__
            while len(self.failed) > _DECODED_MAX:
                self.failed.popitem(last=False)
            raise
        else:
            self.remember(identity[0], snapshot)
            return snapshot
        finally:
            self.decoding.pop(identity, None)

    async def encode(self, key: str, snapshot: Snapshot) -> bytes | dict[str, Any]:
        """The snapshot's JSON for the cache; remembered first, so its bytes never need decoding here."""
        self.remember(key, snapshot)
        if len(snapshot.tables) <= _ENCODE_INLINE_MAX_TABLES:
            return snapshot.to_json()
        return await anyio.to_thread.run_sync(lambda: orjson.dumps(snapshot.to_json()))

    def name_index(self, snapshot: Snapshot) -> NameIndex:
        key = (snapshot.profile, snapshot.version)
        index = self.names.get(key)
        if index is None or index.keys is not snapshot.tables:
            index = self.names[key] = NameIndex(snapshot, families=True)  # names asked for a schema
            while len(self.names) > _DECODED_MAX:
                self.names.popitem(last=False)
        return index

    def render_full(self, snapshot: Snapshot, with_samples: bool) -> str:
        key = (snapshot.profile, snapshot.version, with_samples)
        text = self.rendered.get(key)
        if text is None:
            text = render_schema(snapshot, None, with_samples)
            self.rendered[key] = text
            while len(self.rendered) > _RENDERED_MAX:
                self.rendered.popitem(last=False)
        return text


class SnapshotSource(Protocol):
    """What the store needs of a profile (``profiles.ProfileRuntime`` is one)."""

    profile: Profile
    engine: Engine
    descriptions: Descriptions
    descriptions_digest: str
    scope: Scope
    health: DatabaseHealth
    keys: dict[Any, str]
    memo: SnapshotMemo

    @property
    def name(self) -> str: ...

    @property
    def preflight_engine(self) -> Engine: ...

    def sample_policy(self) -> SamplePolicy: ...

    def sample_refusals(self, tables: Sequence[Table]) -> dict[str, str]: ...

    def ping_database(self) -> None: ...


def schema_cache_key(settings: Settings, rt: SnapshotSource, with_examples: bool) -> str:
    """Key of a profile's full snapshot, in the profile's scope: every input that changes it is hashed in."""
    # The inputs are fixed for the life of the runtime, so the key is computed once per variant.
    memo = ("schema", with_examples, settings.data_examples)
    key = rt.keys.get(memo)
    if key is None:
        key = rt.keys[memo] = _schema_cache_key(settings, rt, with_examples)
    return key


def _schema_cache_key(settings: Settings, rt: SnapshotSource, with_examples: bool) -> str:
    profile = rt.profile
    return rt.scope.key(
        "schema",
        format=SNAPSHOT_FORMAT,
        with_examples=with_examples,
        data_examples=_sample_count(settings, rt, with_examples),
        include=list(profile.include_schemas),
        exclude=list(profile.exclude_schemas),
        descriptions=rt.descriptions_digest,
    )


def held_schema_version(settings: Settings, rt: SnapshotSource) -> str | None:
    """The version of the profile's full snapshot this process last held, without any I/O (None: none yet)."""
    held = rt.memo.latest.get(schema_cache_key(settings, rt, False))
    return None if held is None else held.schema_version


def _sample_count(settings: Settings, rt: SnapshotSource, with_examples: bool) -> int:
    if not with_examples:
        return 0
    count = rt.profile.data_examples if rt.profile.data_examples is not None else settings.data_examples
    return count or 3


def _introspect_blocking(settings: Settings, rt: SnapshotSource, with_examples: bool) -> Snapshot:
    started = time.perf_counter()
    samples = _sample_count(settings, rt, with_examples)
    try:
        snapshot = introspect(
            rt.engine,
            rt.name,
            include_schemas=rt.profile.include_schemas,
            exclude_schemas=rt.profile.exclude_schemas,
            descriptions=rt.descriptions,
            data_examples=samples,
            sample_engine=rt.preflight_engine if samples else None,
            sample_policy=rt.sample_policy() if samples else None,
            sample_filter=rt.sample_refusals if samples else None,
        )
        rt.health.record(None)
        return snapshot
    except SQLAlchemyError as exc:
        rt.health.record(exc)
        # The driver's message names hosts and ports: it goes to the log (scrubbed), the client gets the class only.
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300] if str(exc).strip() else ""
        reason = scrub(reason)
        log.warning("Introspection of profile=%s failed: %s: %s", rt.name, type(exc).__name__, reason)
        orig = getattr(exc, "orig", None) or exc
        raise UpstreamUnavailableError(
            f"database of profile {rt.name!r} is unavailable: {connection_failure(orig)}"
        ) from exc
    except MemoryError:
        # the service's memory bound for the database (SQLite's heap cap, db/engines.py): a catalog entry larger
        log.warning("Introspection of profile=%s ran out of the memory bound", rt.name)
        raise UpstreamUnavailableError(
            f"database of profile {rt.name!r} could not be read within the service's memory bound "
            "(a definition or value in its catalog is larger)"
        ) from None
    finally:
        metrics.INTROSPECTION_SECONDS.labels(rt.name).observe(time.perf_counter() - started)


def _fingerprint_blocking(rt: SnapshotSource) -> str | None:
    try:
        fingerprint = schema_fingerprint(rt.engine, rt.profile.include_schemas, rt.profile.exclude_schemas)
    except SQLAlchemyError as exc:
        rt.health.record(exc)
        raise
    rt.health.record(None)
    return fingerprint


def _ping_blocking(rt: SnapshotSource) -> None:
    # The outcome, whatever it is, is noted in rt.health: nobody awaits a background ping's exception.
    with contextlib.suppress(Exception):
        rt.ping_database()


async def _note_health(rt: SnapshotSource, *, wait: bool) -> None:
    """Learn whether the profile's database answers, unless a recent contact told (one ping at a time).

    ``wait``: ping now and wait for it (a one-shot command); else ping in the background, at most every
    ``HEALTH_PROBE_INTERVAL`` seconds, so no request waits for a database that may not answer.
    """
    age = rt.health.age()
    if age is not None and age < HEALTH_PROBE_INTERVAL:
        return
    pending = rt.health.ping
    if pending is None or pending.done():
        pending = rt.health.ping = asyncio.ensure_future(
            anyio.to_thread.run_sync(_ping_blocking, rt, abandon_on_cancel=True)
        )
    if wait:
        await asyncio.shield(pending)


async def _revalidate(settings: Settings, rt: SnapshotSource, old: Snapshot, with_examples: bool) -> Snapshot:
    """Return the old snapshot if the database's fingerprint still matches it, else a fresh introspection."""
    try:
        fingerprint = await anyio.to_thread.run_sync(_fingerprint_blocking, rt)
    except SQLAlchemyError:
        fingerprint = None
    # sample rows a time budget or a lock left unread: read again (a failed read is not retried)
    incomplete = any(t.sample_note in RETRY_NOTES for t in old.tables.values())
    if fingerprint and fingerprint == old.fingerprint and not incomplete:
        return old  # stored again: a new TTL for one catalog query instead of a full introspection
    return await anyio.to_thread.run_sync(_introspect_blocking, settings, rt, with_examples)


def _log_stored(settings: Settings, rt: SnapshotSource, snapshot: Snapshot) -> None:
    log.info(
        "Schema cached for profile=%s, client=%s, env=%s (%d tables, version %s)",
        rt.name,
        settings.client,
        settings.env,
        len(snapshot.tables),
        snapshot.version,
    )
    metrics.SCHEMA_VERSION.labels(rt.name, snapshot.schema_version).set(1)


async def load_snapshot(
    settings: Settings,
    cache: RedisCache,
    rt: SnapshotSource,
    with_examples: bool = False,
    *,
    verify_database: bool = False,
) -> tuple[Snapshot, str]:
    """Return the profile's full snapshot and "hit", "stale" or "miss", introspecting (once) on a miss.

    Past ``SOFT_TTL_FRACTION`` of ``SCHEMA_CACHE_TTL`` a snapshot is still served at once ("stale") and revalidated in the
    background: a fingerprint query, and a full introspection only when the schema changed. While a newer
    large snapshot (stored by another replica) is decoded, the one held before is served, also as "stale".
    A cached snapshot of a database this process knows is down is "stale" too (``stale_reason`` says why);
    ``verify_database`` pings the database before answering from the cache (a one-shot command knows
    nothing of it yet), where a service pings in the background.
    """
    key = schema_cache_key(settings, rt, with_examples)
    ids = f"profile={rt.name}, client={settings.client}, env={settings.env}"

    async def compute() -> Snapshot:
        log.info("Schema cache MISS for %s", ids)
        return await anyio.to_thread.run_sync(_introspect_blocking, settings, rt, with_examples)

    async def refresh(old: Snapshot) -> Snapshot:
        new = await _revalidate(settings, rt, old, with_examples)
        if new is not old:
            _log_stored(settings, rt, new)
        return new

    async def encode(snapshot: Snapshot) -> bytes | dict[str, Any]:
        return await rt.memo.encode(key, snapshot)

    served_older = False

    async def decode(raw: bytes) -> Snapshot:
        nonlocal served_older
        snapshot, served_older = await rt.memo.decode_or_held(key, raw)
        return snapshot

    snapshot, status = await cache.get_or_compute(
        "schema",
        key,
        compute,
        encode,
        decode,
        settings.schema_cache_ttl,
        refresh=refresh,
        soft_ttl=settings.schema_cache_ttl * SOFT_TTL_FRACTION,
    )
    if served_older and status == "hit":
        status = "stale"  # a newer snapshot is being decoded; this one is served meanwhile
    if status == "miss":
        rt.memo.verified[key] = snapshot.fingerprint
        _log_stored(settings, rt, snapshot)
        return snapshot, status
    if key not in rt.memo.verified:
        # Stored by another process (a server stopped before a DDL, a one-shot command, another replica):
        # compared with the database once before this process answers from it, not only when the drift
        # watcher next looks.
        checked = await _first_check(settings, cache, rt, key, snapshot, with_examples, wait=verify_database)
        if checked is None:
            status = "stale"  # still being compared (a slow database): served meanwhile, and said so
        elif checked is not snapshot:
            return checked, "miss"
    log.info("Schema cache HIT for %s", ids)
    await _note_health(rt, wait=verify_database)
    if rt.health.error is not None:
        status = "stale"  # the cached snapshot of this database, which does not answer now
    return snapshot, status


async def _first_check(
    settings: Settings,
    cache: RedisCache,
    rt: SnapshotSource,
    key: str,
    snapshot: Snapshot,
    with_examples: bool,
    *,
    wait: bool,
) -> Snapshot | None:
    """Compare a cached snapshot with the database's fingerprint, once per process and key.

    Returns the snapshot to serve: the same one, or the database's schema read again (and stored) when the
    fingerprint moved; None when the comparison has not finished within ``FIRST_CHECK_WAIT`` (``wait``: a
    one-shot command waits for it). A database that does not answer leaves the cached snapshot served.
    """
    pending = rt.memo.verifying.get(key)
    if pending is None:

        async def compare() -> Snapshot:
            try:
                # Not _revalidate: a fingerprint the database does not answer must not lead to an introspection.
                fingerprint = await anyio.to_thread.run_sync(_fingerprint_blocking, rt)
                fresh = snapshot
                if fingerprint != snapshot.fingerprint:
                    fresh = await anyio.to_thread.run_sync(_introspect_blocking, settings, rt, with_examples)
                if fresh is not snapshot:  # stored before anyone is told it was compared
                    await cache.set_json(
                        "schema", key, await rt.memo.encode(key, fresh), settings.schema_cache_ttl
                    )
                    log.info(
                        "Schema changed since it was cached, for profile=%s: version %s -> %s",
                        rt.name,
                        snapshot.version,
                        fresh.version,
                    )
                    _log_stored(settings, rt, fresh)
                rt.memo.verified[key] = fresh.fingerprint
                return fresh
            except SQLAlchemyError:
                rt.memo.verified[key] = None  # served from the cache; health says the database is down
                return snapshot
            finally:
                rt.memo.verifying.pop(key, None)

        pending = rt.memo.verifying[key] = asyncio.ensure_future(compare())
    if wait:
        return await asyncio.shield(pending)
    try:
        return await asyncio.wait_for(asyncio.shield(pending), FIRST_CHECK_WAIT)
    except TimeoutError:
        return None


def stale_reason(rt: SnapshotSource, status: str) -> str | None:
    """Why an answer's snapshot is "stale" (None when it is not)."""
    if status != "stale":
        return None
    return rt.health.reason() or REFRESHING


async def check_drift(settings: Settings, cache: RedisCache, rt: SnapshotSource) -> dict[str, Any]:
    """Compare the cached snapshot with the database's fingerprint; re-read and store it when they differ."""
    key = schema_cache_key(settings, rt, False)
    found = await cache.lookup("schema", key)
    if found.raw is None:
        return {"profile": rt.name, "status": "not_cached"}
    try:
        old = await rt.memo.decode(key, found.raw)
    except DECODE_ERRORS:
        await cache.delete(key)  # undecodable: the next request reads the schema afresh
        return {"profile": rt.name, "status": "not_cached"}
    new = await _revalidate(settings, rt, old, False)
    if new is old:
        return {"profile": rt.name, "status": "unchanged", "schema_version": old.schema_version}
    await cache.set_json("schema", key, await rt.memo.encode(key, new), settings.schema_cache_ttl)
    if new.version == old.version:
        # The fingerprint moved, the schema did not (a constraint dropped and re-created, a table created and
        # dropped, a new fingerprint form after an upgrade): stored with its new fingerprint, nothing changed.
        return {"profile": rt.name, "status": "unchanged", "schema_version": new.schema_version}
    _log_stored(settings, rt, new)
    # Snapshots with sample rows are keyed apart; drop them so they are re-read with the new schema.
    await cache.delete(schema_cache_key(settings, rt, True))
    changed = sorted(k for k in set(old.tables) | set(new.tables) if old.tables.get(k) != new.tables.get(k))
    log.info(
        "Schema drift in profile=%s: version %s -> %s, %d tables changed",
        rt.name,
        old.version,
        new.version,
        len(changed),
    )
    return {
        "profile": rt.name,
        "status": "changed",
        "old_version": old.schema_version,
        "schema_version": new.schema_version,
        "changed_tables": changed,
    }
