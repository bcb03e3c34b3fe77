"""Table search inside the service: one embedder and one Milvus client per process, an index per profile.

- The embedder is loaded once (off the event loop); a missing model is a clear start-up error.
- Milvus is a Lite file under DATA_DIR by default, or a server at MILVUS_URI (with MILVUS_TOKEN); /readyz
  shows its version and, per profile, where searches run (a server without BM25: ranked in process).
  A Lite file is opened by one process only (its owner, see ``dbmeta_app.ownership``); the other processes
  on it (the workers of ``serve --workers N``, the CLI) connect to the owner's Milvus Lite server, and take
  over when it stops.
- Indexes are built by one builder task per process, one profile at a time, and every build holds the
  file's build lock (Milvus Lite is not safe for concurrent DDL: builds of other processes wait too).
  A build that fails is retried with a growing delay; every Milvus call has a deadline, so a build
  cannot hang: it fails with the reason, shown in /readyz, and is retried.
- A profile's searches sit behind that profile's circuit breaker: a failing index degrades its own
  answers only, and a failing build never opens a breaker. While a profile's index is missing, being
  first built, or its breaker is open, its searches get the in-process keyword ranking, flagged
  ``degraded`` — never an error — and /readyz reports the service not ready (see ``state``).
- Query embeddings are cached (kind ``embedding``: model id + sha256 of the text).
- Each profile's query examples have their own collection, synced with the tables: at index time every
  example's SQL is checked against the snapshot, and examples that no longer fit are kept out of searches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import anyio
import numpy as np
import numpy.typing as npt
import orjson

from dbmeta_app import metrics
from dbmeta_app.breaker import CircuitBreaker
from dbmeta_app.cache.redis_cache import RedisCache, cache_key
from dbmeta_app.config import Settings
from dbmeta_app.errors import ConfigError, DbmetaError, UpstreamUnavailableError
from dbmeta_app.examples.query_examples import (
    ExampleCheck,
    check_examples,
    example_text,
    examples_version,
    get_query_examples,
)
from dbmeta_app.ownership import Anchor, BuildLock, OwnerRecord, lite_path, served_identities
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.schema.store import load_snapshot
from dbmeta_app.search.documents import example_group, lexical_query
from dbmeta_app.search.embedder import Embedder, ModelNotFoundError, submit_to_torch_thread
from dbmeta_app.search.hits import TableHit
from dbmeta_app.search.keyword import KeywordIndex
from dbmeta_app.search.milvus_index import (
    ExampleIndex,
    HybridConfig,
    SearchPath,
    SyncStats,
    TableIndex,
    connect,
    resolve_uri,
)
from dbmeta_app.search.service import TableSearch
from dbmeta_app.tasks import stop_tasks

log = logging.getLogger(__name__)

RECENT_SEARCHES = 2048

#: Seconds between two looks at the connection, the owner of a Lite file and retries that are due.
SUPERVISE_INTERVAL = 1.0
#: Seconds before the next attempt after the 1st, 2nd, ... failed build of a profile (then the last, again).
RETRY_DELAYS = (2.0, 10.0, 30.0, 120.0, 300.0)
#: Failed attempts (builds, or connections to Milvus) after which start-up is over for readiness: the
#: service is then warm but degraded (``/readyz?allow_degraded=true`` answers 200), and keeps retrying.
SETTLE_ATTEMPTS = 3


T = TypeVar("T")
MemoKey = tuple[str, str, str, str | None, int, str]


class BuildState(StrEnum):
    """Where a profile's table index stands (shown in /readyz as its value)."""

    MISSING = "missing"  # never built in this process
    BUILDING = "building"  # its first build is running
    READY = "ready"  # an index serves (a rebuild may be running beside it)
    FAILED = "failed"  # no index serves: the last build failed, a retry is scheduled


class IndexBuildError(DbmetaError):
    code = "index_build_failed"
    status_code = 503


