"""The Milvus indexes of one (client, env, profile, database): build aside, switch an alias, search.

Two collections share one layout and one sync mechanism (``DocumentIndex``):
- tables (``TableIndex``): a row per table, per column and (with several schemas) per schema;
- query examples (``ExampleIndex``): a row per example, in the ``examples`` partition when its SQL fits
  the schema snapshot it was indexed against, in ``stale_examples`` when it does not (kept, not searched).
``MILVUS_URI`` is a ``*.db`` file path (Milvus Lite) or an ``http(s)://`` server address.

Searches go through an alias, so they only ever see a complete, indexed collection. A sync
builds a new physical collection aside: rows of unchanged tables are copied with their
vectors, only tables whose content hash changed are embedded, then the alias is switched and
the old collection dropped. Milvus Lite (3.2) supports aliases, so no pointer file is needed.
Building aside also keeps searches fast: freshly inserted, unindexed rows are scanned at about
50 µs each, while a bulk-built and loaded collection answers in milliseconds.

Mirror: a collection of at most ``mirror_max_rows`` rows is also held in process after each build (or
when a process first opens it): its vectors, and BM25 postings of its lexical texts. Searches then cost
a matrix product and a few postings lookups, not Milvus round trips: Milvus Lite spends 5-20 ms per
search call on this 2-core machine, as long as embedding the request itself. The fusion is the one
Milvus' rankers apply (weighted sum of raw scores, or RRF, over each half's top ``limit``); the dense
half is exact where Milvus' AUTOINDEX approximates, and the BM25 statistics are kept per row kind, as
Milvus keeps them per segment (each kind has its partition, so its own segments): measured on the test
warehouse, within 3 % of Milvus Lite's own BM25 scores (7 % for a query repeating a word), where
statistics over all kinds were 33-48 % off for schema rows. Larger collections are searched in Milvus.
A mirrored collection is only stored in Milvus (FLAT index, no BM25 function): see ``_create_collection``.
A large matrix (the column rows of a wide warehouse) is scanned through a sketch first (its main directions,
bfloat16), which bounds every row's score; only the rows the bound cannot rule out are scored exactly
(``_closest``): always the exact answer.

BM25 where the server has none: Milvus added full-text search (a BM25 function) in 2.5; a server
without it (2.3, 2.4) accepts or refuses that schema, and either way the collection is built
dense-only. Its lexical half is then ranked in process, whatever the collection's size: the mirror
keeps the BM25 postings (without the vectors when it is over ``mirror_max_rows``), dense search goes to
Milvus, and both halves are fused the way Milvus' ranker would. Which path a search took is decided by
what the collection can do (``SearchPath``), never by what kind of Milvus it is on.

Everything here is blocking; callers run it in a thread.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from dbmeta_app.ownership import BuildLock
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.search._pymilvus import (
    AnnSearchRequest,
    DataType,
    Function,
    FunctionType,
    MilvusClient,
    MilvusException,
    RRFRanker,
    WeightedRanker,
)
from dbmeta_app.search.bm25 import Bm25
from dbmeta_app.search.documents import (
    KIND_COLUMN,
    KIND_EXAMPLE,
    KIND_SCHEMA,
    KIND_STALE_EXAMPLE,
    KIND_TABLE,
    MAX_LEXICAL_BYTES,
    MAX_NAME_BYTES,
    Document,
    DocumentGroup,
    build_groups,
)
from dbmeta_app.search.embedder import on_torch_thread, submit_to_torch_thread
from dbmeta_app.search.retrieval import Signals

logger = logging.getLogger(__name__)

# Bump when fields or indexes change: an existing collection with another layout is rebuilt.
LAYOUT_VERSION = "3"
DEFAULT_LITE_FILE = "milvus.db"

_PROP_LAYOUT = "dbmeta.layout"
_PROP_MODEL = "dbmeta.model_id"
_PROP_DIM = "dbmeta.dim"
_PROP_LEXICAL = "dbmeta.lexical"
_PROP_SNAPSHOT = "dbmeta.snapshot_version"

_OUTPUT_ROW = ["id", "kind", "table_key", "content_hash", "lexical", "dense"]
_INSERT_BATCH = 512
_EMBED_BATCH = 512
_PROGRESS_BATCH = 64  # the embedder's own batch size
_COPY_GROUPS = 200
_INDEX_POLL_SECONDS = 0.02
# A build seals a segment every this many rows, so Milvus indexes it while the next rows are encoded.
_SEAL_ROWS = 20_000
_MAX_QUERY_WINDOW = 16_384
_READ_PAGE = 8_192  # rows a page of a read-back (~100 MB of Python floats with its vectors)
# A matrix of more rows also keeps a sketch (``_Sketch``), scanned first (``_closest``).
_SKETCH_MIN_ROWS = 8_192
# The sketch's dimensions: MiniLM column vectors keep 96.7 % of their energy in their 128 main directions.
_SKETCH_DIMS = 128
# |bfloat16 dot - exact dot| for vectors of norm <= 1: both rounded (2u), the result rounded (u), u = 2^-8;
# f32 accumulation adds ~1e-5. Measured on MiniLM column vectors: at most 0.0023.
_BFLOAT16_ERROR = 3 * 2**-8 + 2**-16 + 1e-4
#: Collections up to this many rows keep their vectors in process too (384 dims: ~1.5 kB per row, plus a
#: 0.26 kB sketch for a row kind of over 8,192 rows; ~450 MB at the limit). A 3,000-table,
#: 150,000-column warehouse fits: its column scan costs ~3-4 ms, where Milvus Lite took ~190 ms per search
#: (bench/scale.py).
DEFAULT_MIRROR_MAX_ROWS = 250_000
#: Seconds any Milvus call may take before it fails: a call that never answers must not hang a build.
DEFAULT_CALL_TIMEOUT = 120.0
#: Calls whose work grows with the collection (sealing, index building, loading) get this many seconds per row
#: on top of the call deadline: a fixed 120 s failed a 150,000-row build that was progressing.
BULK_SECONDS_PER_ROW = 0.01
#: Seconds a search call may take (a request waits for it; slower means degraded, not hung).
DEFAULT_SEARCH_TIMEOUT = 10.0
#: Seconds a sync waits for another build on the same file to finish before it gives up.
BUILD_LOCK_WAIT = 900.0
# Milvus caps offset + limit of a query or search


_SEARCH_CALLS = frozenset({"search", "hybrid_search"})
_BOUNDED_CALLS = frozenset(
    {
        "alter_alias",
        "alter_collection_properties",
        "create_alias",
        "create_collection",
        "create_index",
        "create_partition",
        "describe_alias",
        "describe_collection",
        "describe_index",
        "drop_collection",
        "flush",
        "get_collection_stats",
        "insert",
        "list_aliases",
        "list_collections",
        "load_collection",
        "query",
        "query_iterator",
    }
)


def bulk_timeout(call_timeout: float, rows: int) -> float:
    """The deadline of a call whose work grows with the collection's rows (see ``BULK_SECONDS_PER_ROW``)."""
    return call_timeout + max(0, rows) * BULK_SECONDS_PER_ROW


