"""A request body over MAX_BODY_BYTES is a JSON 413 with an X-Request-ID, like every other error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.main import create_app


@pytest.fixture
def client(make_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(max_body_bytes=4096))) as c:
        yield c


@pytest.mark.parametrize("path", ["/v1/preflight", "/v1/prompt-items/schema", "/v1/tables/search"])
def test_a_declared_length_over_the_limit_is_a_json_413_with_a_request_id(
    client: TestClient, path: str
) -> None:
    r = client.post(path, content=b'{"sql": "' + b"a" * 10_000 + b'"}', headers={"x-request-id": "big-1"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "payload_too_large" and "MAX_BODY_BYTES" in r.json()["detail"]
    assert r.headers["x-request-id"] == "big-1"


def test_a_streamed_body_over_the_limit_is_a_json_413_with_a_request_id(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"sql": "'
        for _ in range(10):
            yield b"a" * 1024
        yield b'"}'

    r = client.post("/v1/preflight", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large" and r.headers["x-request-id"]


def test_a_body_under_the_limit_is_served(client: TestClient) -> None:
    assert client.post("/v1/preflight", json={"sql": "SELECT 1"}).json()["ok"] is True


def test_the_413_is_documented_on_every_operation_with_a_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/preflight", "/v1/prompt-items/schema", "/v1/prompt-items", "/v1/tables/search"):
        assert "413" in spec[path]["post"]["responses"], path