@dataclass
class ProfileIndex:
    """The search state of one profile."""

    index: TableIndex
    examples: ExampleIndex
    breaker: CircuitBreaker  # this profile's searches only
    state: BuildState = BuildState.MISSING  # of the table index
    version: str | None = None  # snapshot version the live index was built from
    search: TableSearch | None = None
    error: str | None = None  # why the last build failed (kept while a previous index still serves)
    last_sync: dict[str, Any] | None = None
    # The example collection: the (snapshot, examples) version it holds and the verdicts it was built with.
    examples_version: str | None = None
    example_checks: dict[str, ExampleCheck] = field(default_factory=dict)
    examples_error: str | None = None
    examples_invalid: bool = False  # the examples files are wrong: a config error, not retried
    last_examples_sync: dict[str, Any] | None = None
    attempts: int = 0  # failed builds in a row
    retry_at: float | None = None  # monotonic time of the next automatic attempt
    building_since: float | None = None  # monotonic start of the running build
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def examples_ready(self) -> bool:
        # Invalid example files are an error for the caller either way (never a degraded answer).
        return self.examples_version is not None or self.examples_invalid

    @property
    def settled(self) -> bool:
        """Tell whether start-up is over for this profile: indexed, or given its first attempts."""
        return (self.search is not None and self.examples_ready) or self.attempts >= SETTLE_ATTEMPTS


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[TableHit]
    degraded: bool
    reason: str | None
    elapsed_ms: float
    path: SearchPath | None = None  # where the index computed each half; None: keyword ranking only

    def answer(self, profile: str) -> dict[str, Any]:
        """The table-search answer every face gives (HTTP, MCP, CLI): the fixed keys, then extras."""
        answer: dict[str, Any] = {
            "profile": profile,
            "tables": [h.to_json() for h in self.hits],
            "degraded": self.degraded,
            # "server": Milvus' BM25 function; "process": in-process BM25 (the keyword ranking when degraded)
            "lexical": self.path.lexical if self.path is not None else "process",
            "dense": self.path.dense if self.path is not None else None,
        }
        if self.reason:
            answer["reason"] = self.reason
        return answer


class SearchHost(Protocol):
    """What search needs of the process's runtime (``runtime.Runtime`` is one; search never imports it)."""

    settings: Settings
    cache: RedisCache
    profiles: dict[str, ProfileRuntime]
    anchor: Anchor | None
    http_url: str | None
    search: SearchRuntime | None


