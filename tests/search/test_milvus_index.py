"""The Milvus table index with real Milvus Lite and the real MiniLM model."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pymilvus import MilvusClient, MilvusException

from dbmeta_app.search import milvus_index
from dbmeta_app.search.bm25 import Bm25
from dbmeta_app.search.documents import lexical_query
from dbmeta_app.search.embedder import Embedder
from dbmeta_app.search.milvus_index import (
    DEFAULT_MIRROR_MAX_ROWS,
    IndexMirror,
    SearchPath,
    TableIndex,
    bulk_timeout,
    collection_base,
    connect,
    resolve_uri,
)
from dbmeta_app.search.service import TableSearch
from tests.milvus_server import MilvusServer
from tests.search._snapshots import col, warehouse

pytestmark = pytest.mark.integration

DB = "sqlite:0000000000000000"  # a database identity (cache.keys.database_identity)


class CountingEncoder:
    """Wrap the real embedder, recording the texts encoded; optionally pause mid-build."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.texts: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        self.started.set()
        assert self.release.wait(30)
        return self.inner.encode(texts)


@pytest.fixture(
    params=[(DEFAULT_MIRROR_MAX_ROWS, False), (0, False), (0, True)],
    ids=["mirrored", "in-milvus", "server-in-milvus"],
)
def index(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TableIndex]:
    """Both search paths: dense scoring in process (a small index) and everything in Milvus (Lite, a server)."""
    mirror_max_rows, on_server = request.param
    server: MilvusServer | None = request.getfixturevalue("milvus_server") if on_server else None
    idx = TableIndex(
        connect(server.uri if server is not None else str(tmp_path / "milvus.db")),
        client_name="acme",
        env="test",
        profile=f"wh{uuid.uuid4().hex[:8]}" if server is not None else "wh",  # the server is shared
        database=DB,
        mirror_max_rows=mirror_max_rows,
    )
    yield idx
    idx.close()
    if server is not None:
        drop_collections(server, idx.alias)


def drop_collections(server: MilvusServer, prefix: str) -> None:
    """Drop what a test built on the shared server (aliases first: Milvus refuses to drop an aliased one)."""
    client = server.client()
    try:
        for alias in client.list_aliases().get("aliases", []):
            if alias.startswith(prefix):
                client.drop_alias(alias)
        for name in client.list_collections():
            if name.startswith(prefix):
                client.drop_collection(name)
    finally:
        client.close()


def names(search: TableSearch, query: str, k: int) -> list[str]:
    return [hit.name for hit in search.search(query, k)]


def test_collection_names_are_valid_and_distinct_per_client_env_profile_and_database() -> None:
    a = collection_base("Acme Corp", "prod", "sales-eu/1", "postgresql:00112233aabbccdd")
    assert a.startswith("dbmeta_Acme_Corp_prod_sales_eu_1_")
    assert a.replace("_", "").isalnum()
    assert a != collection_base("Acme Corp", "prod", "sales_eu_1", "postgresql:00112233aabbccdd")
    assert a != collection_base("Acme Corp", "prod", "sales-eu/1", "postgresql:99112233aabbccdd")


def test_resolve_uri_maps_files_to_lite_and_refuses_other_paths(tmp_path: Path) -> None:
    assert resolve_uri(None, tmp_path) == str(tmp_path / "milvus.db")
    assert resolve_uri("http://milvus:19530", tmp_path) == "http://milvus:19530"
    with pytest.raises(ValueError, match="MILVUS_URI"):
        resolve_uri("/data/milvus", tmp_path)