class BoundedClient:
    """A MilvusClient whose every call carries a deadline: a call that never answers fails, never hangs.

    pymilvus waits forever by default; a build stuck on one such call held its profile in "building" for
    good. With a deadline the call raises, the build fails with that reason and is retried. A caller may
    pass its own ``timeout`` (bulk calls on a large collection: ``bulk_timeout``); it takes precedence.
    """

    def __init__(self, client: Any, timeout: float, search_timeout: float) -> None:
        self.inner = client
        self._timeout = timeout
        self._search_timeout = search_timeout

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in _SEARCH_CALLS:
            return functools.partial(attr, timeout=self._search_timeout)
        if name in _BOUNDED_CALLS:
            return functools.partial(attr, timeout=self._timeout)
        return attr


class TextEncoder(Protocol):
    """What the index needs from an embedder (see ``Embedder``)."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


Progress = Callable[[int, int], None]
Hit = tuple[str, str, float]  # (row kind, table key / schema name / example id, score)
MirrorRow = tuple[str, str, str, npt.NDArray[np.float32]]  # (row kind, key, lexical text, vector)


@dataclass(frozen=True, slots=True)
class SearchPath:
    """Where a search's two halves are computed (reported with every answer and in /readyz)."""

    dense: Literal["milvus", "process"]  # Milvus' ANN search, or the in-process mirror
    lexical: Literal["server", "process"]  # Milvus' BM25 function, or in-process BM25 postings


@dataclass(frozen=True, slots=True)
class Layout:
    """What kind of documents a collection holds and how its rows group for incremental syncs."""

    name: str  # the alias suffix: "tables" | "examples"
    # One partition per row kind: searching a partition is cheaper than filtering on a field.
    partitions: dict[str, str]
    group_kind: dict[str, str]  # row kind -> kind of the group it belongs to (identity when absent)
    hash_kinds: tuple[str, ...]  # row kinds read to learn each group's content hash
    counted: str  # the group kind SyncStats counts, and the row kind `search` returns

    def group_of(self, row_kind: str) -> str:
        return self.group_kind.get(row_kind, row_kind)