class SearchRuntime:
    """Everything table search needs in the service process (held in ``runtime.search``)."""

    def __init__(self, runtime: SearchHost) -> None:
        self.runtime = runtime
        # the column search of a request runs here beside its table search (shut down in close)
        self.search_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dbmeta-milvus")
        self.settings: Settings = runtime.settings
        self.cache: RedisCache = runtime.cache
        self.embedder: Embedder | None = None
        self.client: Any = None
        self.profiles: dict[str, ProfileIndex] = {}
        self.milvus_error: str | None = None
        self.server_version: str | None = None  # what the Milvus server (or Lite) says it is, once connected
        self.connect_failures = 0
        self.lite = lite_path(self.settings)
        if self.lite is not None and runtime.anchor is None:
            runtime.anchor = Anchor(self.lite, served=served_identities(self.settings))
        # Every build in this process holds it; on a Lite file, builds of other processes too.
        self.build_lock = runtime.anchor.build_lock() if self.lite and runtime.anchor else BuildLock(None)
        self.role = "server" if self.lite is None else "none"  # owner | follower of a Lite file
        self.following: OwnerRecord | None = None
        self._queue: dict[str, bool] = {}  # profile -> rebuild, in arrival order
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background = False
        # Recent answers by (what, profile, snapshot or examples version, index version, top_k, text): a
        # retried request is answered without searching again. In process and bounded; a change misses it.
        self._recent: OrderedDict[MemoKey, tuple[Any, ...]] = OrderedDict()

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self, background: bool = True) -> None:
        """Load the model and connect to Milvus; in the service, index every profile in the background."""
        try:
            self.embedder = await anyio.to_thread.run_sync(Embedder, self.settings.embedding_model)
        except ModelNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        self._background = background
        await self._connect()
        if background:
            if self.settings.index_on_startup:
                for rt in self.runtime.profiles.values():
                    self.schedule_sync(rt)
            self._tasks = [
                asyncio.create_task(self._build_loop(), name="dbmeta-index-builder"),
                asyncio.create_task(self._supervise(), name="dbmeta-index-supervisor"),
            ]

    async def _connect(self) -> bool:
        if self.client is not None:
            return True
        try:
            client = await anyio.to_thread.run_sync(self._open_client)
        except Exception as exc:  # noqa: BLE001 - any failure to reach Milvus degrades search, never start-up
            error = _short(exc)
            if error != self.milvus_error:
                log.warning("Milvus unavailable (%s); table search falls back to keyword ranking", error)
            self.milvus_error = error
            self.connect_failures += 1
            return False
        self.client, self.milvus_error, self.connect_failures = client, None, 0
        self.server_version = await anyio.to_thread.run_sync(_server_version, client)
        for entry in self.profiles.values():
            entry.index.rebind(client)
            entry.examples.rebind(client)
        return True

    def _open_client(self) -> Any:
        """Connect: to a Milvus server, or to a Lite file as its owner, or through its owner (blocking)."""
        if self.lite is None:
            uri = resolve_uri(self.settings.milvus_uri, self.settings.data_dir)
            token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
            return connect(uri, token)
        anchor = self.runtime.anchor
        assert anchor is not None
        if anchor.claim():
            try:
                client = connect(str(self.lite))
            except Exception as exc:  # noqa: BLE001 - held by a process that is not dbmeta, or unreadable
                anchor.release()
                raise IndexHeldError(
                    f"cannot open the Milvus Lite file {self.lite} ({_short(exc)}): another program holds it, "
                    "or it is unreadable; stop that program, or set another DATA_DIR or MILVUS_URI"
                ) from None
            anchor.publish(milvus=_lite_server_uri(self.lite), url=self.runtime.http_url)
            self.role, self.following = "owner", None
            log.info("This process (owner) holds the Milvus Lite file %s", self.lite)
            return client
        record = anchor.owner()
        if record is None or record.milvus is None:
            raise IndexHeldError(
                f"the Milvus Lite file {self.lite} is held by another dbmeta process that is still "
                "starting: try again in a moment"
            )
        client = connect(record.milvus, lite=True)
        self.role, self.following = "follower", record
        log.info("Milvus Lite file %s is held by pid %d: searching through it", self.lite, record.pid)
        return client

    def _profile(self, rt: ProfileRuntime) -> ProfileIndex | None:
        entry = self.profiles.get(rt.name)
        if entry is None and self.client is not None:
            options: dict[str, Any] = {
                # the profile's scope names its indexes: another database's index is never used
                "client_name": rt.scope.client,
                "env": rt.scope.env,
                "profile": rt.scope.profile,
                "database": rt.scope.database,
                "hybrid": HybridConfig(ranker=self.settings.search_fusion),
                "mirror_max_rows": self.settings.search_mirror_max_rows,
                "build_lock": self.build_lock,
                "search_pool": self.search_pool,
            }
            entry = self.profiles[rt.name] = ProfileIndex(
                TableIndex(self.client, **options),
                ExampleIndex(self.client, **options),
                CircuitBreaker(f"milvus:{rt.name}", failure_threshold=3, cooldown=2.0, max_cooldown=30.0),
            )
        return entry

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self._drop_client()
        # A build thread finishes its current Milvus call (which fails: the client is closed) first; a task
        # whose library call swallowed the cancellation is asked again.
        await stop_tasks(self._tasks, "table search")
        self._tasks = []
        self.search_pool.shutdown(wait=False, cancel_futures=True)

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        await anyio.to_thread.run_sync(client.close)
        if self.role == "owner" and self.lite is not None:
            # The in-process Milvus Lite server holds the file: stop it, so the next owner can open it.
            await anyio.to_thread.run_sync(_release_lite_server, self.lite)
            if self.runtime.anchor is not None:
                self.runtime.anchor.release()
        self.role = "none" if self.lite is not None else "server"

    # ---- indexing -----------------------------------------------------------------------------

    def schedule_sync(
        self, rt: ProfileRuntime, rebuild: bool = False, *, now: bool = False, first: bool = False
    ) -> None:
        """Queue a profile for the builder (no-op while queued, or while a failed one waits to retry).

        ``first``: a request waits for this profile's index: build it before the others still queued.
        """
        entry = self.profiles.get(rt.name)
        if not now and entry is not None and entry.retry_at is not None and time.monotonic() < entry.retry_at:
            return  # the supervisor queues it again when its delay is over
        if now and entry is not None:
            entry.retry_at = None
        rebuild = self._queue.pop(rt.name, False) or rebuild
        if first:
            self._queue = {rt.name: rebuild, **self._queue}
        else:
            self._queue[rt.name] = rebuild
        self._wake.set()

    async def _build_loop(self) -> None:
        """Build queued profiles one at a time (the model sets the pace; Milvus Lite needs it)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and self.client is not None:
                name = next(iter(self._queue))
                rebuild = self._queue.pop(name)
                rt = self.runtime.profiles.get(name)
                if rt is None:
                    continue
                try:
                    await self._build(rt, rebuild)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the builder must outlive any one build (_build reports its own)
                    log.exception("Index builder failed on profile=%s", name)

    async def _build(self, rt: ProfileRuntime, rebuild: bool) -> None:
        entry = self._profile(rt)
        if entry is None:
            self._queue.setdefault(rt.name, rebuild)  # not connected (any more): the supervisor reconnects
            return
        try:
            report = await self.sync(rt, rebuild=rebuild)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported in /readyz and retried; search stays on keywords
            self._failed(rt, entry, _short(exc))
            return
        if report["examples_error"] and not entry.examples_invalid:
            self._failed(rt, entry, f"examples: {report['examples_error']}")
            return
        entry.attempts, entry.retry_at, entry.error = 0, None, None

    def _failed(self, rt: ProfileRuntime, entry: ProfileIndex, reason: str) -> None:
        entry.attempts += 1
        entry.error = reason  # shown in /readyz (a previous index, if any, still serves)
        if entry.search is None:
            entry.state = BuildState.FAILED
        delay = RETRY_DELAYS[min(entry.attempts, len(RETRY_DELAYS)) - 1]
        entry.retry_at = time.monotonic() + delay
        log.warning(
            "Indexing profile=%s failed (attempt %d, next in %.0fs): %s",
            rt.name,
            entry.attempts,
            delay,
            reason,
        )

    async def _supervise(self) -> None:
        """Keep the connection (follow a new owner, or take over), and queue the retries that are due."""
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL)
            try:
                await self._supervise_once()
            except Exception:  # the supervisor must outlive any one failure
                log.exception("Index supervisor step failed")

    async def _supervise_once(self) -> None:
        if self.role == "follower" and self.runtime.anchor is not None:
            owner = await anyio.to_thread.run_sync(self.runtime.anchor.owner)
            if owner is None or self.following is None or owner.token != self.following.token:
                log.info("The owner of %s changed: reconnecting", self.lite)
                await self._drop_client()
        if self.client is None:
            if not await self._connect():
                return
            # A new connection (or a new owner): bring every profile in line; usually nothing to embed.
            for rt in self.runtime.profiles.values():
                if self.settings.index_on_startup or rt.name in self.profiles:
                    self.schedule_sync(rt, now=True)
        now = time.monotonic()
        for name, entry in self.profiles.items():
            due = self.runtime.profiles.get(name)
            if entry.retry_at is not None and now >= entry.retry_at and name not in self._queue and due:
                self.schedule_sync(due, now=True)
        if self._queue:
            self._wake.set()

    async def index_profile(
        self, rt: ProfileRuntime, *, rebuild: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """Index a profile now (``dbmeta index``): tables and examples; raise when it could not be done."""
        if self.embedder is None or not await self._connect():
            raise UpstreamUnavailableError(f"the search index is unavailable: {self.milvus_error}")
        entry = self._profile(rt)
        assert entry is not None
        try:
            report = await self.sync(rt, rebuild=rebuild, progress=progress, force=True)
        except DbmetaError:
            raise
        except Exception as exc:  # noqa: BLE001 - any build failure is reported as one
            self._failed(rt, entry, _short(exc))
            raise IndexBuildError(f"indexing profile {rt.name!r} failed: {_short(exc)}") from None
        if not report["examples_error"] or entry.examples_invalid:
            entry.attempts, entry.retry_at, entry.error = 0, None, None
        return report

    async def sync(
        self,
        rt: ProfileRuntime,
        *,
        rebuild: bool = False,
        progress: Callable[[int, int], None] | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Index the profile's current snapshot and examples (only what changed is embedded).

        Returns the report (``tables`` None when they were up to date); raises when the table index could
        not be built. An example failure is reported in ``examples_error``.
        """
        if self.embedder is None or not await self._connect():
            raise UpstreamUnavailableError(f"the search index is unavailable: {self.milvus_error}")
        entry = self._profile(rt)
        assert entry is not None
        async with entry.lock:
            entry.building_since = time.monotonic()
            try:
                snapshot, _ = await load_snapshot(self.settings, self.cache, rt)
                tables = None
                if not (
                    entry.state is BuildState.READY
                    and entry.version == snapshot.version
                    and not (rebuild or force)
                ):
                    tables = await self._sync_tables(rt, entry, snapshot, rebuild, progress)
                examples = await self._sync_examples(rt, entry, snapshot, rebuild=rebuild, force=force)
            finally:
                entry.building_since = None
            return {
                "profile": rt.name,
                "tables": tables,
                "examples": examples,
                "examples_error": entry.examples_error,
            }

    async def _sync_tables(
        self,
        rt: ProfileRuntime,
        entry: ProfileIndex,
        snapshot: Snapshot,
        rebuild: bool,
        progress: Callable[[int, int], None] | None,
    ) -> dict[str, Any]:
        assert self.embedder is not None
        if entry.state is not BuildState.READY:
            entry.state = BuildState.BUILDING
        started = time.perf_counter()
        search = TableSearch(snapshot, self.embedder, entry.index)
        try:
            stats = await anyio.to_thread.run_sync(lambda: search.sync(progress, rebuild=rebuild))
        except Exception as exc:
            # A build failure is this profile's (retried with a delay), never a reason to stop searching.
            entry.error = _short(exc)
            if entry.search is None:
                entry.state = BuildState.FAILED
            raise
        entry.search, entry.version, entry.state, entry.error = (
            search,
            snapshot.version,
            BuildState.READY,
            None,
        )
        entry.breaker.reset()  # the index answers again
        entry.last_sync = _sync_report(stats, started)
        log.info("Indexed profile=%s (version %s): %s", rt.name, snapshot.version, entry.last_sync)
        return {**entry.last_sync, "collection": stats.collection, "rebuilt": stats.rebuilt}

    async def _sync_examples(
        self, rt: ProfileRuntime, entry: ProfileIndex, snapshot: Snapshot, *, rebuild: bool, force: bool
    ) -> dict[str, Any] | None:
        """Check every example against the snapshot and bring the example collection in line."""
        assert self.embedder is not None
        embedder = self.embedder
        try:
            examples = await get_query_examples(self.settings, self.cache, rt)
        except ConfigError as exc:
            # the request path reports the same error to the caller
            entry.examples_error, entry.examples_invalid = str(exc)[:300], True
            return None
        entry.examples_invalid = False
        version = examples_version(snapshot, examples)
        if entry.examples_version == version and not (rebuild or force):
            return None
        started = time.perf_counter()
        checks = await anyio.to_thread.run_sync(lambda: check_examples(examples, snapshot))
        groups = [example_group(e.id, example_text(e), checks[e.id].ok, embedder.model_id) for e in examples]
        try:
            stats = await anyio.to_thread.run_sync(
                lambda: entry.examples.sync_groups(groups, version, embedder, rebuild=rebuild)
            )
        except Exception as exc:  # noqa: BLE001 - examples fall back to in-process ranking; tables are unaffected
            entry.examples_error = _short(exc)
            log.warning("Indexing the examples of profile=%s failed: %s", rt.name, entry.examples_error)
            return None
        entry.examples_version, entry.example_checks, entry.examples_error = version, checks, None
        entry.last_examples_sync = {
            **_sync_report(stats, started),
            "stale": sorted(i for i, c in checks.items() if not c.ok),
        }
        log.info("Indexed the examples of profile=%s: %s", rt.name, entry.last_examples_sync)
        return entry.last_examples_sync

    async def on_schema_change(self, rt: ProfileRuntime, _: dict[str, Any]) -> None:
        """Schema listener: re-index a profile whose schema changed (the sync embeds only what changed)."""
        self.schedule_sync(rt, now=True)

    # ---- search -------------------------------------------------------------------------------

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed a request (cached by model id and sha256 of the text); the model runs on the torch thread."""
        assert self.embedder is not None
        embedder = self.embedder
        key = cache_key(
            "embedding",
            model=embedder.model_id,
            text=hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
        )

        async def compute() -> npt.NDArray[np.float32]:
            # straight to the torch thread (``embedder.on_torch_thread``), not via a worker that would wait for it
            vectors = await asyncio.wrap_future(submit_to_torch_thread(embedder.encode, [text]))
            return np.asarray(vectors[0], dtype=np.float32)

        def decode(raw: bytes) -> npt.NDArray[np.float32]:
            return np.asarray(orjson.loads(raw), dtype=np.float32)

        # get_or_compute: the schema and the examples of one request embed its text once, not twice; not shared
        # (no lock across replicas, written behind the answer): coordinating cost more than computing twice
        vector, _ = await self.cache.get_or_compute(
            "embedding", key, compute, lambda v: [float(x) for x in v], decode, shared=False
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
                # the schema changed (or was never indexed); without an index, this request waits for it
                self.schedule_sync(rt, first=entry.search is None)
            search = entry.search
            if search is None:
                reason = (
                    f"indexing failed: {entry.error}"
                    if entry.state is BuildState.FAILED
                    else "search index is being built"
                )
            else:

                def tables(vector: npt.NDArray[np.float32]) -> list[TableHit]:
                    # An index built from an older snapshot may name tables that are gone: keep current keys.
                    hits = search.search(query, top_k, vector=vector)
                    return [h for h in hits if h.name in snapshot.tables]

                memo_key = ("tables", rt.name, snapshot.version, entry.version, top_k, query)
                found = await self._guarded(rt, entry, "Table search", memo_key, query, tables)
                if not isinstance(found, str):
                    return self._done(rt, found, None, started, entry.index.path)
                reason = found
        return self._done(rt, keyword_index(rt, snapshot).search(query, top_k), reason, started)

    async def _guarded(
        self,
        rt: ProfileRuntime,
        entry: ProfileIndex,
        what: str,
        memo_key: MemoKey,
        query: str,
        run: Callable[[npt.NDArray[np.float32]], list[T]],
    ) -> list[T] | str:
        """Answer from memory, or run ``run`` (blocking) behind the breaker; a string says why it could not."""
        remembered = self._recall(memo_key)
        if remembered is not None:
            return list(remembered)
        if not entry.breaker.allow():
            return "Milvus is failing; circuit breaker open"
        try:
            vector = await self.embed_query(query)
            hits = await anyio.to_thread.run_sync(lambda: run(vector))
        except Exception as exc:  # noqa: BLE001 - a failing index degrades the answer, never fails it
            entry.breaker.record_failure()
            log.warning("%s failed for profile=%s: %s", what, rt.name, _short(exc))
            return f"{what.lower()} failed ({type(exc).__name__})"
        entry.breaker.record_success()
        self._remember(memo_key, tuple(hits))
        return hits

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
            self.schedule_sync(rt, first=indexed is None)  # examples or schema changed (or never indexed)
            if indexed is None or indexed.split(":", 1)[1] != wanted.split(":", 1)[1]:
                return entry.examples_error or "example index is being built"
        index = entry.examples
        memo_key = ("examples", rt.name, wanted, indexed, limit, query)
        return await self._guarded(
            rt,
            entry,
            "Example search",
            memo_key,
            query,
            lambda v: index.search(lexical_query(query), v, limit),
        )

    def _recall(self, key: MemoKey) -> tuple[Any, ...] | None:
        found = self._recent.get(key)
        if found is not None:
            self._recent.move_to_end(key)
        return found

    def _remember(self, key: MemoKey, value: tuple[Any, ...]) -> None:
        self._recent[key] = value
        while len(self._recent) > RECENT_SEARCHES:
            self._recent.popitem(last=False)

    def _done(
        self,
        rt: ProfileRuntime,
        hits: list[TableHit],
        reason: str | None,
        started: float,
        path: SearchPath | None = None,
    ) -> SearchResult:
        elapsed = time.perf_counter() - started
        metrics.SEARCH_SECONDS.labels(rt.name).observe(elapsed)
        return SearchResult(hits, reason is not None, reason, round(elapsed * 1000, 2), path)

    # ---- reporting ----------------------------------------------------------------------------

    def _answers_ok(self, entry: ProfileIndex) -> bool:
        """Tell whether this profile's searches are answered from its index (not degraded)."""
        reachable = self.client is not None or entry.index.mirrored
        return (
            entry.search is not None
            and entry.examples_ready
            and reachable
            and entry.breaker.state == "closed"
        )

    def readiness(self) -> tuple[bool, bool, str | None]:
        """(ready: no answer is degraded, warming: start-up indexing still running, the first reason)."""
        names = list(self.runtime.profiles)
        entries = [self.profiles.get(name) for name in names]
        if self.client is None and not all(e is not None and self._answers_ok(e) for e in entries):
            warming = self._background and self.connect_failures < SETTLE_ATTEMPTS
            return (
                False,
                warming,
                "search index unavailable: " + (self.milvus_error or "connecting to Milvus"),
            )
        expected = self._background and self.settings.index_on_startup
        warming = expected and any(e is None or not e.settled for e in entries)
        for name, entry in zip(names, entries, strict=True):
            if entry is None:
                return False, warming, f"profile {name}: not indexed"
            if not self._answers_ok(entry):
                return False, warming, f"profile {name}: {self._profile_reason(entry)}"
        return True, False, None

    def _profile_reason(self, entry: ProfileIndex) -> str:
        if entry.search is None:
            if entry.state is BuildState.FAILED:
                return f"indexing failed ({entry.attempts} attempts): {entry.error}"
            return "index being built" if entry.state is BuildState.BUILDING else "not indexed yet"
        if not entry.examples_ready:
            return (
                f"examples not indexed: {entry.examples_error}"
                if entry.examples_error
                else "examples not indexed yet"
            )
        if entry.breaker.state != "closed":
            return "Milvus is failing; circuit breaker open"
        return "Milvus is not connected"

    def state(self) -> dict[str, Any]:
        """What /readyz shows about search."""
        now = time.monotonic()
        ready, warming, reason = self.readiness()
        return {
            "ready": ready,
            "warming": warming,
            "reason": reason,
            "model": self.embedder.model_id if self.embedder else None,
            "milvus": "connected" if self.client is not None else f"unavailable ({self.milvus_error})",
            "milvus_server": self._server_state(),
            "index_owner": self._owner_state(),
            "building": sorted(n for n, e in self.profiles.items() if e.building_since is not None),
            "queued": len(self._queue),
            "profiles": {
                name: {
                    "state": e.state,
                    "ready": self._answers_ok(e),
                    "version": e.version,
                    "error": e.error,
                    "attempts": e.attempts,
                    "retry_in_s": round(max(0.0, e.retry_at - now), 1) if e.retry_at is not None else None,
                    "building_s": round(now - e.building_since, 1) if e.building_since is not None else None,
                    "breaker": e.breaker.to_json(),
                    "capabilities": _capabilities(e.index),
                    "last_sync": e.last_sync,
                    "examples": {
                        "state": "ready"
                        if e.examples_version
                        else ("invalid" if e.examples_invalid else "missing"),
                        "error": e.examples_error,
                        "last_sync": e.last_examples_sync,
                    },
                }
                for name, e in self.profiles.items()
            },
        }

    def _server_state(self) -> dict[str, Any]:
        """The Milvus this process talks to: its version and what it can do (BM25 as the indexes found it)."""
        found = {e.index.server_bm25 for e in self.profiles.values()} - {None}
        return {
            "kind": "lite" if self.lite is not None else "server",
            "version": self.server_version,
            "auth": "token" if self.lite is None and self.settings.milvus_token else "none",
            # learned from the collections: a server without Milvus' BM25 function builds them dense-only
            "bm25": found.pop() if len(found) == 1 else (None if not found else "mixed"),
        }

    def _owner_state(self) -> dict[str, Any] | None:
        if self.lite is None:
            return None
        owner: dict[str, Any] = {"file": str(self.lite), "role": self.role}
        if self.role == "follower" and self.following is not None:
            owner["owner_pid"] = self.following.pid
        return owner


