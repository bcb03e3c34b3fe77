"""Table search inside the service: one embedder and one Milvus client per process, an index per profile.

- The embedder is loaded once (off the event loop); a missing model is a clear start-up error.
- Milvus (a Lite file under DATA_DIR by default, or a server at MILVUS_URI) sits behind a circuit breaker;
  when it is unavailable, or a profile's index is not built yet, requests get the in-process keyword
  ranking, flagged ``degraded`` — never an error.
- Indexes are built in the background (at start-up when INDEX_ON_STARTUP, and whenever the snapshot version
  changes), incrementally, one profile at a time per process and per deployment (a Redis lock).
- Query embeddings are cached (kind ``embedding``: model id + sha256 of the text).
- Each profile's query examples have their own collection, synced with the tables: at index time every
  example's SQL is checked against the snapshot, and examples that no longer fit are kept out of searches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import orjson
from threadpoolctl import threadpool_limits

from dbmeta_app import metrics
from dbmeta_app.breaker import CircuitBreaker
from dbmeta_app.cache.redis_cache import RedisCache, cache_key
from dbmeta_app.config import Settings
from dbmeta_app.errors import ConfigError
from dbmeta_app.introspection.models import Snapshot
from dbmeta_app.prompt_items.db_struct import load_snapshot
from dbmeta_app.prompt_items.query_examples import (
    ExampleCheck,
    check_examples,
    example_text,
    examples_version,
    get_query_examples,
)
from dbmeta_app.runtime import ProfileRuntime, Runtime
from dbmeta_app.search.documents import example_group, lexical_query
from dbmeta_app.search.embedder import Embedder, ModelNotFoundError
from dbmeta_app.search.keyword import KeywordIndex
from dbmeta_app.search.milvus_index import (
    ExampleIndex,
    HybridConfig,
    SyncStats,
    TableIndex,
    connect,
    resolve_uri,
)
from dbmeta_app.search.service import TableHit, TableSearch

log = logging.getLogger(__name__)

_embedders: dict[str, Embedder] = {}
RECENT_SEARCHES = 2048
_embedders_lock = threading.Lock()


def load_embedder(model: str) -> Embedder:
    """Load (once per process) the embedding model; blocking."""
    with _embedders_lock:
        embedder = _embedders.get(model)
        if embedder is None:
            embedder = _embedders[model] = Embedder(model)
        return embedder


@dataclass
class ProfileIndex:
    """The search state of one profile."""

    index: TableIndex
    examples: ExampleIndex
    state: str = "missing"  # missing | building | ready | failed
    version: str | None = None  # snapshot version the live index was built from
    search: TableSearch | None = None
    error: str | None = None
    last_sync: dict[str, Any] | None = None
    # The example collection: the (snapshot, examples) version it holds and the verdicts it was built with.
    examples_version: str | None = None
    example_checks: dict[str, ExampleCheck] = field(default_factory=dict)
    examples_error: str | None = None
    last_examples_sync: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[TableHit]
    degraded: bool
    reason: str | None
    elapsed_ms: float


class SearchRuntime:
    """Everything table search needs in the service process (held in ``runtime.search``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings: Settings = runtime.settings
        self.cache: RedisCache = runtime.cache
        self.embedder: Embedder | None = None
        self.client: Any = None
        self.breaker = CircuitBreaker("milvus", failure_threshold=3, cooldown=2.0, max_cooldown=30.0)
        self.profiles: dict[str, ProfileIndex] = {}
        self.milvus_error: str | None = None
        # Recent answers by (what, profile, snapshot or examples version, index version, top_k, text): a
        # retried request is answered without searching again. In process and bounded; a change misses it.
        self._recent: OrderedDict[tuple[str, str, str, str | None, int, str], tuple[Any, ...]] = OrderedDict()

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self, background: bool = True) -> None:
        """Load the model, connect to Milvus, and (in the service) start indexing profiles in the background."""
        try:
            self.embedder = await anyio.to_thread.run_sync(load_embedder, self.settings.embedding_model)
        except ModelNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        # numpy's BLAS (the index mirror's products) keeps its threads spinning after each product; on a
        # small machine they starve the model's threads (measured: embedding a request took 24 ms, not 16).
        threadpool_limits(1, user_api="blas")
        await self._connect()
        if background and self.settings.index_on_startup:
            for rt in self.runtime.profiles.values():
                self.schedule_sync(rt)

    async def _connect(self) -> bool:
        if self.client is not None:
            return True
        uri = resolve_uri(self.settings.milvus_uri, self.settings.data_dir)
        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
        try:
            self.client = await anyio.to_thread.run_sync(lambda: connect(uri, token))
        except Exception as exc:  # noqa: BLE001 - any failure to reach Milvus degrades search, never start-up
            self.milvus_error = f"{type(exc).__name__}: {exc}"[:300]
            self.breaker.record_failure()
            log.warning(
                "Milvus unavailable (%s); table search falls back to keyword ranking", self.milvus_error
            )
            return False
        self.milvus_error = None
        self.breaker.record_success()
        return True

    def _profile(self, rt: ProfileRuntime) -> ProfileIndex | None:
        entry = self.profiles.get(rt.name)
        if entry is None and self.client is not None:
            options: dict[str, Any] = {
                "client_name": self.settings.client,
                "env": self.settings.env,
                "profile": rt.name,
                "database": rt.scope.database,  # an index built for another database is never used
                "hybrid": HybridConfig(ranker=self.settings.search_fusion),
                "mirror_max_rows": self.settings.search_mirror_max_rows,
            }
            entry = self.profiles[rt.name] = ProfileIndex(
                TableIndex(self.client, **options), ExampleIndex(self.client, **options)
            )
        return entry

    async def close(self) -> None:
        for entry in self.profiles.values():
            if entry.task is not None:
                entry.task.cancel()
        if self.client is not None:
            client, self.client = self.client, None
            await anyio.to_thread.run_sync(client.close)

    # ---- indexing -----------------------------------------------------------------------------

    def schedule_sync(self, rt: ProfileRuntime, rebuild: bool = False) -> None:
        """Bring a profile's index up to date in the background (no-op while one is running)."""
        entry = self._profile(rt)
        if entry is None or (entry.task is not None and not entry.task.done()):
            return
        entry.task = asyncio.create_task(self._sync_safely(rt, rebuild), name=f"dbmeta-index-{rt.name}")

    async def _sync_safely(self, rt: ProfileRuntime, rebuild: bool) -> None:
        try:
            await self.sync(rt, rebuild=rebuild)
        except Exception as exc:  # noqa: BLE001 - reported in /readyz; search stays on keywords
            log.warning("Indexing profile=%s failed: %s: %s", rt.name, type(exc).__name__, exc)

    async def sync(
        self,
        rt: ProfileRuntime,
        *,
        rebuild: bool = False,
        progress: Callable[[int, int], None] | None = None,
        force: bool = False,
    ) -> SyncStats | None:
        """Index the profile's current snapshot and examples (only what changed is embedded).

        Returns what the table sync did, None when there was nothing to do or Milvus is unavailable.
        """
        if self.embedder is None or not await self._connect():
            return None
        entry = self._profile(rt)
        assert entry is not None
        async with entry.lock:
            snapshot, _ = await load_snapshot(self.settings, self.cache, rt)
            stats = None
            if not (entry.state == "ready" and entry.version == snapshot.version and not (rebuild or force)):
                stats = await self._sync_tables(rt, entry, snapshot, rebuild, progress)
            await self._sync_examples(rt, entry, snapshot, rebuild=rebuild, force=force)
            return stats

    async def _sync_tables(
        self,
        rt: ProfileRuntime,
        entry: ProfileIndex,
        snapshot: Snapshot,
        rebuild: bool,
        progress: Callable[[int, int], None] | None,
    ) -> SyncStats:
        assert self.embedder is not None
        entry.state = "building" if entry.state != "ready" else "ready"
        started = time.perf_counter()
        search = TableSearch(snapshot, self.embedder, entry.index)
        try:
            stats = await anyio.to_thread.run_sync(lambda: search.sync(progress, rebuild=rebuild))
        except Exception as exc:
            entry.error = f"{type(exc).__name__}: {exc}"[:300]
            if entry.search is None:
                entry.state = "failed"
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        entry.search, entry.version, entry.state, entry.error = search, snapshot.version, "ready", None
        entry.last_sync = _sync_report(stats, started)
        log.info("Indexed profile=%s (version %s): %s", rt.name, snapshot.version, entry.last_sync)
        return stats

    async def _sync_examples(
        self, rt: ProfileRuntime, entry: ProfileIndex, snapshot: Snapshot, *, rebuild: bool, force: bool
    ) -> None:
        """Check every example against the snapshot and bring the example collection in line."""
        assert self.embedder is not None
        embedder = self.embedder
        try:
            examples = await get_query_examples(self.settings, self.cache, rt)
        except ConfigError as exc:
            entry.examples_error = str(exc)[:300]  # the request path reports the same error to the caller
            return
        version = examples_version(snapshot, examples)
        if entry.examples_version == version and not (rebuild or force):
            return
        started = time.perf_counter()
        checks = await anyio.to_thread.run_sync(lambda: check_examples(examples, snapshot))
        groups = [example_group(e.id, example_text(e), checks[e.id].ok, embedder.model_id) for e in examples]
        try:
            stats = await anyio.to_thread.run_sync(
                lambda: entry.examples.sync_groups(groups, version, embedder, rebuild=rebuild)
            )
        except Exception as exc:  # noqa: BLE001 - examples fall back to in-process ranking; tables are unaffected
            entry.examples_error = f"{type(exc).__name__}: {exc}"[:300]
            self.breaker.record_failure()
            log.warning("Indexing the examples of profile=%s failed: %s", rt.name, entry.examples_error)
            return
        entry.examples_version, entry.example_checks, entry.examples_error = version, checks, None
        entry.last_examples_sync = {
            **_sync_report(stats, started),
            "stale": sorted(i for i, c in checks.items() if not c.ok),
        }
        log.info("Indexed the examples of profile=%s: %s", rt.name, entry.last_examples_sync)

    async def on_schema_change(self, rt: ProfileRuntime, _: dict[str, Any]) -> None:
        """Schema listener: re-index a profile whose schema changed (the sync embeds only what changed)."""
        self.schedule_sync(rt)

    # ---- search -------------------------------------------------------------------------------

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed a request (cached by model id and sha256 of the text); the model runs in a thread."""
        assert self.embedder is not None
        embedder = self.embedder
        key = cache_key(
            "embedding",
            model=embedder.model_id,
            text=hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
        )

        async def compute() -> npt.NDArray[np.float32]:
            vectors = await anyio.to_thread.run_sync(lambda: embedder.encode([text]))
            return np.asarray(vectors[0], dtype=np.float32)

        def decode(raw: bytes) -> npt.NDArray[np.float32]:
            return np.asarray(orjson.loads(raw), dtype=np.float32)

        # get_or_compute: the schema and the examples of one request embed its text once, not twice
        vector, _ = await self.cache.get_or_compute(
            "embedding", key, compute, lambda v: [float(x) for x in v], decode
        )
        return vector

    async def search(self, rt: ProfileRuntime, snapshot: Snapshot, query: str, top_k: int) -> SearchResult:
        """Pick the top_k tables for a request: hybrid retrieval, or keyword ranking when degraded."""
        started = time.perf_counter()
        entry = self._profile(rt)
        reason: str | None = None
        if entry is None or self.embedder is None:
            reason = "search index unavailable: " + (self.milvus_error or "Milvus is not connected")
        else:
            if entry.version != snapshot.version:
                self.schedule_sync(rt)  # the schema changed (or was never indexed)
            search = entry.search
            memo_key = ("tables", rt.name, snapshot.version, entry.version, top_k, query)
            remembered = self._recall(memo_key)
            if remembered is not None and search is not None:
                return self._done(rt, list(remembered), None, started)
            if search is None:
                reason = (
                    "search index is being built"
                    if entry.state != "failed"
                    else f"indexing failed: {entry.error}"
                )
            elif not self.breaker.allow():
                reason = "Milvus is failing; circuit breaker open"
            else:
                try:
                    vector = await self.embed_query(query)
                    hits = await anyio.to_thread.run_sync(lambda: search.search(query, top_k, vector=vector))
                except Exception as exc:  # noqa: BLE001 - a failing index degrades the answer, never fails it
                    self.breaker.record_failure()
                    reason = f"search failed ({type(exc).__name__}); keyword ranking used"
                    log.warning("Table search failed for profile=%s: %s", rt.name, exc)
                else:
                    self.breaker.record_success()
                    # An index built from an older snapshot may name tables that are gone: keep current keys.
                    hits = [h for h in hits if h.name in snapshot.tables]
                    self._remember(memo_key, tuple(hits))
                    return self._done(rt, hits, None, started)
        ranked = keyword_index(snapshot).search(query, top_k)
        return self._done(rt, [TableHit(name, round(score, 6)) for name, score in ranked], reason, started)

    def indexed_checks(self, rt: ProfileRuntime, version: str) -> dict[str, ExampleCheck] | None:
        """The verdicts the example collection holds for this ``examples_version``, else None."""
        entry = self.profiles.get(rt.name)
        if entry is None or entry.examples_version != version:
            return None
        return entry.example_checks

    async def find_examples(
        self, rt: ProfileRuntime, wanted: str, query: str, limit: int
    ) -> list[tuple[str, float]] | str:
        """Search the example collection (hybrid dense + BM25): (example id, score), best first.

        ``wanted`` is the ``examples_version`` of the request's snapshot and examples. A string says why
        the collection cannot answer (it holds other examples, Milvus is down). When it was checked against
        an older schema it still answers, and a re-index is scheduled: the caller filters the hits with
        verdicts for the current schema.
        """
        entry = self._profile(rt)
        if entry is None or self.embedder is None:
            return "example index unavailable: " + (self.milvus_error or "Milvus is not connected")
        indexed = entry.examples_version
        if indexed != wanted:
            self.schedule_sync(rt)  # examples or schema changed (or never indexed)
            if indexed is None or indexed.split(":", 1)[1] != wanted.split(":", 1)[1]:
                return entry.examples_error or "example index is being built"
        memo_key = ("examples", rt.name, wanted, indexed, limit, query)
        remembered = self._recall(memo_key)
        if remembered is not None:
            return list(remembered)
        if not self.breaker.allow():
            return "Milvus is failing; circuit breaker open"
        index = entry.examples
        try:
            vector = await self.embed_query(query)
            hits = await anyio.to_thread.run_sync(lambda: index.search(lexical_query(query), vector, limit))
        except Exception as exc:  # noqa: BLE001 - a failing index degrades the answer, never fails it
            self.breaker.record_failure()
            log.warning("Example search failed for profile=%s: %s", rt.name, exc)
            return f"example search failed ({type(exc).__name__})"
        self.breaker.record_success()
        self._remember(memo_key, tuple(hits))
        return hits

    def _recall(self, key: tuple[str, str, str, str | None, int, str]) -> tuple[Any, ...] | None:
        found = self._recent.get(key)
        if found is not None:
            self._recent.move_to_end(key)
        return found

    def _remember(self, key: tuple[str, str, str, str | None, int, str], value: tuple[Any, ...]) -> None:
        self._recent[key] = value
        while len(self._recent) > RECENT_SEARCHES:
            self._recent.popitem(last=False)

    def _done(
        self, rt: ProfileRuntime, hits: list[TableHit], reason: str | None, started: float
    ) -> SearchResult:
        elapsed = time.perf_counter() - started
        metrics.SEARCH_SECONDS.labels(rt.name).observe(elapsed)
        return SearchResult(hits, reason is not None, reason, round(elapsed * 1000, 2))

    # ---- reporting ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What /readyz shows about search."""
        return {
            "model": self.embedder.model_id if self.embedder else None,
            "milvus": "connected" if self.client is not None else f"unavailable ({self.milvus_error})",
            "breaker": self.breaker.to_json(),
            "profiles": {
                name: {
                    "state": e.state,
                    "version": e.version,
                    "error": e.error,
                    "last_sync": e.last_sync,
                    "examples": {
                        "state": "ready" if e.examples_version else "missing",
                        "error": e.examples_error,
                        "last_sync": e.last_examples_sync,
                    },
                }
                for name, e in self.profiles.items()
            },
        }