TABLES = Layout(
    name="tables",
    partitions={KIND_TABLE: "tables", KIND_COLUMN: "columns", KIND_SCHEMA: "schemas"},
    group_kind={KIND_COLUMN: KIND_TABLE},
    hash_kinds=(KIND_TABLE, KIND_SCHEMA),  # column rows carry their table's hash
    counted=KIND_TABLE,
)
EXAMPLES = Layout(
    name="examples",
    partitions={KIND_EXAMPLE: "examples", KIND_STALE_EXAMPLE: "stale_examples"},
    group_kind={KIND_STALE_EXAMPLE: KIND_EXAMPLE},
    hash_kinds=(KIND_EXAMPLE, KIND_STALE_EXAMPLE),
    counted=KIND_EXAMPLE,
)


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What a sync did, counted in tables or examples (other documents only count in ``embedded``)."""

    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int  # texts encoded: 0 when nothing changed
    collection: str  # the live physical collection after the sync
    rebuilt: bool  # a new collection was built and the alias switched


@dataclass(frozen=True, slots=True)
class IndexState:
    """What /readyz reports about the index."""

    ready: bool
    alias: str
    collection: str | None
    rows: int
    lexical: bool  # the collection has Milvus' BM25 function (server-side full-text search)
    model_id: str | None
    snapshot_version: str | None
    path: SearchPath | None = None  # how searches are answered, once a process searched or synced it


@dataclass(frozen=True, slots=True)
class HybridConfig:
    """How Milvus ``hybrid_search`` fuses the dense and BM25 results.

    ``weighted`` (default) scores cosine + lexical_weight * BM25 and keeps score magnitudes,
    which the ranking downstream (column and schema signals) is calibrated on. ``rrf`` scores
    ranks only, scaled to [0, 1]; on BirdUnion it loses about 6 points of complete recall@10.
    """

    ranker: Literal["weighted", "rrf"] = "weighted"
    dense_weight: float = 1.0
    lexical_weight: float = 0.04  # BM25 scores run to ~20 where cosines stay below 1
    rrf_k: int = 60


def resolve_uri(uri: str | None, data_dir: Path) -> str:
    """Turn MILVUS_URI (None means the Milvus Lite file under data_dir) into a client URI."""
    if not uri:
        return str(data_dir / DEFAULT_LITE_FILE)
    if uri.startswith(("http://", "https://", "tcp://", "unix:")):
        return uri
    if not uri.endswith(".db"):
        # pymilvus only treats *.db paths as Milvus Lite; anything else would dial a server.
        raise ValueError(f"MILVUS_URI={uri!r} must be an http(s):// address or a *.db file path")
    return str(Path(uri).expanduser())


#: gRPC options of a client of a Milvus Lite server (a local process): no keepalive pings. pymilvus pings every
#: 10 s, and Milvus Lite's server, after a build's calls, answers an idle client's pings with GOAWAY
#: "too_many_pings", which gRPC writes to stderr as an error line (not the service's log format) two minutes
#: after every build; the channel then reconnects. Reproduced with a minute of inserts, then 170 s idle.
_LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1}


def connect(uri: str, token: str | None = None, *, lite: bool = False) -> MilvusClient:
    """Open a Milvus client: a Milvus Lite file (parent directory created) or a server.

    ``lite``: ``uri`` is the address of a Milvus Lite server (a follower's way to the owner's file).
    """
    if uri.endswith(".db") and "://" not in uri:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        return MilvusClient(uri, grpc_options=_LITE_GRPC_OPTIONS)
    if lite:
        return MilvusClient(uri=uri, token=token or "", grpc_options=_LITE_GRPC_OPTIONS)
    return MilvusClient(uri=uri, token=token or "")


def collection_base(client: str, env: str, profile: str, database: str) -> str:
    """Derive a valid, collision-free Milvus name prefix for (client, env, profile, database identity).

    ``database`` is the profile's ``database_identity``: an index built for one database is never found
    under the names of another, even when CLIENT, ENV and the profile's name are the same.
    """
    readable = re.sub(r"[^0-9A-Za-z]+", "_", f"{client}_{env}_{profile}").strip("_")[:40]
    digest = hashlib.sha256("\x00".join((client, env, profile, database)).encode("utf-8")).hexdigest()[:12]
    return f"dbmeta_{readable}_{digest}"


@dataclass(frozen=True, slots=True)
class IndexMirror:
    """One physical collection held in process: vectors per row kind, BM25 over its lexical texts.

    ``dense`` False: the BM25 postings only (a collection over the mirror size whose server has no BM25).
    """

    collection: str
    keys: dict[str, list[str]]  # row kind -> table key / schema / example id per row
    vectors: dict[str, npt.NDArray[np.float32]]  # row kind -> (rows, dim), L2-normalised
    lexical: dict[str, Bm25[str]]  # row kind -> BM25 over its rows with lexical text, keyed by key
    dense_rows: bool = True
    sketches: dict[str, _Sketch] = field(default_factory=dict)  # row kind -> sketch of a large matrix

    @classmethod
    def build(cls, collection: str, rows: Sequence[MirrorRow], *, dense: bool = True) -> IndexMirror:
        keys: dict[str, list[str]] = {}
        lists: dict[str, list[npt.NDArray[np.float32]]] = {}
        texts: dict[str, dict[str, list[str]]] = {}
        for kind, key, lexical, vector in rows:
            if dense:
                keys.setdefault(kind, []).append(key)
                lists.setdefault(kind, []).append(vector)
            if lexical:
                texts.setdefault(kind, {})[key] = lexical.split()
        vectors = {kind: _normalised(np.stack(vs), in_place=True) for kind, vs in lists.items()}
        lexical_index = {kind: Bm25.build(docs) for kind, docs in texts.items()}
        sketches = {
            kind: on_torch_thread(_Sketch.of, matrix)
            for kind, matrix in vectors.items()
            if len(matrix) > _SKETCH_MIN_ROWS
        }
        return cls(collection, keys, vectors, lexical_index, dense, sketches)

    def dense(self, kinds: Sequence[str], query_vector: npt.NDArray[np.float32], limit: int) -> list[Hit]:
        """The ``limit`` rows of these kinds closest to the query (cosine), best first."""
        query = _normalised(np.asarray(query_vector, dtype=np.float32).reshape(1, -1))[0]
        scored: list[Hit] = []
        for kind in kinds:
            matrix = self.vectors.get(kind)
            if matrix is None or not len(matrix):
                continue
            top, sims = _closest(matrix, self.sketches.get(kind), query, limit)
            names = self.keys[kind]
            scored.extend((kind, names[i], float(score)) for i, score in zip(top, sims, strict=True))
        return heapq.nlargest(limit, scored, key=lambda hit: hit[2])

    def bm25(self, kinds: Sequence[str], query_text: str, limit: int) -> list[Hit]:
        """The ``limit`` best BM25 matches among rows of these kinds, best first."""
        terms = query_text.split()
        scored = [
            (kind, key, s)
            for kind in kinds
            if (index := self.lexical.get(kind)) is not None
            for key, s in index.scores(terms).items()
        ]
        return heapq.nlargest(limit, scored, key=lambda hit: hit[2])


class DocumentIndex:
    """One aliased collection of a profile: synced incrementally by content hash, searched by alias."""

    layout: Layout

    def __init__(
        self,
        client: MilvusClient,
        *,
        client_name: str,
        env: str,
        profile: str,
        database: str,
        hybrid: HybridConfig | None = None,
        mirror_max_rows: int = DEFAULT_MIRROR_MAX_ROWS,
        build_lock: BuildLock | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        search_timeout: float = DEFAULT_SEARCH_TIMEOUT,
        search_pool: Executor | None = None,
    ) -> None:
        self._call_timeout, self._search_timeout = call_timeout, search_timeout
        # Runs the column search of a request beside its table search (MilvusClient is safe across
        # threads); its owner (the search runtime) shuts it down. None: the two calls run one after the other.
        self._search_pool = search_pool
        self._client: Any = None
        self.rebind(client)
        self._live: str | None = None  # cached: searches go through the alias anyway
        self._hybrid_config = hybrid or HybridConfig()
        self._mirror_max_rows = mirror_max_rows
        self._mirror: IndexMirror | None = None
        self._written: list[MirrorRow] | None = None  # rows inserted by the running sync
        self._unsealed = 0  # rows the running sync inserted since its last flush
        base = collection_base(client_name, env, profile, database)
        self.alias = f"{base}_{self.layout.name}"
        self._physical_prefix = f"{self.alias}_"
        self._lexical: dict[str, bool] = {}  # physical collection -> has BM25
        # Shared by every index on the same Milvus Lite file (and across processes): see BuildLock.
        self._build_lock = build_lock or BuildLock(None)

    def rebind(self, client: Any) -> None:
        """Use another connection to the same Milvus (the owner of a Lite file changed).

        The live collection and its mirror stay: a sync, or a search that fails, looks again.
        """
        inner = client.inner if isinstance(client, BoundedClient) else client
        self._client = BoundedClient(inner, self._call_timeout, self._search_timeout)

    # ---- state ---------------------------------------------------------------------------

    def live_collection(self) -> str | None:
        """Name the physical collection the alias points at, or None before the first build."""
        # Listing first: describing a missing alias makes pymilvus log an error with a traceback.
        listed = self._client.list_aliases()
        aliases = listed.get("aliases", []) if isinstance(listed, dict) else listed
        if self.alias not in aliases:
            return None
        name = self._client.describe_alias(self.alias).get("collection_name")
        return str(name) if name else None

    @property
    def ready(self) -> bool:
        """Tell whether searches can be answered."""
        return self.live_collection() is not None

    def state(self) -> IndexState:
        """Report readiness and what the live collection holds."""
        live = self.live_collection()
        if live is None:
            return IndexState(False, self.alias, None, 0, False, None, None)
        props = self._properties(live)
        rows = int(self._client.get_collection_stats(live).get("row_count", 0))
        return IndexState(
            ready=True,
            alias=self.alias,
            collection=live,
            rows=rows,
            lexical=props.get(_PROP_LEXICAL) == "1",
            model_id=props.get(_PROP_MODEL),
            snapshot_version=props.get(_PROP_SNAPSHOT),
            path=self.path,
        )

    def close(self) -> None:
        """Close the client connection."""
        self._client.close()

    # ---- sync ----------------------------------------------------------------------------

    def sync_groups(
        self,
        groups: Sequence[DocumentGroup],
        version: str,
        embedder: TextEncoder,
        progress: Progress | None = None,
        *,
        rebuild: bool = False,
    ) -> SyncStats:
        """Bring the collection in line with ``groups``, embedding only the groups whose hash changed."""
        with self._build_lock.hold(self.alias, BUILD_LOCK_WAIT):
            # Another process (a worker, the CLI) may have rebuilt the collection since this one looked.
            if self._live is not None and self.live_collection() != self._live:
                self._live = None
            return self._sync(groups, version, embedder, progress, rebuild)

    def _sync(
        self,
        groups: Sequence[DocumentGroup],
        version: str,
        embedder: TextEncoder,
        progress: Progress | None,
        rebuild: bool,
    ) -> SyncStats:
        counted = self.layout.counted
        live = self._searchable()
        existing = self._read_hashes(live) if live is not None else {}
        # Vectors are reused only from a collection built the same way with the same model.
        reusable = existing if live is not None and not rebuild and self._compatible(live, embedder) else {}
        new_hashes = {(g.kind, g.key): g.content_hash for g in groups}
        changed = [g for g in groups if reusable.get((g.kind, g.key)) != g.content_hash]
        removed = existing.keys() - new_hashes.keys()
        changed_keys = {g.key for g in changed if g.kind == counted}
        added = sum(1 for key in changed_keys if (counted, key) not in existing)
        updated = len(changed_keys) - added
        removed_count = sum(1 for kind, _ in removed if kind == counted)
        unchanged = sum(1 for g in groups if g.kind == counted) - len(changed_keys)
        if live is not None and reusable and not changed and not removed:
            self._set_snapshot_version(live, version)
            return SyncStats(0, 0, 0, unchanged, 0, live, rebuilt=False)

        self._drop_leftovers(keep=live)
        rows = sum(len(g.documents) for g in groups)
        target = self._create_collection(embedder, searched=not self._fits_mirror(rows))
        # the rows written make the new mirror; without server BM25 there is always one (its postings)
        self._written = [] if self._mirror_max_rows > 0 or not self._lexical[target] else None
        try:
            keep = {k for k, h in new_hashes.items() if reusable.get(k) == h}
            if live is not None and keep:
                self._copy_rows(live, target, keep)
            embedded = self._embed_into(target, changed, embedder, progress)
            self._finish(target, version, rows=len(new_hashes))
            self._switch_alias(target)
            self._live = target
            # the rows just written make the new mirror: no second read of the collection
            self._mirror = self._mirror_of(target, len(self._written or ()), lambda _: self._written or [])
        except BaseException:
            self._client.drop_collection(target)
            raise
        finally:
            self._written = None
        if live is not None:
            self._client.drop_collection(live)
        logger.info(
            "Index %s rebuilt as %s: %d added, %d updated, %d removed, %d unchanged %s",
            self.alias,
            target,
            added,
            updated,
            removed_count,
            unchanged,
            self.layout.name,
        )
        return SyncStats(added, updated, removed_count, unchanged, embedded, target, rebuilt=True)

    def _compatible(self, live: str, embedder: TextEncoder) -> bool:
        props = self._properties(live)
        return (
            props.get(_PROP_LAYOUT) == LAYOUT_VERSION
            and props.get(_PROP_MODEL) == embedder.model_id
            and props.get(_PROP_DIM) == str(embedder.dim)
        )

    def _properties(self, collection: str) -> dict[str, str]:
        described = self._client.describe_collection(collection)
        return {str(k): str(v) for k, v in (described.get("properties") or {}).items()}

    def _read_hashes(self, collection: str) -> dict[tuple[str, str], str]:
        expr = f"kind in {json.dumps(list(self.layout.hash_kinds))}"
        try:
            rows = self._query(collection, expr, ["kind", "table_key", "content_hash"])
        except MilvusException:
            logger.warning("Collection %s has an unknown layout; rebuilding it from scratch", collection)
            return {}
        group_of = self.layout.group_of
        return {(group_of(str(r["kind"])), str(r["table_key"])): str(r["content_hash"]) for r in rows}

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching ``expr``."""
        return [row for page in self._pages(collection, expr, fields) for row in page]

    def _pages(
        self, collection: str, expr: str, fields: list[str], *, rows: int = 0
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows matching ``expr``, a page at a time (a caller that converts each page holds only one page of
        Milvus' Python rows: 110,000 rows with their vectors as lists of floats were 3 GB at once).

        ``rows``: how many the caller expects; more than one query may return are paged from the start.
        """
        if rows <= _MAX_QUERY_WINDOW:
            found = self._client.query(collection, filter=expr, output_fields=fields, limit=_MAX_QUERY_WINDOW)
            if len(found) < _MAX_QUERY_WINDOW:
                yield [dict(row) for row in found]
                return
            del found
        # Each page is a scan of the collection in Milvus Lite: 1,000-row pages read 110,000 rows in 49 s,
        # 8,192-row pages in 17 s (16,384: 18 s, a larger page of Python floats at once).
        iterator = self._client.query_iterator(
            collection, batch_size=_READ_PAGE, filter=expr, output_fields=fields
        )
        try:
            while batch := iterator.next():
                yield [dict(row) for row in batch]
        finally:
            iterator.close()

    def _drop_leftovers(self, keep: str | None) -> None:
        # A crashed build leaves a half-filled physical collection behind; nobody reads it.
        for name in self._client.list_collections():
            if name.startswith(self._physical_prefix) and name != keep:
                logger.warning("Dropping leftover collection %s from an interrupted build", name)
                self._client.drop_collection(name)

    def _create_collection(self, embedder: TextEncoder, *, searched: bool) -> str:
        """Create an empty physical collection; ``searched``: Milvus answers its searches (no mirror will).

        A collection the mirror answers is only stored in Milvus (read back when a process opens it): it gets
        an exact FLAT index and no BM25 function, because an HNSW graph and BM25 postings nobody searches
        were most of a large build's cost beside the model (Milvus Lite builds them in this process).
        """
        name = f"{self._physical_prefix}{int(time.time())}_{secrets.token_hex(3)}"
        properties = {
            _PROP_LAYOUT: LAYOUT_VERSION,
            _PROP_MODEL: embedder.model_id,
            _PROP_DIM: str(embedder.dim),
        }
        lexical = False
        if searched:
            try:
                self._client.create_collection(name, schema=_schema(embedder.dim, lexical=True))
                lexical = bool(self._client.describe_collection(name).get("functions"))
                if not lexical:
                    # An old server accepted the schema but silently dropped the BM25 function.
                    self._client.drop_collection(name)
            except MilvusException as exc:
                logger.warning(
                    "Milvus rejected a BM25 function (%s): the collection is dense-only, BM25 is ranked "
                    "in process (Milvus >= 2.5 adds full-text search)",
                    _short_error(exc),
                )
        if not lexical:
            self._client.create_collection(name, schema=_schema(embedder.dim, lexical=False))
        for partition in self.layout.partitions.values():
            self._client.create_partition(name, partition)
        self._client.alter_collection_properties(name, {**properties, _PROP_LEXICAL: "1" if lexical else "0"})
        self._lexical[name] = lexical
        # Indexed from the start: each sealed segment is indexed while the build goes on (not all at the end).
        params = self._client.prepare_index_params()
        params.add_index("dense", index_type="AUTOINDEX" if searched else "FLAT", metric_type="COSINE")
        if lexical:
            params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._client.create_index(name, params, sync=False)
        self._unsealed = 0
        return name

    def _copy_rows(self, source: str, target: str, keep: set[tuple[str, str]]) -> None:
        # Rows are fetched per group key, a few hundred groups at a time (the filter stays short).
        keys = sorted({key for _, key in keep})
        for start in range(0, len(keys), _COPY_GROUPS):
            chunk = keys[start : start + _COPY_GROUPS]
            rows = [
                row
                for row in self._query(
                    source, f"table_key in {json.dumps(chunk, ensure_ascii=False)}", _OUTPUT_ROW
                )
                if (self.layout.group_of(row["kind"]), row["table_key"]) in keep
            ]
            for row in rows:
                row["dense"] = np.asarray(row["dense"], dtype=np.float32)
            self._insert(target, rows)

    def _embed_into(
        self,
        target: str,
        groups: Sequence[DocumentGroup],
        embedder: TextEncoder,
        progress: Progress | None,
    ) -> int:
        # Length-sorted batches pad little: mixing long table texts with short column texts
        # in every batch made encoding several times slower than encoding everything at once.
        docs = sorted(
            ((doc, g.content_hash) for g in groups for doc in g.documents), key=lambda item: len(item[0].text)
        )
        total = len(docs)
        if progress is not None and total:
            progress(0, total)
        # Insert batch n while batch n + 1 is being encoded: the model, not Milvus, sets the pace.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbmeta-index-insert") as pool:
            pending: Future[None] | None = None
            for start in range(0, total, _EMBED_BATCH):
                chunk = docs[start : start + _EMBED_BATCH]
                vectors: list[npt.NDArray[np.float32]] = []
                # Encoded a model batch at a time, so that progress moves with the model's work.
                for sub in range(0, len(chunk), _PROGRESS_BATCH):
                    vectors.extend(
                        embedder.encode([doc.text for doc, _ in chunk[sub : sub + _PROGRESS_BATCH]])
                    )
                    if progress is not None:
                        progress(start + min(sub + _PROGRESS_BATCH, len(chunk)), total)
                rows = [_row(doc, h, vec) for (doc, h), vec in zip(chunk, vectors, strict=True)]
                if pending is not None:
                    pending.result()
                pending = pool.submit(self._insert, target, rows)
            if pending is not None:
                pending.result()
        return total

    def _insert(self, target: str, rows: Sequence[dict[str, Any]]) -> None:
        if self._written is not None:
            # compact copies: thousands of retained lists of floats slowed the collector during the sync
            self._written.extend(_mirror_row(row) for row in rows)
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_kind.setdefault(str(row["kind"]), []).append(row)
        for kind, batch in by_kind.items():
            for offset in range(0, len(batch), _INSERT_BATCH):
                self._client.insert(
                    target,
                    batch[offset : offset + _INSERT_BATCH],
                    partition_name=self.layout.partitions[kind],
                )
        self._unsealed += len(rows)
        if self._unsealed >= _SEAL_ROWS:
            self._client.flush(target, timeout=bulk_timeout(self._call_timeout, self._unsealed))
            self._unsealed = 0

    def _finish(self, target: str, snapshot_version: str, rows: int) -> None:
        # Bulk-load flow: index once over sealed segments, then load for searching.
        bulk = bulk_timeout(self._call_timeout, rows)
        self._client.flush(target, timeout=bulk)
        fields = ["dense", "sparse"] if self._lexical.get(target) else ["dense"]
        # pymilvus polls index state every 0.5 s per index; polling here finishes ~1 s sooner.
        self._wait_for_indexes(target, fields, timeout=max(bulk, 3600.0))
        self._client.load_collection(target, timeout=bulk)
        self._set_snapshot_version(target, snapshot_version)

    def _wait_for_indexes(self, target: str, fields: Sequence[str], timeout: float = 3600.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(fields)
        while pending:
            described = self._client.describe_index(target, pending[0])
            state = str(described.get("state", ""))
            if state == "Finished":
                pending.pop(0)
                continue
            if state == "Failed":
                raise MilvusException(message=f"index on {target}.{pending[0]} failed: {described}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"index on {target}.{pending[0]} not built after {timeout:.0f}s")
            time.sleep(_INDEX_POLL_SECONDS)

    def _set_snapshot_version(self, collection: str, version: str) -> None:
        self._client.alter_collection_properties(collection, {_PROP_SNAPSHOT: version})

    def _switch_alias(self, target: str) -> None:
        if self.live_collection() is None:
            self._client.create_alias(target, self.alias)
        else:
            self._client.alter_alias(target, self.alias)

    # ---- search --------------------------------------------------------------------------

    def _with_live(self, run: Callable[[bool], list[Hit]]) -> list[Hit]:
        live = self._searchable()
        if live is None:
            return []
        try:
            return run(self._lexical[live])
        except MilvusException:
            # The alias may have moved (another process rebuilt) or the collection been released.
            self._live = None
            live = self._searchable()
            if live is None:
                return []
            return run(self._lexical[live])

    def _searchable(self) -> str | None:
        if self._live is None:
            live = self.live_collection()
            if live is None:
                return None
            # Milvus Lite releases collections when the file is reopened.
            self._client.load_collection(live)
            self._lexical[live] = self._properties(live).get(_PROP_LEXICAL) == "1"
            self._mirror = self._load_mirror(live)
            self._live = live
        return self._live

    def _load_mirror(self, collection: str) -> IndexMirror | None:
        rows = int(self._client.get_collection_stats(collection).get("row_count", 0))

        def read(dense: bool) -> list[MirrorRow]:
            fields = ["kind", "table_key", "lexical", *(["dense"] if dense else [])]
            # Each page becomes compact rows before the next is read.
            return [
                _mirror_row(r)
                for page in self._pages(collection, 'kind != ""', fields, rows=rows)
                for r in page
            ]

        return self._mirror_of(collection, rows, read)

    def _mirror_of(
        self, collection: str, rows: int, read: Callable[[bool], Sequence[MirrorRow]]
    ) -> IndexMirror | None:
        """The mirror a collection of ``rows`` rows gets: vectors up to the mirror size, BM25 without the server's.

        ``read(dense)`` returns its rows, with their vectors when ``dense``.
        """
        dense = self._fits_mirror(rows)
        if not dense and self._lexical[collection]:
            return None
        return IndexMirror.build(collection, read(dense), dense=dense)

    def _fits_mirror(self, rows: int) -> bool:
        """Tell whether a collection of ``rows`` rows keeps its vectors in process (then Milvus only stores it)."""
        return self._mirror_max_rows > 0 and rows <= self._mirror_max_rows

    def _dense_mirror(self) -> IndexMirror | None:
        mirror = self._mirror
        return (
            mirror if mirror is not None and mirror.dense_rows and mirror.collection == self._live else None
        )

    @property
    def mirrored(self) -> bool:
        """Tell whether searches are answered in process, Milvus not called (see the module doc)."""
        return self._dense_mirror() is not None

    @property
    def server_bm25(self) -> bool | None:
        """Tell whether the live collection has Milvus' BM25 function (None before it was opened here)."""
        return self._lexical.get(self._live) if self._live is not None else None

    @property
    def path(self) -> SearchPath | None:
        """Where searches of the live collection compute each half (None before it was opened here)."""
        live = self._live
        if live is None:
            return None
        mirror = self._mirror if self._mirror is not None and self._mirror.collection == live else None
        return SearchPath(
            dense="process" if mirror is not None and mirror.dense_rows else "milvus",
            lexical="process" if mirror is not None else "server",
        )

    def _fuse(self, dense: list[Hit], lexical: list[Hit], limit: int) -> list[Hit]:
        """Fuse two top-``limit`` lists the way Milvus' rankers do (rows keyed by kind and key)."""
        cfg = self._hybrid_config
        scores: dict[tuple[str, str], float] = {}
        for hits, weight in ((dense, cfg.dense_weight), (lexical, cfg.lexical_weight)):
            for rank, (kind, key, score) in enumerate(hits, start=1):
                gain = 1.0 / (cfg.rrf_k + rank) if cfg.ranker == "rrf" else weight * score
                scores[(kind, key)] = scores.get((kind, key), 0.0) + gain
        scale = (cfg.rrf_k + 1) / 2.0 if cfg.ranker == "rrf" else 1.0
        ordered = sorted(scores.items(), key=lambda item: -item[1])[:limit]
        return [(kind, key, score * scale) for (kind, key), score in ordered]

    def search(
        self, query_text: str, query_vector: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[str, float]]:
        """Find documents of the layout's searched kind (tables, fitting examples) by hybrid search, best first."""
        hits = self._with_live(
            lambda lexical: self._hybrid([self.layout.counted], query_text, query_vector, limit, lexical)
        )
        return [(key, score) for _, key, score in hits]

    def _hybrid(
        self,
        kinds: Sequence[str],
        query_text: str,
        query_vector: npt.NDArray[np.float32],
        limit: int,
        lexical: bool,
    ) -> list[Hit]:
        limit = min(limit, _MAX_QUERY_WINDOW)
        mirror = self._mirror if self._mirror is not None and self._mirror.collection == self._live else None
        if mirror is not None or not lexical or not query_text.strip():
            # BM25 in process (or none): the dense half from the mirror or from Milvus, fused here. BM25 first:
            # it is Python on this thread, while the torch thread may still be scanning the columns.
            words = (
                mirror.bm25(kinds, query_text, limit) if mirror is not None and query_text.strip() else None
            )
            if mirror is not None and mirror.dense_rows:
                dense = mirror.dense(kinds, query_vector, limit)
            else:
                dense = self._dense_search(kinds, query_vector, limit)
            return dense if words is None else self._fuse(dense, words, limit)
        partitions = [self.layout.partitions[kind] for kind in kinds]
        vector = [_as_list(query_vector)]
        fields = ["kind", "table_key"]
        requests = [
            AnnSearchRequest(vector, "dense", {}, limit=limit),
            AnnSearchRequest([query_text], "sparse", {}, limit=limit),
        ]
        cfg = self._hybrid_config
        if cfg.ranker == "rrf":
            ranker: RRFRanker | WeightedRanker = RRFRanker(cfg.rrf_k)
            scale = (cfg.rrf_k + 1) / 2.0  # first place in both lists scores 1.0
        else:
            # Raw scores: cosine + w * BM25. Milvus' normalisation (arctan, (1 + cos) / 2)
            # flattens the contrast the ranking relies on (measured: -3 points complete@10).
            ranker = WeightedRanker(cfg.dense_weight, cfg.lexical_weight, norm_score=False)
            scale = 1.0
        hits = self._client.hybrid_search(
            self.alias, requests, ranker, limit=limit, partition_names=partitions, output_fields=fields
        )
        return [_hit(h, scale) for h in hits[0]]

    def _dense_search(
        self, kinds: Sequence[str], query_vector: npt.NDArray[np.float32], limit: int
    ) -> list[Hit]:
        hits = self._client.search(
            self.alias,
            data=[_as_list(query_vector)],
            anns_field="dense",
            limit=limit,
            partition_names=[self.layout.partitions[kind] for kind in kinds],
            output_fields=["kind", "table_key"],
        )
        return [_hit(h, 1.0) for h in hits[0]]


#: The row kinds a table search ranks in its hybrid call (columns are searched densely, apart).
SEARCHED_KINDS = (KIND_TABLE, KIND_SCHEMA)


class TableIndex(DocumentIndex):
    """The table collection of one profile."""

    layout = TABLES

    def sync(
        self,
        snapshot: Snapshot,
        embedder: TextEncoder,
        progress: Progress | None = None,
        *,
        rebuild: bool = False,
    ) -> SyncStats:
        """Bring the index in line with the snapshot, embedding only changed tables."""
        groups = build_groups(snapshot, embedder.model_id)
        return self.sync_groups(groups, snapshot.version, embedder, progress, rebuild=rebuild)

    def signals(
        self,
        query_text: str,
        query_vector: npt.NDArray[np.float32],
        limit: int,
        column_limit: int | None = None,
    ) -> Signals:
        """Collect what ranking needs: tables and schemas (hybrid), best columns (dense).

        Two Milvus calls, run side by side, or none with a mirror. ``column_limit=0`` skips the columns.
        """

        def tables_and_schemas(lexical: bool) -> list[tuple[str, str, float]]:
            # One call for both: weighted scores do not depend on which rows compete.
            return self._hybrid(SEARCHED_KINDS, query_text, query_vector, limit, lexical)

        window = min(column_limit or limit, _MAX_QUERY_WINDOW)

        def columns(_: bool) -> list[tuple[str, str, float]]:
            mirror = self._dense_mirror()
            if mirror is not None:
                return mirror.dense([KIND_COLUMN], query_vector, window)
            # Milvus' group_by would take the max per table too, at three times the cost.
            return self._dense_search([KIND_COLUMN], query_vector, window)

        # The two halves are independent: the column half (a Milvus call, or torch's product over the column
        # rows, which frees the GIL) runs beside the table half, not after it; a mirror's column scan is queued
        # straight on the torch thread (a hop through the search pool cost ~0.7 ms).
        mirror = self._dense_mirror()
        pending: Future[list[Hit]] | None = None
        if column_limit != 0 and mirror is not None:
            pending = submit_to_torch_thread(mirror.dense, [KIND_COLUMN], query_vector, window)
        elif column_limit != 0 and self._search_pool is not None:
            pending = self._search_pool.submit(self._with_live, columns)
        tables: dict[str, float] = {}
        schemas: dict[str, float] = {}
        for kind, key, score in self._with_live(tables_and_schemas):
            (schemas if kind == KIND_SCHEMA else tables).setdefault(key, score)
        best_columns: dict[str, float] = {}
        if pending is not None:
            column_hits = pending.result()
        else:
            column_hits = self._with_live(columns) if column_limit != 0 else []
        for _, key, score in column_hits:
            best_columns.setdefault(key, score)
        floor = column_hits[-1][2] if column_hits and len(column_hits) >= window else 0.0
        return Signals(tables=tables, columns=best_columns, schemas=schemas, column_floor=floor)


class ExampleIndex(DocumentIndex):
    """The query-example collection of one profile: only examples that fit the schema are searched."""

    layout = EXAMPLES


def _short_error(exc: MilvusException) -> str:
    return str(getattr(exc, "message", None) or exc)[:200]


def _hit(hit: dict[str, Any], scale: float) -> Hit:
    entity = hit["entity"]
    return (str(entity["kind"]), str(entity["table_key"]), float(hit["distance"]) * scale)


def _schema(dim: int, *, lexical: bool) -> Any:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("table_key", DataType.VARCHAR, max_length=MAX_NAME_BYTES)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    if lexical:
        schema.add_field("lexical", DataType.VARCHAR, max_length=MAX_LEXICAL_BYTES + 16, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="lexical_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["lexical"],
                output_field_names=["sparse"],
            )
        )
    else:
        schema.add_field("lexical", DataType.VARCHAR, max_length=MAX_LEXICAL_BYTES + 16)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def _row(doc: Document, group_hash: str, vector: npt.NDArray[np.float32]) -> dict[str, Any]:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "table_key": doc.group,
        "content_hash": group_hash,
        "lexical": doc.lexical,
        "dense": np.asarray(vector, dtype=np.float32),  # packed by pymilvus; the mirror keeps this array
    }