def test_index_then_resync_unchanged_embeds_nothing_and_search_finds_the_table(
    index: TableIndex, embedder: Embedder
) -> None:
    snap = warehouse()
    assert not index.ready
    first = index.sync(snap, embedder)
    assert (first.added, first.updated, first.removed, first.unchanged) == (8, 0, 0, 0)
    again = index.sync(snap, embedder)
    assert (again.embedded, again.unchanged, again.rebuilt) == (0, 8, False)
    state = index.state()
    assert state.ready and state.snapshot_version == snap.version
    # Milvus Lite ranks BM25 itself (unless mirrored); a 2.3 server has no BM25 function: ranked in process
    server_ranks = state.lexical and not index.mirrored
    assert state.path is not None and state.path.lexical == ("server" if server_ranks else "process")
    assert state.lexical or index.server_bm25 is False
    assert state.rows == 8 + sum(len(t.columns) for t in snap.tables.values()) + 3
    search = TableSearch(snap, embedder, index)
    assert names(search, "average salary of employees per department", 2) == [
        "hr.employees",
        "hr.departments",
    ]
    without_columns = TableSearch(snap, embedder, index, columns=False)
    assert names(without_columns, "customer email addresses", 1) == ["shop.customers"]
    assert index.search("student grade point average", embedder.encode(["student gpa"])[0], 3)[0][0] == (
        "school.students"
    )


def test_resync_embeds_only_the_changed_table_and_drops_removed_ones(
    index: TableIndex, embedder: Embedder
) -> None:
    snap = warehouse()
    index.sync(snap, embedder)
    tables = dict(snap.tables)
    tables["school.courses"] = replace(
        tables["school.courses"], columns=(*tables["school.courses"].columns, col("room"))
    )
    del tables["hr.departments"]
    changed = replace(snap, tables=tables, version="v2")
    counting = CountingEncoder(embedder)
    stats = index.sync(changed, counting)
    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (0, 1, 1, 6)
    # courses: its table row and 4 columns; schema documents of school (changed) and hr (lost a table)
    assert stats.embedded == len(counting.texts) == 7
    assert any(t.startswith("courses (school)") for t in counting.texts)
    assert index.live_collection() == stats.collection
    search = TableSearch(changed, embedder, index)
    hits = names(search, "department names", 8)
    assert "hr.departments" not in hits
    assert index.state().rows == 7 + sum(len(t.columns) for t in changed.tables.values()) + 3


def test_a_reader_during_a_rebuild_sees_the_old_complete_index(index: TableIndex, embedder: Embedder) -> None:
    snap = warehouse()
    index.sync(snap, embedder)
    live_before = index.live_collection()
    search = TableSearch(snap, embedder, index)
    expected = names(search, "products in each order", 8)
    slow = CountingEncoder(embedder)
    slow.release.clear()
    builder = threading.Thread(target=lambda: index.sync(snap, slow, rebuild=True))
    builder.start()
    try:
        assert slow.started.wait(30)  # the new collection exists and is being filled
        assert index.live_collection() == live_before
        assert names(search, "products in each order", 8) == expected
        assert len(expected) == 8
    finally:
        slow.release.set()
        builder.join(60)
    assert index.live_collection() != live_before
    assert names(search, "products in each order", 8) == expected


QUERIES = [
    "average salary of employees per department",
    "customer email addresses",
    "which students take which courses",
    "the of and",  # stop words only: no BM25 half
]


def test_the_mirrored_search_agrees_with_milvus(tmp_path: Path, embedder: Embedder) -> None:
    client = connect(str(tmp_path / "milvus.db"))
    mirrored = TableIndex(client, client_name="acme", env="test", profile="wh", database=DB)
    in_milvus = TableIndex(
        client, client_name="acme", env="test", profile="wh", database=DB, mirror_max_rows=0
    )
    snap = warehouse()
    in_milvus.sync(snap, embedder)  # built to be searched in Milvus: its BM25 is Milvus' own
    assert in_milvus.state().lexical and mirrored.ready
    for query in QUERIES:
        text, vector = lexical_query(query), embedder.encode([query])[0]
        a = mirrored.signals(text, vector, 20, column_limit=20)
        b = in_milvus.signals(text, vector, 20, column_limit=20)
        assert mirrored.mirrored and not in_milvus.mirrored
        # dense scores are the same cosines (a small collection is searched exactly by Milvus too)
        assert set(a.columns) == set(b.columns)
        assert all(abs(a.columns[k] - b.columns[k]) < 1e-4 for k in b.columns), query
        # BM25 statistics differ a little (Milvus keeps them per segment): the same rows, close scores
        assert set(a.tables) == set(b.tables) and set(a.schemas) == set(b.schemas), query
        assert all(abs(a.tables[k] - b.tables[k]) < 0.1 * max(1.0, b.tables[k]) for k in b.tables), query
        assert names(TableSearch(snap, embedder, mirrored), query, 3) == names(
            TableSearch(snap, embedder, in_milvus), query, 3
        ), query
    client.close()