#: With keyword ranking only and nothing matching, a schema this small is returned whole rather than empty.
SMALL_SCHEMA = 50


def keyword_index(rt: ProfileRuntime, snapshot: Snapshot) -> KeywordIndex:
    """The keyword index of a profile's snapshot, built once per snapshot version (held by the profile)."""
    index = rt.keyword_index
    if index is None or index.version != snapshot.version:
        index = rt.keyword_index = KeywordIndex.build(snapshot)
    return index


async def search_tables(
    runtime: SearchHost, rt: ProfileRuntime, query: str, top_k: int
) -> tuple[tuple[Snapshot, str], SearchResult]:
    """Return the profile's (snapshot, cache status) and the top_k tables for a request."""
    loaded = await load_snapshot(runtime.settings, runtime.cache, rt)
    snapshot = loaded[0]
    if runtime.search is not None:
        result = await runtime.search.search(rt, snapshot, query, top_k)
    else:
        started = time.perf_counter()
        hits = keyword_index(rt, snapshot).search(query, top_k) if snapshot.tables else []
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        result = SearchResult(hits, False, None, elapsed)
    return loaded, result


def _capabilities(index: TableIndex) -> dict[str, Any]:
    """What one profile's table index can do and how its searches run (after it was opened or built)."""
    path = index.path
    return {
        "server_bm25": index.server_bm25,
        "dense": path.dense if path is not None else None,
        "lexical": path.lexical if path is not None else None,
    }


def _server_version(client: Any) -> str | None:
    try:
        return str(client.get_server_version())
    except Exception as exc:  # noqa: BLE001 - the version is reported, never required
        log.info("Milvus did not say its version: %s", _short(exc))
        return None


def _sync_report(stats: SyncStats, started: float) -> dict[str, Any]:
    return {
        "added": stats.added,
        "updated": stats.updated,
        "removed": stats.removed,
        "unchanged": stats.unchanged,
        "embedded": stats.embedded,
        "seconds": round(time.perf_counter() - started, 3),
    }


class IndexHeldError(UpstreamUnavailableError):
    code = "index_held"


def _short(exc: BaseException) -> str:
    # pymilvus' str() wraps its message in "<MilvusException: (code=…, message=…)>"
    detail = exc.detail if isinstance(exc, DbmetaError) else str(getattr(exc, "message", None) or exc)
    return f"{type(exc).__name__}: {detail}"[:300]


def _lite_server_uri(path: Any) -> str | None:
    """The address of this process's Milvus Lite server for the file (what its followers connect to)."""
    from milvus_lite.server_manager import server_manager_instance

    uri: str | None = server_manager_instance.start_and_get_uri(str(path))
    return uri


def _release_lite_server(path: Any) -> None:
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))
