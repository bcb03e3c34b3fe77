"""The schema flow: a cached full snapshot, refreshed ahead of expiry, revalidated by fingerprint."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings
from dbmeta_app.profiles import ProfileRuntime, open_profile
from dbmeta_app.schema import store
from dbmeta_app.schema.models import Snapshot
from tests._scratch import run_child


def _count_decodes(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.0) -> list[str]:
    """Make Snapshot.from_json record the version of each snapshot it decodes (and take `seconds`)."""
    decoded: list[str] = []
    real = store.Snapshot.from_json

    def counting(data: dict[str, Any]) -> store.Snapshot:
        decoded.append(data["version"])
        time.sleep(seconds)
        return real(data)

    monkeypatch.setattr(store.Snapshot, "from_json", counting)
    return decoded


async def _load_until(
    settings: Settings,
    cache: RedisCache,
    rt: ProfileRuntime,
    done: Callable[[Snapshot, str], bool],
) -> tuple[Snapshot, str]:
    """Load the snapshot every 50 ms, for at most 2.5 s, until done(snapshot, status); return the last answer."""
    for _ in range(50):
        await asyncio.sleep(0.05)
        snapshot, status = await store.load_snapshot(settings, cache, rt)
        if done(snapshot, status):
            break
    return snapshot, status


async def test_past_the_soft_ttl_requests_never_wait_and_an_unchanged_schema_is_not_reintrospected(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"schema_cache_ttl": 2.0})  # soft TTL 1.6 s
    calls = 0
    real = store._introspect_blocking
    real_fingerprint = store._fingerprint_blocking
    # The background revalidation is held until the requests have their answers: had any request waited
    # for it, gathering them would never finish (structural, not a stopwatch on a loaded machine).
    release = threading.Event()

    def counted_introspect(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args)

    def held_fingerprint(*args: Any) -> Any:
        assert release.wait(30)
        return real_fingerprint(*args)

    monkeypatch.setattr(store, "_introspect_blocking", counted_introspect)
    monkeypatch.setattr(store, "_fingerprint_blocking", held_fingerprint)
    cache = RedisCache(settings)
    rt = open_profile(settings.profile(None))
    try:
        first, status = await store.load_snapshot(settings, cache, rt)
        assert status == "miss" and calls == 1
        await asyncio.sleep(1.65)
        results = await asyncio.wait_for(
            asyncio.gather(*[store.load_snapshot(settings, cache, rt) for _ in range(20)]), timeout=10
        )
        assert {status for _, status in results} == {"stale"}
        assert cache.stats.of("schema").refreshes == 0  # the refresh is still held: nobody waited for it
    finally:
        release.set()
    for _ in range(100):
        await asyncio.sleep(0.05)
        if cache.stats.of("schema").refreshes:
            break
    again, status = await store.load_snapshot(settings, cache, rt)
    assert status == "hit" and again.version == first.version
    assert calls == 1  # the fingerprint matched: no second introspection
    assert cache.stats.of("schema").refreshes == 1
    rt.dispose()


async def test_past_the_soft_ttl_a_changed_schema_is_reintrospected_in_the_background_and_not_decoded_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"schema_cache_ttl": 2.0})  # soft TTL 1.6 s
    cache = RedisCache(settings)
    rt = open_profile(settings.profile(None))
    first, _ = await store.load_snapshot(settings, cache, rt)
    path = Path(rt.profile.database_url.get_secret_value().split(":///", 1)[1])
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE customers ADD COLUMN loyalty_tier TEXT")
    decoded = _count_decodes(monkeypatch)
    await asyncio.sleep(1.65)
    stale, status = await store.load_snapshot(settings, cache, rt)
    assert status == "stale" and stale is first
    fresh, status = await _load_until(settings, cache, rt, lambda snap, _: snap.version != first.version)
    assert status == "hit" and "loyalty_tier" in [c.name for c in fresh.tables["customers"].columns]
    # the refresh remembered what it stored: neither the old nor the new bytes were decoded by a request
    assert decoded == []
    rt.dispose()


async def test_concurrent_requests_decode_a_large_snapshot_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(settings)
    rt = open_profile(settings.profile(None))
    snapshot, _ = await store.load_snapshot(settings, cache, rt)
    raw = orjson.dumps(snapshot.to_json())
    memo = store.SnapshotMemo()  # a replica that has not seen this snapshot yet
    monkeypatch.setattr(store, "_DECODE_INLINE_MAX", 0)  # "large": decoded in a worker thread
    decoded = _count_decodes(monkeypatch, seconds=0.2)
    results = await asyncio.gather(*[memo.decode("k", raw) for _ in range(8)])
    assert decoded == [snapshot.version]
    assert all(r is results[0] for r in results) and results[0].version == snapshot.version
    assert await memo.decode("k", raw) is results[0] and len(decoded) == 1
    rt.dispose()


async def test_a_newer_snapshot_from_another_replica_is_decoded_in_the_background_while_the_held_one_is_served(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(settings)
    rt = open_profile(settings.profile(None))
    held, _ = await store.load_snapshot(settings, cache, rt)
    # what another replica stores after the schema changed: one table fewer
    tables = [t for k, t in held.tables.items() if k != "customers"]
    newer = store.Snapshot.build(held.profile, held.dialect, tables, fingerprint="0f" * 8)
    key = store.schema_cache_key(settings, rt, False)
    await cache.set_bytes("schema", key, orjson.dumps(newer.to_json()), settings.schema_cache_ttl)
    monkeypatch.setattr(store, "_DECODE_INLINE_MAX", 0)  # "large": decoded in a worker thread
    decoded = _count_decodes(monkeypatch, seconds=0.3)
    started = time.perf_counter()
    results = await asyncio.gather(*[store.load_snapshot(settings, cache, rt) for _ in range(5)])
    assert time.perf_counter() - started < 0.25  # nobody waited for the 0.3 s decode
    assert all(snap is held and status == "stale" for snap, status in results)
    fresh, status = await _load_until(settings, cache, rt, lambda _, status: status == "hit")
    assert status == "hit" and fresh.version == newer.version and "customers" not in fresh.tables
    assert decoded == [newer.version]  # once, whoever asked meanwhile
    rt.dispose()


async def test_a_newer_snapshot_that_fails_to_decode_in_the_background_is_dropped_and_read_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(settings)
    rt = open_profile(settings.profile(None))
    held, _ = await store.load_snapshot(settings, cache, rt)
    key = store.schema_cache_key(settings, rt, False)
    # a valid head (a newer version) and a body of another layout
    broken = b'{"profile":"default","dialect":"sqlite","version":"0123456789abcdef","fingerprint":"","tables":[{"schema":null}]}'
    await cache.set_bytes("schema", key, broken, settings.schema_cache_ttl)
    monkeypatch.setattr(store, "_DECODE_INLINE_MAX", 0)
    first, status = await store.load_snapshot(settings, cache, rt)
    assert first is held and status == "stale"  # served while the newer one decodes
    again, status = await _load_until(settings, cache, rt, lambda _, status: status != "stale")
    # the failed decode is remembered: the value is dropped and the schema read again, not served stale forever
    assert status == "miss" and again.version == held.version
    assert cache.stats.of("schema").errors >= 1
    rt.dispose()


_HUGE_DDL = r"""
import json, sqlite3, sys
import dbmeta_app.db.engines as engines

