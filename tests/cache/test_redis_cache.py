"""The cache contract, over memory-only, fakeredis and the real Redis; plus its fail-open behaviour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis

from dbmeta_app.cache import redis_cache
from dbmeta_app.cache.keys import Scope
from dbmeta_app.cache.redis_cache import CACHE_TTL, MemoryCache, RedisCache, cache_key
from dbmeta_app.config import Settings
from tests.conftest import RedisProcess


@pytest.fixture(params=["memory", "fakeredis", pytest.param("redis", marks=pytest.mark.integration)])
async def cache(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[RedisCache]:
    if request.param == "memory":
        c = RedisCache(settings)
    elif request.param == "fakeredis":
        c = RedisCache(
            settings.model_copy(update={"redis_cache_enabled": True}),
            redis_client=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()),
        )
    else:
        host, port = request.getfixturevalue("real_redis")
        c = RedisCache(
            settings.model_copy(update={"redis_cache_enabled": True, "redis_host": host, "redis_port": port})
        )
    yield c
    await c.close()


def test_ttls_match_the_documented_values() -> None:
    assert CACHE_TTL["schema"] == 3600
    assert CACHE_TTL["explain"] == 600
    assert CACHE_TTL["explain_error"] == 60
    assert CACHE_TTL["examples"] == 1800


async def test_round_trips_json_values(cache: RedisCache, unique: str) -> None:
    key = cache_key("schema", test=unique)
    value = {"tables": [{"name": "Ordér Lines", "cols": [1, 2.5, None, True]}]}
    await cache.set_json("schema", key, value)
    assert await cache.get_json("schema", key) == value
    await cache.delete(key)


async def test_a_missing_key_is_a_miss(cache: RedisCache, unique: str) -> None:
    assert await cache.get_json("schema", cache_key("schema", missing=unique)) is None
    assert cache.stats.of("schema").misses == 1


async def test_values_expire_after_their_ttl(cache: RedisCache, unique: str) -> None:
    key = cache_key("explain", test=unique)
    await cache.set_json("explain", key, {"ok": True}, ttl=0.2)
    assert await cache.get_json("explain", key) == {"ok": True}
    await asyncio.sleep(0.35)
    assert await cache.get_json("explain", key) is None


async def test_values_in_redis_are_json_not_pickle(fake_cache: RedisCache) -> None:
    key = cache_key("schema", x=1)
    await fake_cache.set_json("schema", key, {"a": [1, 2]})
    raw = await fake_cache._redis.get(key)  # type: ignore[union-attr]
    assert raw == b'{"a":[1,2]}'


async def test_concurrent_misses_compute_once(cache: RedisCache, unique: str) -> None:
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"v": 1}

    key = cache_key("schema", single=unique)
    results = await asyncio.gather(
        *[
            cache.get_or_compute("schema", key, compute, lambda v: v, redis_cache.orjson.loads)
            for _ in range(50)
        ]
    )
    assert calls == 1
    assert all(value == {"v": 1} for value, _ in results)
    assert sum(1 for _, status in results if status == "miss") == 1
    await cache.delete(key)


async def test_a_failed_computation_reaches_every_waiter_and_is_not_cached(
    cache: RedisCache, unique: str
) -> None:
    async def compute() -> dict[str, Any]:
        await asyncio.sleep(0.02)
        raise RuntimeError("database down")

    key = cache_key("schema", failing=unique)
    results = await asyncio.gather(
        *[
            cache.get_or_compute("schema", key, compute, lambda v: v, redis_cache.orjson.loads)
            for _ in range(5)
        ],
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get_json("schema", key) is None


def test_memory_cache_is_bounded_by_bytes_and_evicts_least_recently_used() -> None:
    mem = MemoryCache(max_bytes=100)
    mem.set("a", b"x" * 40, 60)
    mem.set("b", b"y" * 40, 60)
    assert mem.get("a") is not None  # a is now the most recently used
    mem.set("c", b"z" * 40, 60)
    assert mem.get("b") is None
    assert mem.get("a") is not None and mem.get("c") is not None
    assert mem.size_bytes <= 100
    mem.set("huge", b"h" * 1000, 60)
    assert mem.get("huge") is None


async def test_redis_down_at_start_serves_from_memory_with_one_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import free_port

    dead = settings.model_copy(update={"redis_cache_enabled": True, "redis_port": free_port()})
    cache = RedisCache(dead)
    key = cache_key("schema", x="down")
    started = time.perf_counter()
    await cache.set_json("schema", key, {"v": 1})
    for _ in range(20):
        assert await cache.get_json("schema", key) == {"v": 1}
    assert time.perf_counter() - started < 2.0
    assert cache.backend == "memory-fallback"
    assert sum("Redis unavailable" in r.message for r in caplog.records) == 1
    await cache.close()


async def test_redis_outage_mid_run_falls_back_then_recovers(
    fake_cache: RedisCache, monkeypatch: Any
) -> None:
    monkeypatch.setattr(redis_cache, "REDIS_RETRY_AFTER", 0.05)
    server = fake_cache.fake_server  # type: ignore[attr-defined]
    key = cache_key("schema", x="outage")
    await fake_cache.set_json("schema", key, {"v": 1})
    server.connected = False
    assert await fake_cache.get_json("schema", key) == {"v": 1}  # from memory
    assert fake_cache.backend == "memory-fallback"
    assert fake_cache.stats.of("schema").errors >= 1
    server.connected = True
    await asyncio.sleep(0.06)
    await fake_cache.set_json("schema", key, {"v": 2})
    assert await fake_cache.get_json("schema", key) == {"v": 2}
    assert fake_cache.backend == "redis"
    assert fake_cache.stats.of("schema").hits >= 1


@pytest.mark.integration
async def test_a_real_redis_killed_and_restarted_is_used_again(
    settings: Settings, redis_process: RedisProcess, monkeypatch: Any
) -> None:
    monkeypatch.setattr(redis_cache, "REDIS_RETRY_AFTER", 0.1)
    cache = RedisCache(
        settings.model_copy(update={"redis_cache_enabled": True, "redis_port": redis_process.port})
    )
    key = cache_key("schema", x="killed")
    await cache.set_json("schema", key, {"v": 1})
    assert cache.backend == "redis"
    redis_process.stop()
    started = time.perf_counter()
    assert await cache.get_json("schema", key) == {"v": 1}
    assert time.perf_counter() - started < 1.0
    redis_process.start()
    await asyncio.sleep(0.15)
    await cache.set_json("schema", key, {"v": 2})
    direct = aioredis.Redis(port=redis_process.port)
    assert await direct.get(key) == b'{"v":2}'
    await direct.aclose()
    assert cache.backend == "redis"
    await cache.close()


async def test_disabled_redis_uses_memory_only(settings: Settings) -> None:
    cache = RedisCache(settings)
    assert cache.backend == "memory"
    key = cache_key("examples", x=1)
    await cache.set_json("examples", key, [1])
    assert await cache.get_json("examples", key) == [1]
    assert await cache.ping() is False


def _replicas(
    request: pytest.FixtureRequest, settings: Settings, backend: str, n: int = 2
) -> list[RedisCache]:
    """n caches sharing one Redis (fakeredis server or the real one), like replicas of the service."""
    if backend == "fakeredis":
        server = fakeredis.FakeServer()
        on = settings.model_copy(update={"redis_cache_enabled": True})
        return [RedisCache(on, redis_client=fakeredis.FakeAsyncRedis(server=server)) for _ in range(n)]
    host, port = request.getfixturevalue("real_redis")
    on = settings.model_copy(update={"redis_cache_enabled": True, "redis_host": host, "redis_port": port})
    return [RedisCache(on) for _ in range(n)]


async def _wait_coherent(*caches: RedisCache) -> None:
    for _ in range(100):
        if all(c.l1_coherent for c in caches):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("invalidation listener did not subscribe")


@pytest.mark.parametrize("backend", ["fakeredis", pytest.param("redis", marks=pytest.mark.integration)])
async def test_l1_stays_coherent_across_two_instances_sharing_redis(
    request: pytest.FixtureRequest, settings: Settings, backend: str, unique: str
) -> None:
    a, b = _replicas(request, settings, backend)
    await a.start()
    await b.start()
    await _wait_coherent(a, b)
    key = cache_key("schema", coherent=unique)
    await a.set_json("schema", key, {"v": 1})
    assert await b.get_json("schema", key) == {"v": 1}  # from Redis, now copied into b's L1
    assert b.stats.of("schema").hits == 1
    assert await b.get_json("schema", key) == {"v": 1}
    assert b.stats.of("schema").memory_hits == 1  # no round trip
    await a.set_json("schema", key, {"v": 2})
    for _ in range(100):
        if await b.get_json("schema", key) == {"v": 2}:
            break
        await asyncio.sleep(0.01)
    assert await b.get_json("schema", key) == {"v": 2}
    await a.delete(key)
    for _ in range(100):
        if await b.get_json("schema", key) is None:
            break
        await asyncio.sleep(0.01)
    assert await b.get_json("schema", key) is None
    await a.close()
    await b.close()
    assert not a.l1_coherent


async def test_l1_copies_expire_with_the_redis_entry(fake_cache: RedisCache) -> None:
    await fake_cache.start()
    await _wait_coherent(fake_cache)
    key = cache_key("explain", x="ttl")
    await fake_cache.set_json("explain", key, {"v": 1}, ttl=0.2)
    assert await fake_cache.get_json("explain", key) == {"v": 1}
    await asyncio.sleep(0.3)
    assert await fake_cache.get_json("explain", key) is None


@pytest.mark.parametrize("backend", ["fakeredis", pytest.param("redis", marks=pytest.mark.integration)])
async def test_200_concurrent_cold_requests_on_two_replicas_compute_once(
    request: pytest.FixtureRequest, settings: Settings, backend: str, unique: str
) -> None:
    replicas = _replicas(request, settings, backend)
    calls = 0

    async def introspect() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)  # a slow introspection: everybody else arrives meanwhile
        return {"tables": 3}

    key = cache_key("schema", stampede=unique)
    results = await asyncio.gather(
        *[
            replicas[i % 2].get_or_compute("schema", key, introspect, lambda v: v, redis_cache.orjson.loads)
            for i in range(200)
        ]
    )
    assert calls == 1
    assert all(value == {"tables": 3} for value, _ in results)
    assert [status for _, status in results].count("miss") == 1
    for c in replicas:
        await c.delete(key)
        await c.close()


async def test_a_lock_holder_that_died_releases_by_ttl_and_waiters_compute(
    fake_cache: RedisCache, monkeypatch: Any
) -> None:
    monkeypatch.setattr(redis_cache, "LOCK_TTL", 0.3)
    key = cache_key("schema", dead_holder=1)
    # a replica took the lock and died: nobody will ever write the value
    assert await fake_cache._acquire_lock(key)

    async def compute() -> dict[str, Any]:
        return {"v": 1}

    started = time.perf_counter()
    value, status = await fake_cache.get_or_compute(
        "schema", key, compute, lambda v: v, redis_cache.orjson.loads
    )
    assert (value, status) == ({"v": 1}, "miss")
    assert time.perf_counter() - started < 2.0


async def test_waiters_give_up_after_lock_wait_and_compute(fake_cache: RedisCache, monkeypatch: Any) -> None:
    monkeypatch.setattr(redis_cache, "LOCK_WAIT", 0.2)
    key = cache_key("schema", slow_holder=1)
    assert await fake_cache._acquire_lock(key)  # a live holder that takes too long

    async def compute() -> dict[str, Any]:
        return {"v": 2}

    started = time.perf_counter()
    value, _ = await fake_cache.get_or_compute("schema", key, compute, lambda v: v, redis_cache.orjson.loads)
    assert value == {"v": 2}
    assert 0.2 <= time.perf_counter() - started < 1.5


@pytest.mark.parametrize("backend", ["memory", "fakeredis"])
async def test_past_the_soft_ttl_the_value_is_served_stale_and_refreshed_in_the_background(
    settings: Settings, backend: str
) -> None:
    if backend == "memory":
        cache = RedisCache(settings)
    else:
        cache = RedisCache(
            settings.model_copy(update={"redis_cache_enabled": True}),
            redis_client=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()),
        )
    version = 0
    refreshed_from: list[dict[str, Any]] = []

    async def compute() -> dict[str, Any]:
        nonlocal version
        version += 1
        return {"v": version}

    async def refresh(old: dict[str, Any]) -> dict[str, Any]:
        refreshed_from.append(old)
        await asyncio.sleep(0.5)  # a slow refresh: nobody may wait for it
        return await compute()

    key = cache_key("schema", soft=backend)

    async def get() -> tuple[Any, str]:
        return await cache.get_or_compute(
            "schema",
            key,
            compute,
            lambda v: v,
            redis_cache.orjson.loads,
            ttl=10,
            refresh=refresh,
            soft_ttl=0.2,
        )

    assert await get() == ({"v": 1}, "miss")
    assert await get() == ({"v": 1}, "hit")
    await asyncio.sleep(0.25)
    started = time.perf_counter()
    stale = await asyncio.gather(*[get() for _ in range(20)])
    assert time.perf_counter() - started < 0.25  # well under the refresh's 0.5 s: nobody waited for it
    assert all(r == ({"v": 1}, "stale") for r in stale)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if cache.stats.of("schema").refreshes:
            break
    assert refreshed_from == [{"v": 1}]  # one refresh, from the old value
    assert await get() == ({"v": 2}, "hit")
    assert cache.stats.of("schema").refreshes == 1
    await cache.close()


@pytest.mark.parametrize("backend", ["fakeredis", pytest.param("redis", marks=pytest.mark.integration)])
async def test_dropping_a_profiles_values_reaches_redis_and_every_replicas_l1(
    request: pytest.FixtureRequest, settings: Settings, backend: str, unique: str
) -> None:
    a, b = _replicas(request, settings, backend)
    await a.start()
    await b.start()
    await _wait_coherent(a, b)
    scope = Scope("c", "e", f"p-{unique} [odd*?]", "sqlite:0123456789abcdef")
    mine = [scope.key("explain", sql=i) for i in range(30)]
    other = Scope("c", "e", "other", scope.database).key("explain", sql=0)
    for key in [*mine, other]:
        await a.set_json("explain", key, {"k": key})
        assert await b.get_json("explain", key) == {"k": key}  # now in b's L1 too
    dropped = await a.drop_scope(scope, ("explain",))
    assert dropped == {"explain": 30}
    for _ in range(100):
        if len(b.memory) <= 1:
            break
        await asyncio.sleep(0.01)
    assert all([await b.get_json("explain", k) is None for k in mine])
    assert await b.get_json("explain", other) == {"k": other}
    await a.delete(other)
    await a.close()
    await b.close()


async def test_a_replica_that_missed_an_invalidation_does_not_resurrect_the_value(settings: Settings) -> None:
    server = fakeredis.FakeServer()
    on = settings.model_copy(update={"redis_cache_enabled": True})
    a = RedisCache(on, redis_client=fakeredis.FakeAsyncRedis(server=server))
    deaf = RedisCache(on, redis_client=fakeredis.FakeAsyncRedis(server=server))  # no listener: hears nothing
    key = cache_key("schema", resurrect=1)
    await a.set_json("schema", key, {"v": 1})
    assert await deaf.get_json("schema", key) == {"v": 1}  # now in its L1
    await a.delete(key)
    assert await deaf.get_json("schema", key) is None
    assert await a.get_json("schema", key) is None  # and Redis did not get it back
    await a.close()
    await deaf.close()


@pytest.mark.parametrize("garbage", [b"not json", b'{"v": 1}', b"[1, 2]", b"\xff\xfe"])
async def test_a_cached_value_that_does_not_decode_is_a_miss_and_is_replaced(
    cache: RedisCache, garbage: bytes
) -> None:
    key = cache_key("schema", garbage=garbage.hex())
    await cache.set_bytes("schema", key, garbage)
    computed: list[int] = []

    async def compute() -> dict[str, Any]:
        computed.append(1)
        return {"version": 2}

    def decode(raw: bytes) -> dict[str, Any]:
        data = redis_cache.orjson.loads(raw)
        return {"version": data["version"]}  # KeyError / TypeError for the wrong layout

    value, status = await cache.get_or_compute("schema", key, compute, lambda v: v, decode)
    assert (value, status, computed) == ({"version": 2}, "miss", [1])
    assert cache.stats.of("schema").errors >= 1
    assert await cache.get_or_compute("schema", key, compute, lambda v: v, decode) == ({"version": 2}, "hit")
    assert computed == [1]


async def test_an_encoder_may_return_the_json_bytes_from_an_awaitable(fake_cache: RedisCache) -> None:
    key = cache_key("schema", encoded_bytes=1)

    async def compute() -> dict[str, Any]:
        return {"v": 2}

    async def encode(value: dict[str, Any]) -> bytes:
        await asyncio.sleep(0)
        return redis_cache.orjson.dumps(value)

    value, status = await fake_cache.get_or_compute("schema", key, compute, encode, redis_cache.orjson.loads)
    assert (value, status) == ({"v": 2}, "miss")
    assert await fake_cache._redis.get(key) == b'{"v":2}'  # type: ignore[union-attr]  # stored as is
    assert await fake_cache.get_or_compute("schema", key, compute, encode, redis_cache.orjson.loads) == (
        {"v": 2},
        "hit",
    )


async def test_a_refresh_that_finds_the_value_unchanged_only_renews_its_ttl(fake_cache: RedisCache) -> None:
    key = cache_key("schema", touch=1)
    encoded: list[int] = []

    async def compute() -> dict[str, Any]:
        return {"v": 1}

    async def refresh(old: dict[str, Any]) -> dict[str, Any]:
        return old  # still true

    def encode(v: dict[str, Any]) -> dict[str, Any]:
        encoded.append(1)
        return v

    async def get() -> tuple[Any, str]:
        return await fake_cache.get_or_compute(
            "schema", key, compute, encode, redis_cache.orjson.loads, ttl=1.0, refresh=refresh, soft_ttl=0.2
        )

    await get()
    assert encoded == [1]
    await asyncio.sleep(0.3)
    assert (await get())[1] == "stale"
    for _ in range(40):
        await asyncio.sleep(0.02)
        if fake_cache.stats.of("schema").refreshes:
            break
    assert encoded == [1]  # not re-encoded, not re-sent
    pttl = await fake_cache._redis.pttl(key)  # type: ignore[union-attr]
    assert pttl > 800  # the TTL was renewed to 1 s


async def test_a_value_over_the_redis_size_cap_stays_out_of_redis_and_is_served_from_memory(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    server = fakeredis.FakeServer()
    capped = settings.model_copy(update={"redis_cache_enabled": True, "redis_max_value_bytes": 1024})
    cache = RedisCache(capped, redis_client=fakeredis.FakeAsyncRedis(server=server))
    other = RedisCache(capped, redis_client=fakeredis.FakeAsyncRedis(server=server))
    raw = fakeredis.FakeAsyncRedis(server=server)
    try:
        key = cache_key("explain", client="c", env="e", profile="p", sql="big")
        await cache.set_json("explain", key, {"plan": "small"})
        assert await raw.get(key) is not None  # a small value goes to Redis
        big = {"plan": "x" * 5000}
        await cache.set_json("explain", key, big)
        assert await raw.get(key) is None  # not written, and the older small value is gone too
        assert await cache.get_json("explain", key) == big  # served from this process's memory
        assert await other.get_json("explain", key) is None  # no other replica serves the old value
        assert cache.stats.of("explain").too_large == 1
        assert cache.stats_json()["kinds"]["explain"]["too_large"] == 1
        assert any("REDIS_MAX_VALUE_BYTES" in r.getMessage() for r in caplog.records)
    finally:
        await cache.close()
        await other.close()
        await raw.aclose()


async def test_a_value_too_large_for_memory_as_well_is_cached_nowhere(settings: Settings) -> None:
    capped = settings.model_copy(
        update={"redis_cache_enabled": True, "redis_max_value_bytes": 1024, "memory_cache_max_bytes": 2048}
    )
    server = fakeredis.FakeServer()
    cache = RedisCache(capped, redis_client=fakeredis.FakeAsyncRedis(server=server))
    try:
        key = cache_key("explain", client="c", env="e", profile="p", sql="huge")
        await cache.set_json("explain", key, {"plan": "x" * 10_000})
        assert await cache.get_json("explain", key) is None
    finally:
        await cache.close()


class _WritesWait(fakeredis.FakeAsyncRedis):
    """fakeredis whose writes (SET, alone or in a pipeline) wait until ``opened`` is set; reads answer at once."""

    def __init__(self, *args: Any, opened: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = opened

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        await self.opened.wait()
        return await super().set(*args, **kwargs)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute, opened = pipe.execute, self.opened

        async def gated(raise_on_error: bool = True) -> Any:
            if any(str(args[0]).upper() == "SET" for args, _ in pipe.command_stack):
                await opened.wait()
            return await execute(raise_on_error)

        pipe.execute = gated  # type: ignore[method-assign]
        return pipe


async def test_an_unshared_value_waits_for_no_redis_write_yet_reaches_every_replica(
    settings: Settings,
) -> None:
    # An embedding costs less to compute twice than to coordinate: no cross-replica lock, and its write to Redis
    # goes on behind the answer. Here a write never ends until ``opened``: the answer must not wait for it.
    server, opened = fakeredis.FakeServer(), asyncio.Event()
    on = settings.model_copy(update={"redis_cache_enabled": True})
    cache = RedisCache(on, redis_client=_WritesWait(server=server, opened=opened))
    other = RedisCache(on, redis_client=fakeredis.FakeAsyncRedis(server=server))
    calls = 0

    async def compute() -> list[float]:
        nonlocal calls
        calls += 1
        return [0.5, 0.25]

    def ask(on_cache: RedisCache) -> Any:
        return on_cache.get_or_compute(
            "embedding", "k:emb", compute, lambda v: v, redis_cache.orjson.loads, shared=False
        )

    try:
        assert await asyncio.wait_for(ask(cache), 5) == ([0.5, 0.25], "miss")
        assert await asyncio.wait_for(ask(cache), 5) == (
            [0.5, 0.25],
            "hit",
        )  # from memory, not computed again
        opened.set()
        for _ in range(200):  # the write behind the answer lands: another replica finds the value
            if (await other.lookup("embedding", "k:emb")).raw is not None:
                break
            await asyncio.sleep(0.01)
        assert await ask(other) == ([0.5, 0.25], "hit")
        assert calls == 1
    finally:
        await cache.close()
        await other.close()


async def test_closing_the_cache_finishes_the_writes_behind_answers(settings: Settings) -> None:
    server = fakeredis.FakeServer()
    on = settings.model_copy(update={"redis_cache_enabled": True})
    cache = RedisCache(on, redis_client=fakeredis.FakeAsyncRedis(server=server))

    async def compute() -> list[float]:
        return [1.0]

    await cache.get_or_compute(
        "embedding", "k:last", compute, lambda v: v, redis_cache.orjson.loads, shared=False
    )
    await cache.close()  # a replica shutting down right after an answer still shares what it computed
    assert await fakeredis.FakeAsyncRedis(server=server).get("k:last") == b"[1.0]"