def _mirror_row(row: dict[str, Any]) -> MirrorRow:
    vector = np.asarray(row.get("dense", ()), dtype=np.float32)
    return str(row["kind"]), str(row["table_key"]), str(row["lexical"] or ""), vector


@dataclass(frozen=True, slots=True)
class _Sketch:
    """A large matrix seen along its main directions: what ``_closest`` scans before it scores rows exactly.

    For unit rows x and an orthonormal basis P, x . q = (P'x) . (P'q) + r_x . r_q, with r the part outside the
    basis, so |x . q - (P'x) . (P'q)| <= |r_x| |r_q|: the projection and each row's |r_x| bound every row's score.
    """

    basis: Any  # (dim, d) float32, orthonormal columns: the matrix's d main directions
    projected: Any  # (rows, d) bfloat16: each row in that basis
    residual: Any  # (rows,) float32: |r_x|, a hair over (never under) the true norm

    @classmethod
    def of(cls, matrix: npt.NDArray[np.float32]) -> _Sketch:
        """Sketch a matrix (run it on the torch thread): 0.2 s for 115,000 column rows."""
        import torch

        m = torch.from_numpy(matrix)
        sample = m[:: max(1, len(m) // 16_384)]
        _, directions = torch.linalg.eigh(sample.T @ sample)  # ascending eigenvalues
        basis = directions[:, -min(_SKETCH_DIMS, max(1, m.shape[1] // 2)) :].contiguous()
        projected = m @ basis
        left = (m * m).sum(dim=1) - (projected * projected).sum(dim=1)
        return cls(basis, projected.to(torch.bfloat16), _norm_over(left))


def _norm_over(squared: Any) -> Any:
    """A norm from its square, a hair over: |r|^2 is a difference of float32 sums (a true 1e-7 can come out 0
    or below), and sqrt(|r|^2 + 1e-6) stays above |r|."""
    import torch

    return torch.sqrt(torch.clamp(squared, min=0.0) + 1e-6)


def _closest(
    matrix: npt.NDArray[np.float32], sketch: _Sketch | None, query: npt.NDArray[np.float32], limit: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """``_closest_here`` on the process's torch thread (``embedder.on_torch_thread``); a small matrix here.

    A matrix of up to ``_SKETCH_MIN_ROWS`` rows (the tables of a 3,000-table warehouse: 0.1 ms) is scored on
    the calling thread with numpy: it does not wait behind the column scan queued on the torch thread.
    """
    if sketch is None and len(matrix) <= _SKETCH_MIN_ROWS:
        k = min(limit, len(matrix))
        if k <= 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        sims = matrix @ query
        top = np.argpartition(sims, len(sims) - k)[len(sims) - k :] if k < len(sims) else np.arange(len(sims))
        return top, sims[top]
    return on_torch_thread(_closest_here, matrix, sketch, query, limit)


def _closest_here(
    matrix: npt.NDArray[np.float32], sketch: _Sketch | None, query: npt.NDArray[np.float32], limit: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """The ``limit`` rows of ``matrix`` (unit rows) with the highest cosine to ``query`` (unit): indices, cosines.

    Always the exact answer, computed with torch's kernels, on the thread (and OpenMP team) that just embedded the
    request (numpy's were 2-4x slower from 20,000 rows up: einsum has no threads, BLAS' threads sleep). A large
    matrix is first scanned through its sketch (128 bfloat16 dimensions: a sixth of the bytes), which bounds
    every row's score; the best ``4 * limit`` rows by sketch are scored exactly, and every row whose bound reaches
    the ``limit``-th of those scores (a few hundred to a few thousand of 115,000 column rows) is scored exactly
    too: no other row can be in the top. 3.8 ms for 115,000 column rows here, against 6.9 ms for a bfloat16 scan
    of the whole matrix and 18.7 ms for the float32 product.
    """
    import torch  # loaded with the model already (a mirror only exists beside it)
    from torch.nn.functional import linear

    q = torch.from_numpy(query)
    rows, k = len(matrix), min(limit, len(matrix))
    if sketch is not None and 0 < k < rows:
        q_in = q @ sketch.basis
        q_out = _norm_over(q @ q - q_in @ q_in)
        approx = linear(q_in.to(torch.bfloat16).unsqueeze(0), sketch.projected)[0].float()
        slack = sketch.residual * q_out + _BFLOAT16_ERROR
        first = torch.topk(approx, min(4 * k, rows), sorted=False).indices.numpy()
        floor = torch.topk(torch.mv(torch.from_numpy(matrix[first]), q), k, sorted=False).values.min()
        candidates = torch.nonzero(approx + slack >= floor).squeeze(1).numpy()
        if len(candidates) <= rows // 4:  # else the full product is cheaper
            sims, top = torch.topk(torch.mv(torch.from_numpy(matrix[candidates]), q), k, sorted=False)
            return candidates[top.numpy()], sims.numpy()
    sims, top = torch.topk(torch.mv(torch.from_numpy(matrix), q), k, sorted=False)
    return top.numpy(), sims.numpy()


def _normalised(matrix: npt.NDArray[np.float32], *, in_place: bool = False) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (a zero row stays zero); ``in_place`` for a float32 matrix nothing else holds."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: npt.NDArray[np.float32] = matrix if in_place else matrix.astype(np.float32)
    out /= norms
    return out


def _as_list(vector: npt.NDArray[np.float32]) -> list[float]:
    values: list[float] = np.asarray(vector, dtype=np.float32).ravel().tolist()
    return values