def test_an_index_over_the_mirror_size_is_searched_in_milvus(tmp_path: Path, embedder: Embedder) -> None:
    index = TableIndex(
        connect(str(tmp_path / "m.db")),
        client_name="a",
        env="t",
        profile="p",
        database=DB,
        mirror_max_rows=10,
    )
    index.sync(warehouse(), embedder)
    assert not index.mirrored and index.state().rows > 10
    search = TableSearch(warehouse(), embedder, index)
    assert names(search, "customer email addresses", 1) == ["shop.customers"]
    index.close()


class NoBm25Client:
    """A Milvus Lite client that behaves like a server without full-text search (Milvus 2.4)."""

    def __init__(self, inner: MilvusClient) -> None:
        self._inner = inner

    def create_collection(self, name: str, schema: Any = None, **kwargs: Any) -> None:
        if schema is not None and schema.functions:
            raise MilvusException(message="function type BM25 is not supported")
        self._inner.create_collection(name, schema=schema, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)


def test_over_the_mirror_size_without_bm25_dense_is_searched_in_milvus_and_bm25_in_process(
    tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    client = NoBm25Client(connect(str(tmp_path / "milvus.db")))
    options: dict[str, Any] = {"client_name": "a", "env": "t", "profile": "big", "database": DB}
    index = TableIndex(client, mirror_max_rows=10, **options)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        index.sync(warehouse(), embedder)
    assert "dense-only" in caplog.text and not index.state().lexical
    reopened = TableIndex(client, mirror_max_rows=10, **options)  # type: ignore[arg-type]
    query = "customer email addresses"
    vector = embedder.encode([query])[0]
    for idx in (index, reopened):
        with_bm25 = idx.signals(lexical_query(query), vector, 20, column_limit=0).tables
        assert not idx.mirrored and idx.path == SearchPath(dense="milvus", lexical="process")
        dense_only = idx.signals("", vector, 20, column_limit=0).tables
        assert with_bm25["shop.customers"] > dense_only["shop.customers"] + 0.01
        # the column half comes from Milvus too (a BM25-only mirror is no reason to skip it)
        assert "shop.customers" in idx.signals(lexical_query(query), vector, 20, column_limit=5).columns
    assert names(TableSearch(warehouse(), embedder, reopened), query, 1) == ["shop.customers"]
    index.close()


def test_milvus_builds_search_structures_only_for_a_collection_the_mirror_does_not_answer(
    tmp_path: Path, embedder: Embedder
) -> None:
    # An HNSW graph and BM25 postings that no search reads were most of a large build's cost beside the model.
    client = connect(str(tmp_path / "milvus.db"))
    rows = 8 + sum(len(t.columns) for t in warehouse().tables.values()) + 3
    for max_rows, index_type, lexical in ((rows, "FLAT", False), (rows - 1, "AUTOINDEX", True)):
        idx = TableIndex(
            client, client_name="a", env="t", profile=f"p{max_rows}", database=DB, mirror_max_rows=max_rows
        )
        idx.sync(warehouse(), embedder)
        live = idx.live_collection()
        assert live is not None and client.describe_index(live, "dense")["index_type"] == index_type
        assert idx.state().lexical is lexical and idx.mirrored is not lexical
        fields = {f["name"] for f in client.describe_collection(live)["fields"]}
        assert not fields & {"text", "schema_name"}  # nothing reads them back
        search = TableSearch(warehouse(), embedder, idx)
        assert names(search, "customer email addresses", 1) == ["shop.customers"]
        # another process whose mirror is off still ranks both halves (Milvus' dense, BM25 in process)
        other = TableIndex(
            client, client_name="a", env="t", profile=f"p{max_rows}", database=DB, mirror_max_rows=0
        )
        assert names(TableSearch(warehouse(), embedder, other), "customer email addresses", 1) == [
            "shop.customers"
        ]
        assert other.path == SearchPath(dense="milvus", lexical="server" if lexical else "process")
    client.close()


def test_the_mirror_keeps_bm25_statistics_per_row_kind() -> None:
    vector = np.zeros(4, dtype=np.float32)
    rows = [
        ("table", "orders", "order item", vector),
        ("table", "customers", "customer", vector),
        ("schema", "shop", "shop order order order customer product price", vector),
    ]
    mirror = IndexMirror.build("c", rows)
    tables_only = Bm25.build({"orders": ["order", "item"], "customers": ["customer"]})
    [(_, key, score)] = mirror.bm25(["table"], "order", 5)
    # as Milvus, whose statistics are per segment, and each kind has its partition
    assert key == "orders" and score == pytest.approx(tables_only.scores(["order"])["orders"])


# ---- query examples ------------------------------------------------------------------------------

EXAMPLE_TEXTS = {
    "late-invoices": "Invoices paid late, by customer",
    "stock-levels": "Units in stock per warehouse",
    "ticket-load": "Support tickets handled per agent",
}


def _example_groups(model_id: str, stale: frozenset[str] = frozenset()) -> list[Any]:
    from dbmeta_app.search.documents import example_group

    return [example_group(i, text, i not in stale, model_id) for i, text in EXAMPLE_TEXTS.items()]


def test_examples_that_do_not_fit_are_kept_out_of_searches_and_move_back_when_they_fit(
    tmp_path: Path, embedder: Embedder
) -> None:
    from dbmeta_app.search.milvus_index import ExampleIndex

    client = connect(str(tmp_path / "milvus.db"))
    tables = TableIndex(client, client_name="acme", env="test", profile="wh", database=DB)
    examples = ExampleIndex(client, client_name="acme", env="test", profile="wh", database=DB)
    assert examples.alias != tables.alias  # two collections of one profile, one Lite file
    encoder = CountingEncoder(embedder)
    first = examples.sync_groups(_example_groups(embedder.model_id), "v1", encoder)
    assert (first.added, first.embedded) == (3, 3) and not tables.ready
    query = "which warehouse holds how many units"
    vector = embedder.encode([query])[0]
    hits = examples.search(query, vector, 3)
    assert hits[0][0] == "stock-levels" and {h[0] for h in hits} == set(EXAMPLE_TEXTS)

    # The schema changed and "stock-levels" no longer fits: it is re-filed, the others are not re-embedded.
    encoder.texts.clear()
    moved = examples.sync_groups(
        _example_groups(embedder.model_id, frozenset({"stock-levels"})), "v2", encoder
    )
    assert (moved.updated, moved.unchanged) == (1, 2) and encoder.texts == [EXAMPLE_TEXTS["stock-levels"]]
    assert "stock-levels" not in {h[0] for h in examples.search(query, vector, 3)}
    assert examples.state().rows == 3 and examples.state().snapshot_version == "v2"

    back = examples.sync_groups(_example_groups(embedder.model_id), "v3", encoder)
    assert back.updated == 1 and examples.search(query, vector, 1)[0][0] == "stock-levels"
    again = examples.sync_groups(_example_groups(embedder.model_id), "v3", encoder)
    assert (again.embedded, again.rebuilt) == (0, False)
    client.close()


# ---- bounded calls and progress ----------------------------------------------------------------------


class RecordingClient:
    """A real client that records, for each call, whether it carried a deadline."""

    def __init__(self, inner: MilvusClient) -> None:
        self._inner = inner
        self.calls: list[tuple[str, Any]] = []
        self.kwargs: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._inner, attr)
        if not callable(target) or attr in {"close", "prepare_index_params", "create_schema"}:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((attr, kwargs.get("timeout")))
            self.kwargs.append((attr, kwargs))
            return target(*args, **kwargs)

        return call


