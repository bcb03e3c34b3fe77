"""The cache: a bounded in-process tier (L1) in front of Redis (L2), failing open to L1 alone.

Values are JSON (orjson) bytes, never pickle. Keys are namespaced, versioned and scoped: see ``keys.py``
(``Scope.key`` for everything derived from a database, ``cache_key`` for the rest).

- L1 answers first only while it is known coherent: a listener subscribed to the invalidation channel
  hears every write and delete made by any replica and drops its own copy; when the listener is not
  connected, reads go to Redis. L1 copies expire with the Redis entry they came from.
- A Redis outage is a miss or an L1 hit, never an error: a failing call is given up after the short
  socket timeout; after ``REDIS_BREAKER_THRESHOLD`` failures in a row a circuit breaker skips Redis for
  ``REDIS_RETRY_AFTER`` seconds (doubling while it stays down, at most 8 s), then probes it, so Redis is
  used again as soon as it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from dbmeta_app import metrics
from dbmeta_app.breaker import CircuitBreaker
from dbmeta_app.cache.keys import KEY_NAMESPACE, KEY_VERSION, SCOPED_KINDS, Scope, cache_key
from dbmeta_app.cache.topology import RedisClient, build_client
from dbmeta_app.config import Settings
from dbmeta_app.redis_url import parse_redis_url
from dbmeta_app.scrub import scrub

log = logging.getLogger(__name__)

__all__ = ["CACHE_TTL", "KEY_NAMESPACE", "KEY_VERSION", "RedisCache", "cache_key"]

#: Time to live, in seconds, of each kind of cached value.
CACHE_TTL: dict[str, int] = {
    "schema": 3600,
    "explain": 600,
    "explain_error": 60,
    "examples": 1800,
    "embedding": 86400,
}

#: After a Redis failure, serve from memory for this long before trying Redis again.
REDIS_RETRY_AFTER = 1.0
#: At most this many keys written while Redis was away are remembered for write-back.
_UNSYNCED_MAX = 10_000
#: Consecutive Redis failures that open the breaker.
REDIS_BREAKER_THRESHOLD = 3
#: At most one "Redis unavailable" warning per this many seconds.
WARN_EVERY = 30.0
#: Compute lock: how long a holder may hold it, how long others wait for its value, how often they look.
LOCK_TTL = 30.0
LOCK_WAIT = 15.0
LOCK_POLL = 0.05
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
#: Pub/sub channel on which every replica announces the keys it wrote or deleted.
INVALIDATION_CHANNEL = f"{KEY_NAMESPACE}:{KEY_VERSION}:invalidate"

T = TypeVar("T")


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class MemoryCache:
    """A bounded LRU of JSON bytes with per-entry expiry, sized by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> bytes | None:
        item = self.get_with_ttl(key)
        return None if item is None else item[0]

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        """Return the value and its remaining seconds to live, or None."""
        item = self._data.get(key)
        if item is None:
            return None
        remaining = item[0] - time.monotonic()
        if remaining <= 0:
            self.delete(key)
            return None
        self._data.move_to_end(key)
        return item[1], remaining

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        self.delete(key)
        self._data[key] = (time.monotonic() + ttl, value)
        self._bytes += len(value)
        while self._bytes > self.max_bytes:
            _, (_, old) = self._data.popitem(last=False)
            self._bytes -= len(old)

    def delete(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self._bytes -= len(item[1])
        return True

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self._data if k.startswith(prefix)]
        for k in keys:
            self.delete(k)
        return len(keys)

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache read: the JSON bytes (None on a miss), the tier that answered and the seconds left to live."""

    raw: bytes | None
    tier: str  # "memory" | "redis" | "miss"
    remaining: float | None


@dataclass
class KindStats:
    hits: int = 0
    memory_hits: int = 0
    misses: int = 0
    errors: int = 0
    refreshes: int = 0
    too_large: int = 0  # values over REDIS_MAX_VALUE_BYTES, kept out of Redis

    def to_json(self) -> dict[str, Any]:
        total = self.hits + self.memory_hits + self.misses
        ratio = (self.hits + self.memory_hits) / total if total else None
        return {
            "hits": self.hits,
            "memory_hits": self.memory_hits,
            "misses": self.misses,
            "errors": self.errors,
            "refreshes": self.refreshes,
            "too_large": self.too_large,
            "hit_ratio": ratio,
        }


@dataclass
class CacheStats:
    kinds: dict[str, KindStats] = field(default_factory=dict)

    def of(self, kind: str) -> KindStats:
        stats = self.kinds.get(kind)
        if stats is None:
            stats = self.kinds[kind] = KindStats()
        return stats


def build_redis_client(settings: Settings) -> RedisClient:
    """Create (without connecting) the Redis client and its one connection pool for this process.

    ``REDIS_URL`` may name one server, a Sentinel-managed master or a cluster (see ``cache/topology.py``).
    """
    common: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 30,
        "client_name": f"dbmeta-{settings.client}-{settings.env}",
        "max_connections": settings.redis_max_connections,
        # Waiting for a free connection is bounded by the same short timeout as a call.
        "timeout": settings.redis_socket_timeout,
        # No library retries: a failing call gives up fast and falls back to memory. The cache itself
        # retries once, on connection errors only, to replace a pooled connection that a restart killed.
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_url is not None:
        sentinel_password = settings.redis_sentinel_password
        return build_client(
            parse_redis_url(settings.redis_url.get_secret_value()),
            common,
            sentinel_password=sentinel_password.get_secret_value() if sentinel_password else None,
        )
    pool = aioredis.BlockingConnectionPool(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password.get_secret_value() if settings.redis_password else None,
        **common,
    )
    return aioredis.Redis(connection_pool=pool)


#: What a decoder raises for bytes that are not the value it expects (orjson's error is a ValueError).
DECODE_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, TypeError, AttributeError, IndexError)


async def _decoded(value: T | Awaitable[T]) -> T:
    """Await a decoder's (or encoder's) result when it is awaitable (large values go to a worker thread)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def _pipeline(client: RedisClient, *commands: tuple[Any, ...]) -> list[Any]:
    """Send commands in one round trip; on a connection error (a pooled socket a restart killed) once more."""
    for attempt in (1, 2):
        try:
            async with client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return await pipe.execute()
        except RedisConnectionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class RedisCache:
    """Get and set JSON values by key, in Redis with an in-process fallback; never raises for Redis."""

    def __init__(self, settings: Settings, redis_client: RedisClient | None = None) -> None:
        self.enabled = settings.redis_cache_enabled
        self.max_value_bytes = settings.redis_max_value_bytes
        self.memory = MemoryCache(settings.memory_cache_max_bytes)
        self.stats = CacheStats()
        # labelled metric children, looked up once (``labels()`` takes a lock on every call)
        self._metric_children: dict[tuple[Any, ...], Any] = {}
        self._redis: RedisClient | None = None
        if self.enabled:
            self._redis = redis_client if redis_client is not None else build_redis_client(settings)
        self.breaker = CircuitBreaker(
            "redis", failure_threshold=REDIS_BREAKER_THRESHOLD, cooldown=REDIS_RETRY_AFTER, max_cooldown=8.0
        )
        self._last_warning = 0.0
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._storing: dict[str, asyncio.Task[None]] = {}  # key -> its write to Redis behind an answer
        self._unsynced: set[str] = set()  # written to L1 only (Redis was away): to be written back
        self._local_only: set[str] = set()  # over REDIS_MAX_VALUE_BYTES: held in L1 only, never written back
        self.redis_ok: bool | None = None  # unknown until the first call
        self.l1_coherent = False  # true while the invalidation listener is subscribed
        self._node = uuid.uuid4().hex  # our own announcements need not evict our own L1
        self._listener: asyncio.Task[None] | None = None
        metrics.REDIS_UP.set(0)

    async def start(self) -> None:
        """Start the invalidation listener that lets L1 answer without a round trip (no-op without Redis)."""
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="dbmeta-cache-invalidation")

    async def _listen(self) -> None:
        assert self._redis is not None
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                # Anything written while we were not listening may be stale here.
                self.memory.clear()
                self.l1_coherent = True
                self._redis_succeeded()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        node, _, key = (data.decode() if isinstance(data, bytes) else str(data)).partition(
                            " "
                        )
                        if node == self._node:
                            continue
                        if key.endswith("*"):
                            self.memory.delete_prefix(key[:-1])
                        else:
                            self.memory.delete(key)
                    elif message is None:
                        await pubsub.ping()  # notice a dead connection within one period
            except asyncio.CancelledError:
                self.l1_coherent = False
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self.l1_coherent = False
                log.debug("Cache invalidation listener lost Redis: %s", type(exc).__name__)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _counter(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._metric_children.get(key)
        if child is None:
            child = self._metric_children[key] = metric.labels(*labels)
        return child

    @property
    def backend(self) -> str:
        """Describe where values are served from: redis, memory (disabled) or memory-fallback."""
        if self._redis is None:
            return "memory"
        return "redis" if self.redis_ok is not False else "memory-fallback"

    def _redis_usable(self) -> RedisClient | None:
        if self._redis is None or not self.breaker.allow():
            return None
        return self._redis

    def _redis_failed(self, kind: str, exc: BaseException) -> None:
        self.stats.of(kind).errors += 1
        metrics.CACHE_ERRORS.labels(kind).inc()
        metrics.REDIS_UP.set(0)
        self.redis_ok = False
        self.breaker.record_failure()
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning(
                "Redis unavailable (%s: %s); serving from the in-process cache, retrying within %.0fs",
                type(exc).__name__,
                exc,
                self.breaker.max_cooldown,
            )

    def _redis_succeeded(self) -> None:
        self.breaker.record_success()
        if self.redis_ok is not True:
            if self.redis_ok is False:
                log.info("Redis is back; using it again")
            self.redis_ok = True
            metrics.REDIS_UP.set(1)

    async def get_bytes(self, kind: str, key: str) -> tuple[bytes | None, str]:
        """Return the raw JSON bytes and where they came from: memory, redis or miss."""
        found = await self.lookup(kind, key)
        return found.raw, found.tier

    async def lookup(self, kind: str, key: str) -> Lookup:
        """Find a value: L1 when coherent, else Redis, else L1 as a fallback; with its remaining TTL."""
        if self.l1_coherent and self.redis_ok:
            kept = self.memory.get_with_ttl(key)
            if kept is not None:
                return self._hit(kind, "memory", *kept)
        client = self._redis_usable()
        if client is not None:
            try:
                raw, pttl = await _pipeline(client, ("GET", key), ("PTTL", key))
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_failed(kind, exc)
            else:
                self._redis_succeeded()
                if raw is not None:
                    value = raw if isinstance(raw, bytes) else raw.encode()
                    remaining = pttl / 1000 if pttl and pttl > 0 else None
                    if remaining is not None:
                        self.memory.set(key, value, remaining)
                    return self._hit(kind, "redis", value, remaining)
                if key not in self._unsynced and key not in self._local_only and key not in self._storing:
                    # Redis dropped it (expiry, an invalidation): an L1 copy must not outlive that.
                    self.memory.delete(key)
                    return self._miss(kind)
                kept = self.memory.get_with_ttl(key)
                if kept is None:
                    self._unsynced.discard(key)
                    self._local_only.discard(key)
                    return self._miss(kind)
                if key in self._local_only or key in self._storing:
                    # too large for Redis, or on its way there: this process's copy is the value
                    return self._hit(kind, "memory", *kept)
                # Computed here while Redis was away: hand it to Redis (and the other replicas) now.
                await self.set_bytes(kind, key, kept[0], kept[1])
                return self._hit(kind, "memory", *kept)
        kept = self.memory.get_with_ttl(key)
        return self._miss(kind) if kept is None else self._hit(kind, "memory", *kept)

    def _announce(self, key: str) -> str:
        return f"{self._node} {key}"

    def _hit(self, kind: str, tier: str, value: bytes, remaining: float | None) -> Lookup:
        stats = self.stats.of(kind)
        if tier == "memory":
            stats.memory_hits += 1
        else:
            stats.hits += 1
        self._counter(metrics.CACHE_HITS, kind, tier).inc()
        return Lookup(value, tier, remaining)

    def _miss(self, kind: str) -> Lookup:
        self.stats.of(kind).misses += 1
        self._counter(metrics.CACHE_MISSES, kind).inc()
        return Lookup(None, "miss", None)

    async def get_json(self, kind: str, key: str) -> Any | None:
        """Return the decoded value under key, or None on a miss."""
        raw, _ = await self.get_bytes(kind, key)
        return None if raw is None else orjson.loads(raw)

    async def set_json(self, kind: str, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a JSON-encodable value (or its JSON bytes) under key for ttl seconds (the kind's TTL by default)."""
        await self.set_bytes(kind, key, value if isinstance(value, bytes) else orjson.dumps(value), ttl)

    async def set_bytes(self, kind: str, key: str, raw: bytes, ttl: float | None = None) -> None:
        seconds = ttl if ttl is not None else CACHE_TTL[kind]
        # The memory copy is what keeps answers flowing if Redis goes away later.
        self.memory.set(key, raw, seconds)
        client = self._redis_usable()
        if client is None:
            self._mark_unsynced(key)
            return
        px = max(1, int(seconds * 1000))
        command: tuple[Any, ...] = ("SET", key, raw, "PX", px)
        if len(raw) > self.max_value_bytes:
            # Too large for Redis: kept in memory only (if it fits there), and any older value of the key in
            # Redis is dropped so no replica serves it; lookups here then answer from memory.
            self.stats.of(kind).too_large += 1
            self._counter(metrics.CACHE_TOO_LARGE, kind).inc()
            log.warning(
                "Cache value of kind=%s is %d bytes, over REDIS_MAX_VALUE_BYTES=%d: not written to Redis",
                kind,
                len(raw),
                self.max_value_bytes,
            )
            if len(self._local_only) >= _UNSYNCED_MAX:
                self._local_only = {k for k in self._local_only if self.memory.get(k) is not None}
            if len(self._local_only) < _UNSYNCED_MAX:
                self._local_only.add(key)
            command = ("DEL", key)
        try:
            await _pipeline(client, command, ("PUBLISH", INVALIDATION_CHANNEL, self._announce(key)))
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(kind, exc)
            self._mark_unsynced(key)
        else:
            self._redis_succeeded()
            self._unsynced.discard(key)
            if command[0] == "SET":
                self._local_only.discard(key)

    def _mark_unsynced(self, key: str) -> None:
        if self._redis is None:
            return
        if len(self._unsynced) >= _UNSYNCED_MAX:
            self._unsynced = {k for k in self._unsynced if self.memory.get(k) is not None}
        if len(self._unsynced) < _UNSYNCED_MAX:
            self._unsynced.add(key)

    async def touch(self, kind: str, key: str, ttl: float | None = None) -> None:
        """Give a cached value a fresh TTL without rewriting it (Redis PEXPIRE, and the L1 copy)."""
        seconds = ttl if ttl is not None else CACHE_TTL[kind]
        kept = self.memory.get(key)
        if kept is not None:
            self.memory.set(key, kept, seconds)
        client = self._redis_usable()
        if client is None:
            return
        try:
            await client.pexpire(key, max(1, int(seconds * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(kind, exc)
        else:
            self._redis_succeeded()

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self.memory.delete(key)
            self._unsynced.discard(key)
            self._local_only.discard(key)
        client = self._redis_usable()
        if client is None or not keys:
            return
        announcements = [("PUBLISH", INVALIDATION_CHANNEL, self._announce(key)) for key in keys]
        try:
            await _pipeline(client, ("DEL", *keys), *announcements)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("delete", exc)

    async def delete_prefix(self, prefix: str) -> int:
        """Drop every value whose key starts with prefix, here, in Redis and in every replica's L1."""
        dropped = self.memory.delete_prefix(prefix)
        client = self._redis_usable()
        if client is None:
            return dropped
        try:
            keys = [k async for k in client.scan_iter(match=_glob_escape(prefix) + "*", count=500)]
            for start in range(0, len(keys), 500):
                await _pipeline(client, *[("DEL", k) for k in keys[start : start + 500]])
            await client.publish(INVALIDATION_CHANNEL, self._announce(prefix + "*"))
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("delete", exc)
            return dropped
        return max(dropped, len(keys))

    async def drop_scope(self, scope: Scope, kinds: tuple[str, ...] = SCOPED_KINDS) -> dict[str, int]:
        """Drop every value of a scope, by kind, here, in Redis and in every replica's L1; count them per kind."""
        return {kind: await self.delete_prefix(scope.prefix(kind)) for kind in kinds}

    async def get_or_compute(
        self,
        kind: str,
        key: str,
        compute: Callable[[], Awaitable[T]],
        encode: Callable[[T], Any | Awaitable[Any]],
        decode: Callable[[bytes], T | Awaitable[T]],
        ttl: float | None = None,
        *,
        refresh: Callable[[T], Awaitable[T]] | None = None,
        soft_ttl: float | None = None,
        shared: bool = True,
    ) -> tuple[T, str]:
        """Return (value, "hit" | "stale" | "miss"), computing a missing value once across all replicas.

        - Concurrent misses in this process wait for one computation; across replicas, a Redis lock
          (token, TTL ``LOCK_TTL``) elects one computer and the others poll for its result for at most
          ``LOCK_WAIT`` seconds before computing themselves. A holder that dies releases by TTL.
        - ``shared=False``, for a value that never goes stale and costs less to compute twice than to coordinate (an embedding:
          ~15 ms, where the lock, the write and the unlock were three more Redis round trips before the
          answer): no lock across replicas, and the write to Redis goes on behind the answer (the memory
          copy at once; ``close`` finishes the writes still on their way).
        - With ``soft_ttl``, a value older than that is still returned at once, as "stale", and refreshed
          in the background (``refresh(old)``, or ``compute()``) by one replica.
        ``decode`` turns the cached JSON bytes into the value; ``encode`` turns the value into JSON data or
        into the JSON bytes themselves. Either may return an awaitable, to do a large value's work off the loop.
        """
        hard = ttl if ttl is not None else CACHE_TTL[kind]
        found = await self.lookup(kind, key)
        if found.raw is not None:
            try:
                value = await _decoded(decode(found.raw))
            except DECODE_ERRORS as exc:
                await self._drop_undecodable(kind, key, exc)  # then computed again, as a miss
            else:
                if (
                    soft_ttl is not None
                    and found.remaining is not None
                    and hard - found.remaining >= soft_ttl
                ):
                    old = value
                    produce = (lambda: refresh(old)) if refresh else compute
                    self._refresh_in_background(kind, key, produce, encode, hard, old)
                    return value, "stale"
                return value, "hit"
        pending = self._inflight.get(key)
        if pending is not None:
            waited: T = await asyncio.shield(pending)
            return waited, "hit"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            if shared:
                value, status = await self._compute_once_across_replicas(
                    kind, key, compute, encode, decode, hard
                )
            else:
                value, status = await compute(), "miss"
                self._store_behind(kind, key, await _decoded(encode(value)), hard)
            future.set_result(value)
            return value, status
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._inflight.pop(key, None)

    async def _compute_once_across_replicas(
        self,
        kind: str,
        key: str,
        compute: Callable[[], Awaitable[T]],
        encode: Callable[[T], Any | Awaitable[Any]],
        decode: Callable[[bytes], T | Awaitable[T]],
        ttl: float,
    ) -> tuple[T, str]:
        token = await self._acquire_lock(key)
        if token is None:  # another replica is computing: wait for its value, within bounds
            deadline = time.monotonic() + LOCK_WAIT
            while time.monotonic() < deadline:
                await asyncio.sleep(LOCK_POLL)
                found = await self.lookup(kind, key)
                if found.raw is not None:
                    try:
                        return await _decoded(decode(found.raw)), "hit"
                    except DECODE_ERRORS as exc:
                        await self._drop_undecodable(kind, key, exc)
                        break
                if not await self._locked(key):  # the holder gave up (or died) without a value
                    break
            log.info("Waited %.1fs for another replica to compute %s; computing here", LOCK_WAIT, kind)
        try:
            value = await compute()
            await self.set_json(kind, key, await _decoded(encode(value)), ttl)
            return value, "miss"
        finally:
            if token:
                await self._release_lock(key, token)

    def _store_behind(self, kind: str, key: str, value: Any, ttl: float) -> None:
        """Keep a value in memory now and write it to Redis in the background (``set_bytes``: fail-open)."""
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.memory.set(key, raw, ttl)
        if self._redis is None:
            return
        task = asyncio.create_task(self.set_bytes(kind, key, raw, ttl), name=f"dbmeta-store-{kind}")
        self._storing[key] = task
        task.add_done_callback(
            lambda done: self._storing.pop(key, None) if self._storing.get(key) is done else None
        )

    async def _drop_undecodable(self, kind: str, key: str, exc: Exception) -> None:
        """A cached value that does not decode (a stray write, another version's layout) is a miss, never an error."""
        log.warning(
            "A cached %s value could not be decoded (%s: %s); it is dropped and computed again",
            kind,
            type(exc).__name__,
            str(exc)[:200],
        )
        self.stats.of(kind).errors += 1
        await self.delete(key)

    def _refresh_in_background(
        self,
        kind: str,
        key: str,
        produce: Callable[[], Awaitable[T]],
        encode: Callable[[T], Any | Awaitable[Any]],
        ttl: float,
        old_value: T,
    ) -> None:
        if key in self._refreshing:
            return
        unchanged = old_value

        async def run() -> None:
            token = await self._acquire_lock(key)
            if token is None:
                return  # another replica is refreshing it
            try:
                value = await produce()
                if value is unchanged:
                    await self.touch(kind, key, ttl)  # still true: a new TTL, no re-encoding or re-sending
                else:
                    await self.set_json(kind, key, await _decoded(encode(value)), ttl)
                self.stats.of(kind).refreshes += 1
            except Exception as exc:  # noqa: BLE001 - the stale value keeps serving until its hard TTL
                log.warning(
                    "Background refresh of a %s value failed: %s: %s",
                    kind,
                    type(exc).__name__,
                    scrub(str(exc)),
                )
            finally:
                if token:
                    await self._release_lock(key, token)

        task = asyncio.create_task(run(), name=f"dbmeta-refresh-{kind}")
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def _acquire_lock(self, key: str) -> str | None:
        """Take the compute lock of a key: a token, "" when Redis is unusable (compute anyway), None if held."""
        client = self._redis_usable()
        if client is None:
            return ""
        token = uuid.uuid4().hex
        try:
            got = await client.set(f"{key}:lock", token, nx=True, px=int(LOCK_TTL * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("lock", exc)
            return ""
        return token if got else None

    async def _locked(self, key: str) -> bool:
        client = self._redis_usable()
        if client is None:
            return False
        try:
            return bool(await client.exists(f"{key}:lock"))
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("lock", exc)
            return False

    async def _release_lock(self, key: str, token: str) -> None:
        client = self._redis_usable()
        if client is None:
            return
        try:
            await client.eval(_RELEASE_LOCK, 1, f"{key}:lock", token)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("lock", exc)  # the lock expires by its TTL

    async def ping(self) -> bool:
        """Tell whether Redis answers now (False when disabled)."""
        if self._redis is None:
            return False
        try:
            await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("ping", exc)
            return False
        self._redis_succeeded()
        return True

    def stats_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "redis_enabled": self.enabled,
            "l1_coherent": self.l1_coherent,
            "breaker": self.breaker.to_json(),
            "memory_entries": len(self.memory),
            "memory_bytes": self.memory.size_bytes,
            "kinds": {kind: s.to_json() for kind, s in sorted(self.stats.kinds.items())},
        }

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        if self._storing:
            # each is one pipelined SET within the socket timeout; what they carry is shared with the replicas
            await asyncio.wait(list(self._storing.values()), timeout=5.0)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._redis is not None:
            await self._redis.aclose()
