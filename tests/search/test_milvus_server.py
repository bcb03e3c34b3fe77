"""Table search on a real Milvus 2.3 standalone server (``MILVUS_URI=http://…``), started once per session.

Milvus 2.3 has no BM25 function: its collections are dense-only and the lexical half is ranked in process,
on the same code path as Milvus Lite (which has one). The restart test runs last: it crashes the server.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymilvus import MilvusException

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.search.documents import lexical_query
from dbmeta_app.search.embedder import Embedder
from dbmeta_app.search.milvus_index import DEFAULT_MIRROR_MAX_ROWS, SearchPath, TableIndex, connect
from dbmeta_app.search.service import TableSearch
from tests.milvus_server import ROOT_TOKEN, MilvusServer
from tests.search._snapshots import warehouse
from tests.search.test_milvus_index import drop_collections

pytestmark = pytest.mark.integration

DB = "sqlite:0000000000000000"
QUERIES = [
    "average salary of employees per department",
    "customer email addresses",
    "which students take which courses",
    "products in each order",
]


#: Hits scoring at least this share of the best one are the answer; the rest is a tail of near-zero scores.
HEAD_SHARE = 0.25


def _index(uri: str, *, token: str | None = None, mirror_max_rows: int = 0, profile: str = "") -> TableIndex:
    return TableIndex(
        connect(uri, token),
        client_name="i17b",
        env="test",
        profile=profile or f"p{uuid.uuid4().hex[:8]}",
        database=DB,
        mirror_max_rows=mirror_max_rows,
    )


@pytest.fixture(params=[0, DEFAULT_MIRROR_MAX_ROWS], ids=["in-milvus", "mirrored"])
def server_index(milvus_server: MilvusServer, request: pytest.FixtureRequest) -> Iterator[TableIndex]:
    index = _index(milvus_server.uri, mirror_max_rows=request.param)
    yield index
    index.close()
    drop_collections(milvus_server, index.alias)


def names(search: TableSearch, query: str, k: int) -> list[str]:
    return [hit.name for hit in search.search(query, k)]


def test_a_server_without_bm25_gets_dense_collections_and_bm25_in_process(
    server_index: TableIndex, embedder: Embedder
) -> None:
    server_index.sync(warehouse(), embedder)
    state = server_index.state()
    assert state.ready and not state.lexical and server_index.server_bm25 is False
    dense = "process" if server_index.mirrored else "milvus"
    assert state.path == server_index.path == SearchPath(dense=dense, lexical="process")
    search = TableSearch(warehouse(), embedder, server_index)
    assert names(search, "average salary of employees per department", 2) == [
        "hr.employees",
        "hr.departments",
    ]
    assert names(search, "customer email addresses", 1) == ["shop.customers"]
    # the in-process BM25 half raises the lexical match (one build serves both checks: builds cost seconds here)
    query = "customer email addresses"
    vector = embedder.encode([query])[0]
    with_bm25 = server_index.signals(lexical_query(query), vector, 20, column_limit=0).tables
    dense_only = server_index.signals("", vector, 20, column_limit=0).tables
    assert with_bm25["shop.customers"] > dense_only["shop.customers"] + 0.01
    # tables the query does not name keep their cosine: the lexical half only adds where words match
    assert abs(with_bm25["school.students"] - dense_only["school.students"]) < 1e-4


def test_search_on_the_server_agrees_with_milvus_lite(
    milvus_server: MilvusServer, tmp_path: Path, embedder: Embedder
) -> None:
    profile = f"parity{uuid.uuid4().hex[:6]}"
    lite = _index(str(tmp_path / "milvus.db"), profile="parity")
    server = _index(milvus_server.uri, profile=profile)
    reopened = _index(milvus_server.uri, profile=profile)  # another process: reads the BM25 texts back
    try:
        lite.sync(warehouse(), embedder)
        server.sync(warehouse(), embedder)
        assert lite.path == SearchPath("milvus", "server") and server.path == SearchPath("milvus", "process")
        for query in QUERIES:
            hits = TableSearch(warehouse(), embedder, lite).search(query, 5)
            # the tables that matter to the request (a fused score of at least a quarter of the best one) come
            # back the same, in the same order; the tail below it is noise that Milvus Lite's BM25 and the
            # in-process one (~1% apart on a fused score) may order differently
            head = [h.name for h in hits if h.score >= HEAD_SHARE * hits[0].score]
            for other in (server, reopened):
                got = names(TableSearch(warehouse(), embedder, other), query, 5)
                assert got[: len(head)] == head, (query, got, head)
        assert reopened.path == SearchPath("milvus", "process")
    finally:
        lite.close()
        server.close()
        reopened.close()
        drop_collections(milvus_server, server.alias)


def test_with_authorization_on_the_token_is_sent_and_required(
    milvus_server_auth: MilvusServer, embedder: Embedder
) -> None:
    index = _index(milvus_server_auth.uri, token=ROOT_TOKEN)
    try:
        index.sync(warehouse(), embedder)
        assert names(TableSearch(warehouse(), embedder, index), "customer email addresses", 1) == [
            "shop.customers"
        ]
    finally:
        index.close()
    with pytest.raises(MilvusException):
        _index(milvus_server_auth.uri, token="root:wrong-password").live_collection()


def test_the_service_reports_the_server_and_its_token_in_readyz(
    milvus_server_auth: MilvusServer, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        redis_cache_enabled=False,
        search_backend="milvus",
        schema_check_interval=0,
        milvus_uri=milvus_server_auth.uri,
        milvus_token=ROOT_TOKEN,
        client=f"i17b{uuid.uuid4().hex[:6]}",
    )
    with TestClient(create_app(settings)) as client:
        search = _wait_ready(client)
        server = search["milvus_server"]
        assert server["version"].startswith("v2.3.") and server["version"] == milvus_server_auth.version
        assert (server["kind"], server["auth"], server["bm25"]) == ("server", "token", False)
        assert search["profiles"]["default"]["capabilities"] == {
            "server_bm25": False,
            "dense": "process",
            "lexical": "process",
        }
        body = client.post("/v1/tables/search", json={"query": "open support tickets", "top_k": 3}).json()
        assert body["degraded"] is False and body["lexical"] == "process" and body["dense"] == "process"
        assert ROOT_TOKEN not in client.get("/readyz").text


def _wait_ready(client: TestClient, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    search: dict[str, Any] = {}
    while time.monotonic() < deadline:
        search = client.get("/readyz").json()["checks"]["search"]
        if search["ready"]:
            return search
        time.sleep(0.2)
    raise AssertionError(f"search not ready: {search}")


def test_the_service_answers_through_a_milvus_restart_and_recovers_without_one(
    milvus_server: MilvusServer, tmp_path: Path
) -> None:
    """Runs last: crashes the session's server. Every search is answered (200), degraded while it is down."""
    settings = load_settings(
        data_dir=tmp_path,
        redis_cache_enabled=False,
        search_backend="milvus",
        schema_check_interval=0,
        milvus_uri=milvus_server.uri,
        search_mirror_max_rows=0,  # every search goes to Milvus, so the outage shows
        client=f"i17b{uuid.uuid4().hex[:6]}",
    )
    with TestClient(create_app(settings)) as client:
        assert _wait_ready(client)["profiles"]["default"]["capabilities"]["dense"] == "milvus"
        answers: list[tuple[int, bool]] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1  # a new text each time: no answer comes from the in-process memo
                r = client.post(
                    "/v1/tables/search", json={"query": f"tickets of agent {worker} {n}", "top_k": 3}
                )
                answers.append((r.status_code, r.status_code == 200 and r.json()["degraded"]))

        workers = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        try:
            time.sleep(1.0)
            milvus_server.restart(crash=True, down=2.0)
            recovered = None
            deadline = time.monotonic() + 120
            while recovered is None and time.monotonic() < deadline:
                r = client.post(
                    "/v1/tables/search", json={"query": f"ticket events {time.time()}", "top_k": 3}
                )
                if r.status_code == 200 and not r.json()["degraded"]:
                    recovered = r.json()
                time.sleep(0.5)
        finally:
            stop.set()
            for w in workers:
                w.join(60)
        assert answers and all(status == 200 for status, _ in answers)
        assert any(degraded for _, degraded in answers), "the outage never showed"
        assert recovered is not None and recovered["dense"] == "milvus"
        assert _wait_ready(client)["ready"]