engines.SQLITE_HARD_HEAP_LIMIT = 16 * 1024 * 1024  # the service's cap, lowered for a small test
from pydantic import SecretStr
from dbmeta_app.config import Profile, load_settings
from dbmeta_app.errors import DbmetaError
from dbmeta_app.profiles import open_profile
from dbmeta_app.schema.store import _introspect_blocking

path = sys.argv[1]
with sqlite3.connect(path) as conn:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT DEFAULT '" + "z" * 40_000_000 + "')")
conn.close()
rt = open_profile(Profile(name="p", database_url=SecretStr(f"sqlite:///{path}")))
try:
    _introspect_blocking(load_settings(redis_cache_enabled=False), rt, False)
    print(json.dumps({"raised": None}))
except DbmetaError as exc:
    print(json.dumps({"raised": exc.code, "status": exc.status_code, "detail": str(exc)}))
"""


def test_a_database_too_large_to_read_within_the_memory_bound_is_a_clear_503(tmp_path: Path) -> None:
    # A DDL larger than the service's SQLite heap cap: reading the catalog is a MemoryError, which was an
    # unexpected error (a 500; `dbmeta schema`: "unexpected MemoryError").
    answer = run_child(_HUGE_DDL, str(tmp_path / "huge.db"))
    assert (answer["raised"], answer["status"]) == ("upstream_unavailable", 503), answer
    assert "memory bound" in answer["detail"], answer