class PagingClient(RecordingClient):
    """A recording client whose query iterators note each page they return (``page:<rows>``) in ``events``."""

    def __init__(self, inner: MilvusClient, events: list[str]) -> None:
        super().__init__(inner)
        self.events = events

    def query_iterator(self, *args: Any, **kwargs: Any) -> Any:
        self.kwargs.append(("query_iterator", kwargs))
        inner = self._inner.query_iterator(*args, **kwargs)
        events = self.events

        class Pages:
            def next(self) -> Any:
                page = inner.next()
                if page:
                    events.append(f"page:{len(page)}")
                return page

            def close(self) -> None:
                inner.close()

        return Pages()


def recording_index(tmp_path: Path, **options: Any) -> tuple[RecordingClient, TableIndex]:
    """A Lite index searched in Milvus (no mirror) whose client records every call and its timeout."""
    client = RecordingClient(connect(str(tmp_path / "milvus.db")))
    index = TableIndex(
        client,  # type: ignore[arg-type]
        client_name="acme",
        env="test",
        profile="wh",
        database=DB,
        mirror_max_rows=0,
        **options,
    )
    return client, index


def test_every_milvus_call_of_a_build_and_a_search_has_a_deadline(tmp_path: Path, embedder: Embedder) -> None:
    client, index = recording_index(tmp_path, call_timeout=7.0, search_timeout=3.0)
    index.sync(warehouse(), embedder)
    index.sync(warehouse(), embedder, rebuild=True)
    assert names(TableSearch(warehouse(), embedder, index), "customer email addresses", 1) == [
        "shop.customers"
    ]
    used = {name for name, _ in client.calls}
    assert {
        "create_collection",
        "create_index",
        "insert",
        "flush",
        "create_alias",
        "alter_alias",
        "drop_collection",
    } <= used
    assert {"hybrid_search", "search"} <= used
    unbounded = [name for name, timeout in client.calls if timeout is None]
    assert unbounded == []  # pymilvus waits forever without one: a stuck call would hang the build
    assert {t for n, t in client.calls if n in ("search", "hybrid_search")} == {3.0}
    # sealing (which indexes what it seals) and loading grow with the collection: their deadline grows with its rows
    bulk = {"flush", "load_collection"}
    grown = {t for n, t in client.calls if n in bulk}
    assert len(grown) == 1 and min(grown) > 7.0
    assert bulk_timeout(7.0, 150_000) >= 1_500  # a 150,000-row build gets minutes (a fixed 120 s failed one)
    assert {t for n, t in client.calls if n not in ("search", "hybrid_search", *bulk)} == {7.0}
    index.close()


