"""Table search inside the service: one embedder and one Milvus client per process, an index per profile.

- The embedder is loaded once (off the event loop); a missing model is a clear start-up error.
- Milvus (a Lite file under DATA_DIR by default, or a server at MILVUS_URI) sits behind a circuit breaker;
  when it is unavailable, or a profile's index is not built yet, requests get the in-process keyword
  ranking, flagged ``degraded`` — never an error.
- Indexes are built in the background (at start-up when INDEX_ON_STARTUP, and whenever the snapshot version
  changes), incrementally, one profile at a time per process and per deployment (a Redis lock).
- Query embeddings are cached (kind ``embedding``: model id + sha256 of the text).
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

from dbmeta_app import metrics
from dbmeta_app.breaker import CircuitBreaker
from dbmeta_app.cache.redis_cache import RedisCache, cache_key
from dbmeta_app.config import Settings
from dbmeta_app.errors import ConfigError
from dbmeta_app.introspection.models import Snapshot
from dbmeta_app.prompt_items.db_struct import load_snapshot
from dbmeta_app.runtime import ProfileRuntime, Runtime
from dbmeta_app.search.embedder import Embedder, ModelNotFoundError
from dbmeta_app.search.keyword import KeywordIndex
from dbmeta_app.search.milvus_index import HybridConfig, SyncStats, TableIndex, connect, resolve_uri
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
    state: str = "missing"  # missing | building | ready | failed
    version: str | None = None  # snapshot version the live index was built from
    search: TableSearch | None = None
    error: str | None = None
    last_sync: dict[str, Any] | None = None
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
        self.example_vectors: dict[str, npt.NDArray[np.float32]] = {}
        # Recent answers by (profile, snapshot version, index version, top_k, text): a retried request is
        # answered without searching again. In process and bounded; an index or schema change misses it.
        self._recent: OrderedDict[tuple[str, str, str | None, int, str], tuple[TableHit, ...]] = OrderedDict()

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self, background: bool = True) -> None:
        """Load the model, connect to Milvus, and (in the service) start indexing profiles in the background."""
        try:
            self.embedder = await anyio.to_thread.run_sync(load_embedder, self.settings.embedding_model)
        except ModelNotFoundError as exc:
            raise ConfigError(str(exc)) from None
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
            index = TableIndex(
                self.client,
                client_name=self.settings.client,
                env=self.settings.env,
                profile=rt.name,
                hybrid=HybridConfig(ranker=self.settings.search_fusion),
            )
            entry = self.profiles[rt.name] = ProfileIndex(index)
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
        """Index the profile's current snapshot (only changed tables are embedded); return what it did."""
        if self.embedder is None or not await self._connect():
            return None
        entry = self._profile(rt)
        assert entry is not None
        async with entry.lock:
            snapshot, _ = await load_snapshot(self.settings, self.cache, rt)
            if entry.state == "ready" and entry.version == snapshot.version and not (rebuild or force):
                return None
            entry.state = "building" if entry.state != "ready" else "ready"
            embedder = self.embedder
            started = time.perf_counter()
            search = TableSearch(snapshot, embedder, entry.index)
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
            entry.last_sync = {
                "added": stats.added,
                "updated": stats.updated,
                "removed": stats.removed,
                "unchanged": stats.unchanged,
                "embedded": stats.embedded,
                "seconds": round(time.perf_counter() - started, 3),
            }
            log.info("Indexed profile=%s (version %s): %s", rt.name, snapshot.version, entry.last_sync)
            return stats

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
            memo_key = (rt.name, snapshot.version, entry.version, top_k, query)
            remembered = self._recent.get(memo_key)
            if remembered is not None and search is not None:
                self._recent.move_to_end(memo_key)
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
                    self._recent[memo_key] = tuple(hits)
                    while len(self._recent) > RECENT_SEARCHES:
                        self._recent.popitem(last=False)
                    return self._done(rt, hits, None, started)
        ranked = keyword_index(snapshot).search(query, top_k)
        return self._done(rt, [TableHit(name, round(score, 6)) for name, score in ranked], reason, started)

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
                name: {"state": e.state, "version": e.version, "error": e.error, "last_sync": e.last_sync}
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


async def example_similarities(runtime: Runtime, texts: dict[str, str], query: str) -> dict[str, float]:
    """Cosine similarity of a request to each example text (empty without the embedding model)."""
    search = runtime.search
    if search is None or search.embedder is None or not texts:
        return {}
    embedder = search.embedder
    ids = sorted(texts)
    digest = hashlib.sha256(orjson.dumps([[i, texts[i]] for i in ids])).hexdigest()
    matrix = search.example_vectors.get(digest)
    if matrix is None:
        matrix = await anyio.to_thread.run_sync(lambda: embedder.encode([texts[i] for i in ids]))
        search.example_vectors = {digest: matrix}  # one example set per process is the common case
    vector = await search.embed_query(query)
    sims = matrix @ vector
    return {i: float(s) for i, s in zip(ids, sims, strict=True)}
