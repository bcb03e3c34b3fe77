"""The Milvus standalone test server (tests/milvus_server.py): it starts, answers, restarts, stops cleanly."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pymilvus import MilvusException

from tests.milvus_server import ROOT_TOKEN, MilvusServer, MilvusUnavailable, running_milvus

pytestmark = pytest.mark.integration


def test_the_server_answers_its_version_on_a_loopback_address(milvus_server: MilvusServer) -> None:
    assert milvus_server.uri.startswith("http://127.0.0.1:")
    assert milvus_server.server_version().startswith("v2.3.")
    assert milvus_server.rss_bytes() > 0


def test_a_crash_restart_keeps_collections_and_rows(milvus_server: MilvusServer) -> None:
    client = milvus_server.client()
    name = f"harness_restart_{uuid.uuid4().hex[:8]}"
    try:
        client.create_collection(name, dimension=4)
        client.insert(name, [{"id": i, "vector": [0.1, 0.2, 0.3, 0.4 + i]} for i in range(10)])
        client.flush(name)
    finally:
        client.close()
    pid = milvus_server.pid

    milvus_server.restart(crash=True)

    assert milvus_server.pid != pid
    assert not Path(f"/proc/{pid}").exists()
    client = milvus_server.client()
    try:
        assert name in client.list_collections()
        # (not dropped: right after a crash, a drop waits for the dead server's sessions to expire)
        assert client.get_collection_stats(name)["row_count"] == 10
    finally:
        client.close()


def test_with_authorization_only_the_token_gets_in_and_stop_leaves_no_process(tmp_path: Path) -> None:
    try:
        with running_milvus(tmp_path, auth=True) as server:
            pid = server.pid
            assert server.token == ROOT_TOKEN
            with pytest.raises(MilvusException):
                server.client(token="root:wrong-password", timeout=10).list_collections()
            assert server.server_version().startswith("v2.3.")  # with the root token
            assert server.processes() == [pid]
    except MilvusUnavailable as exc:
        pytest.skip(f"no Milvus server here: {exc}")
    assert server.processes() == []
    assert not Path(f"/proc/{pid}").exists()
    assert not server.running