#: With keyword ranking only and nothing matching, a schema this small is returned whole rather than empty.
SMALL_SCHEMA = 50


_keyword_indexes: dict[str, KeywordIndex] = {}


def keyword_index(snapshot: Snapshot) -> KeywordIndex:
    """The keyword index of a snapshot, built once per profile and snapshot version."""
    index = _keyword_indexes.get(snapshot.profile)
    if index is None or index.version != snapshot.version:
        index = _keyword_indexes[snapshot.profile] = KeywordIndex.build(snapshot)
    return index


async def search_tables(
    runtime: Runtime, rt: ProfileRuntime, query: str, top_k: int
) -> tuple[tuple[Snapshot, str], SearchResult]:
    """Return the profile's (snapshot, cache status) and the top_k tables for a request."""
    loaded = await load_snapshot(runtime.settings, runtime.cache, rt)
    snapshot = loaded[0]
    if runtime.search is not None:
        result = await runtime.search.search(rt, snapshot, query, top_k)
    else:
        started = time.perf_counter()
        ranked = keyword_index(snapshot).search(query, top_k) if snapshot.tables else []
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        result = SearchResult([TableHit(k, round(s, 6)) for k, s in ranked], False, None, elapsed)
    return loaded, result


async def search_relevant_tables(
    query: str, profile: str | None = None, top_k: int = 10, *, runtime: Runtime
) -> list[TableHit]:
    """Return the tables a request needs, best first; names are the snapshot's keys."""
    _, result = await search_tables(runtime, runtime.profile(profile), query, top_k)
    return result.hits


def _sync_report(stats: SyncStats, started: float) -> dict[str, Any]:
    return {
        "added": stats.added,
        "updated": stats.updated,
        "removed": stats.removed,
        "unchanged": stats.unchanged,
        "embedded": stats.embedded,
        "seconds": round(time.perf_counter() - started, 3),
    }