def test_progress_moves_per_model_batch_and_is_silent_with_nothing_to_embed(
    index: TableIndex, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dbmeta_app.search.milvus_index._PROGRESS_BATCH", 8, raising=False)
    seen: list[tuple[int, int]] = []
    stats = index.sync(warehouse(), embedder, lambda done, total: seen.append((done, total)))
    total = stats.embedded
    assert total > 16 and seen[0] == (0, total) and seen[-1] == (total, total)
    dones = [done for done, _ in seen]
    assert dones == sorted(dones) and len(set(dones)) >= total // 8  # a step per batch of 8 texts
    seen.clear()
    index.sync(warehouse(), embedder, lambda done, total: seen.append((done, total)))
    assert seen == []  # nothing changed: the CLI says "nothing to embed", not 0/?


def test_a_sync_sees_a_collection_another_process_built_and_embeds_nothing(
    tmp_path: Path, embedder: Embedder
) -> None:
    client = connect(str(tmp_path / "milvus.db"))
    here = TableIndex(client, client_name="acme", env="test", profile="wh", database=DB)
    there = TableIndex(
        client, client_name="acme", env="test", profile="wh", database=DB
    )  # e.g. the CLI, or another worker
    here.sync(warehouse(), embedder)
    before = here.live_collection()
    there.sync(warehouse(), embedder, rebuild=True)  # moves the alias, drops the collection 'here' knew
    assert there.live_collection() != before
    counting = CountingEncoder(embedder)
    again = here.sync(warehouse(), counting)
    assert (again.embedded, again.rebuilt) == (0, False) and counting.texts == []
    assert names(TableSearch(warehouse(), embedder, here), "customer email addresses", 1) == [
        "shop.customers"
    ]
    client.close()


def test_a_cut_column_list_reports_its_lowest_score_as_the_floor(tmp_path: Path, embedder: Embedder) -> None:
    client = connect(str(tmp_path / "milvus.db"))
    mirrored = TableIndex(client, client_name="acme", env="test", profile="wh", database=DB)
    in_milvus = TableIndex(
        client, client_name="acme", env="test", profile="wh", database=DB, mirror_max_rows=0
    )
    mirrored.sync(warehouse(), embedder)
    text, vector = lexical_query(QUERIES[0]), embedder.encode([QUERIES[0]])[0]
    for index in (mirrored, in_milvus):
        cut = index.signals(text, vector, 20, column_limit=3)
        assert 0.0 < cut.column_floor <= min(cut.columns.values())
        # every column row fits in the window: a table missing from it has no matching column at all
        assert index.signals(text, vector, 20, column_limit=500).column_floor == 0.0


def test_a_large_build_seals_segments_as_it_goes_so_milvus_indexes_them_during_the_build(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dbmeta_app.search.milvus_index._SEAL_ROWS", 10)
    monkeypatch.setattr("dbmeta_app.search.milvus_index._EMBED_BATCH", 8)
    client, index = recording_index(tmp_path)
    stats = index.sync(warehouse(), embedder)
    calls = [name for name, _ in client.calls]
    # the index exists before the first row arrives, and segments are sealed while rows are still coming
    assert calls.index("create_index") < calls.index("insert")
    first_flush = calls.index("flush")
    assert "insert" in calls[first_flush:]
    assert calls.count("flush") >= stats.embedded // 10
    # and the result is searchable as before
    assert names(TableSearch(warehouse(), embedder, index), "customer email addresses", 1) == [
        "shop.customers"
    ]
    index.close()


def test_a_large_mirror_answers_exactly_what_the_full_product_answers_even_with_near_ties() -> None:
    # Above 8,192 rows the mirror scans a sketch first (main directions, bfloat16); its answer must still be the
    # exact one. Rows like embeddings: most of their energy in more directions than the sketch keeps, the rest
    # spread thin.
    rng = np.random.default_rng(7)
    dim, n, limit = 64, 40_000, 50
    directions = rng.standard_normal((40, dim)).astype(np.float32)
    spread = rng.standard_normal((n, 40)).astype(np.float32) @ directions
    spread += rng.standard_normal((n, dim)).astype(np.float32) * 0.6
    query = rng.standard_normal(40).astype(np.float32) @ directions
    query /= np.linalg.norm(query)
    query += rng.standard_normal(dim).astype(np.float32) * 0.06  # a part outside the rows' main directions
    query /= np.linalg.norm(query)
    # 5 rows close to the query mostly outside the main directions: the sketch alone ranks them low
    span, _ = np.linalg.qr(directions.T)
    inside = span @ (span.T @ query)
    outside = query - inside
    hidden = 0.5 * inside / np.linalg.norm(inside) + 0.86 * outside / np.linalg.norm(outside)
    hidden = hidden + rng.standard_normal((5, dim)).astype(np.float32) * 1e-3
    # 600 rows within a bfloat16 step of each other right at the cut: only the exact product orders them
    tied = query + rng.standard_normal((600, dim)).astype(np.float32) * 1e-2
    for matrix in (np.concatenate([spread, hidden]), np.concatenate([spread, hidden, tied])):
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        rows = [("column", f"t{i}", "", matrix[i]) for i in range(len(matrix))]
        mirror = IndexMirror.build("c", rows)
        assert "column" in mirror.sketches  # the sketch is the path under test
        exact = matrix @ query
        expected = sorted(((f"t{i}", float(exact[i])) for i in range(len(matrix))), key=lambda h: -h[1])
        got = mirror.dense(["column"], query, limit)
        # the same rows (rows whose scores differ by float rounding alone may come in either order)
        assert {key for _, key, _ in got} == {key for key, _ in expected[:limit]}
        assert [score for _, _, score in got] == pytest.approx(
            [score for _, score in expected[:limit]], abs=1e-6
        )


def test_a_small_matrix_is_scored_at_once_not_behind_the_column_scan_on_the_torch_thread() -> None:
    # The table half of a search (a few thousand rows) runs beside the column half (a scan queued on the torch
    # thread): it must not wait for that scan to end, and it answers exactly what the full product answers.
    import threading

    from dbmeta_app.search.embedder import submit_to_torch_thread

    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((3_000, 48)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = matrix[17] + 0.1 * rng.standard_normal(48).astype(np.float32)
    query /= np.linalg.norm(query)
    mirror = IndexMirror.build("c", [("table", f"t{i}", "", matrix[i]) for i in range(len(matrix))])
    busy, release = threading.Event(), threading.Event()
    blocker = submit_to_torch_thread(lambda: (busy.set(), release.wait(30)))
    try:
        assert busy.wait(10)
        got = mirror.dense(["table"], query, 20)  # would wait for ``release`` when queued on the torch thread
        assert not blocker.done()
    finally:
        release.set()
    blocker.result(10)
    exact = matrix @ query
    expected = np.argsort(-exact)[:20]
    assert [key for _, key, _ in got] == [f"t{i}" for i in expected]
    assert [score for _, _, score in got] == pytest.approx([float(exact[i]) for i in expected], abs=1e-6)
    assert (
        mirror.dense(["table"], query, 5_000)[-1][1] == f"t{int(np.argmin(exact))}"
    )  # a limit over the rows


def test_a_mirror_larger_than_one_query_is_read_back_whole_page_by_page(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each page is a scan of the collection in Milvus Lite (1,000-row pages read 110,000 rows back in 49 s), and
    # Milvus' rows carry their vectors as lists of Python floats (110,000 of them held at once were 3 GB).
    monkeypatch.setattr("dbmeta_app.search.milvus_index._MAX_QUERY_WINDOW", 8)
    monkeypatch.setattr("dbmeta_app.search.milvus_index._READ_PAGE", 6)
    events: list[str] = []
    compact = milvus_index._mirror_row

    def recorded(row: dict[str, Any]) -> Any:
        events.append("row")
        return compact(row)

    monkeypatch.setattr("dbmeta_app.search.milvus_index._mirror_row", recorded)
    built = TableIndex(connect(str(tmp_path / "m.db")), client_name="a", env="t", profile="p", database=DB)
    built.sync(warehouse(), embedder)
    rows = built.state().rows
    assert rows > 3 * 8 and built.mirrored
    client = PagingClient(connect(str(tmp_path / "m.db")), events)  # a restart: the mirror is read back
    reopened = TableIndex(client, client_name="a", env="t", profile="p", database=DB)  # type: ignore[arg-type]
    events.clear()
    for query in QUERIES:
        text, vector = lexical_query(query), embedder.encode([query])[0]
        a = reopened.signals(text, vector, 20, column_limit=20)
        b = built.signals(text, vector, 20, column_limit=20)
        for got, want in ((a.tables, b.tables), (a.columns, b.columns), (a.schemas, b.schemas)):
            assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-5 for k in want), query
    assert reopened.mirrored
    pages = [kwargs for name, kwargs in client.kwargs if name == "query_iterator"]
    assert [p["batch_size"] for p in pages] == [6]  # one pass over the collection
    reads = [kwargs for name, kwargs in client.kwargs if name == "query"]
    assert all("dense" not in kwargs.get("output_fields", ()) for kwargs in reads)  # vectors read once
    # every page is made compact before the next one is read
    sizes = [int(e.split(":")[1]) for e in events if e.startswith("page:")]
    assert sum(sizes) == rows and max(sizes) == 6
    expected: list[str] = []
    for size in sizes:
        expected += [f"page:{size}"] + ["row"] * size
    assert events == expected
    built.close()
    reopened.close()


def test_a_client_of_milvus_lite_sends_no_keepalive_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pymilvus pings every 10 s; Milvus Lite answers an idle client's pings after a build with GOAWAY
    # "too_many_pings", an error line on the service's stderr. A server (not Lite) keeps pymilvus' keepalive.
    from dbmeta_app.search import milvus_index

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(milvus_index, "MilvusClient", lambda *a, **k: made.append(k) or object())
    milvus_index.connect(str(tmp_path / "lite" / "milvus.db"))
    milvus_index.connect("http://127.0.0.1:19531", lite=True)  # a follower, to the owner's Lite server
    milvus_index.connect("http://milvus.example:19530", "tok")
    assert [k.get("grpc_options", {}).get("grpc.keepalive_time_ms") for k in made] == [
        2**31 - 1,
        2**31 - 1,
        None,
    ]
    assert (tmp_path / "lite").is_dir()
