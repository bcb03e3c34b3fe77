"""Logs carry the request id, can be JSON, and never show a password or token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.config import Settings
from dbmeta_app.logging_setup import configure_logging, redact, request_id
from dbmeta_app.main import create_app


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    configure_logging("INFO", "json")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_dbmeta", False))
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(old)
        configure_logging("INFO", "text")


def test_json_lines_carry_the_request_id_and_mask_secrets(captured: io.StringIO) -> None:
    token = request_id.set("req-42")
    try:
        logging.getLogger("dbmeta_app.test").warning(
            "connect postgresql://bob:hunter2@db/x with password=s3cr3t"
        )
    finally:
        request_id.reset(token)
    line = json.loads(captured.getvalue().strip().splitlines()[-1])
    assert (
        line["request_id"] == "req-42" and line["level"] == "WARNING" and line["logger"] == "dbmeta_app.test"
    )
    assert "hunter2" not in line["message"] and "s3cr3t" not in line["message"]
    assert "postgresql://bob:***@db/x" in line["message"]


def test_redaction_patterns() -> None:
    assert redact("token: abc123 and secret=xyz") == "token: *** and secret=***"
    assert redact("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"


def test_every_answer_carries_a_request_id(settings: Settings, captured: io.StringIO) -> None:
    with TestClient(create_app(settings.model_copy(update={"log_format": "json"}))) as client:
        given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        made = client.get("/healthz").headers["x-request-id"]
        assert len(made) == 32
        odd = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces" * 10}).headers[
            "x-request-id"
        ]
        assert odd != "bad id\twith spaces" * 10 and len(odd) == 32
        answer = client.post("/v1/prompt-items/schema", json={}, headers={"X-Request-ID": "trace-7"})
        # the first schema request introspects: its server time is real, and under the client's
        name, _, took = answer.headers["server-timing"].partition(";dur=")
        assert name == "app" and 0 < float(took) < answer.elapsed.total_seconds() * 1000
        missing = client.post("/v1/prompt-items/schema", json={"profile": "nope"})
        assert missing.status_code == 404 and "app;dur=" in missing.headers["server-timing"]
    lines = [json.loads(x) for x in captured.getvalue().splitlines() if x.startswith("{")]
    assert any(x["request_id"] == "trace-7" and "Schema cache MISS" in x["message"] for x in lines)


def test_a_failed_milvus_call_is_not_logged_by_pymilvus_too(captured: io.StringIO) -> None:
    """pymilvus logs every failed call with a traceback; the service reports the failure itself."""
    logging.getLogger("pymilvus.decorators").error("RPC error: [search], <MilvusException: (code=2, ...)>")
    logging.getLogger("dbmeta_app.search").warning("Milvus is unavailable")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["dbmeta_app.search"]


def test_a_failed_clickhouse_http_call_is_not_logged_by_urllib3_too(captured: io.StringIO) -> None:
    """clickhouse-connect sets urllib3's level to WARNING when it is imported (after the service configured
    logging); urllib3's retry lines repeat the failure the service reports itself, naming host and port."""
    logging.getLogger("urllib3").setLevel(logging.WARNING)  # what importing clickhouse_connect does
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(\"HTTPConnection(host='db', "
        "port=8123): Failed to establish a new connection\")'"
    )
    logging.getLogger("dbmeta_app.db").warning("database connection failed: connection refused")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["dbmeta_app.db"]


@pytest.mark.parametrize(
    "text",
    [
        # the CLI's and the service's own messages name settings: the names and the words around them stay
        "unauthorized: missing bearer token: ADMIN_TOKEN, or the local token the dbmeta CLI reads beside the index",
        "Invalid settings: ADMIN_TOKEN: Value error, refusing a placeholder token; generate one (openssl rand -hex 32)",
        "Invalid settings: REDIS_PASSWORD: Input should be a valid string; API_TOKEN: Value error, refusing",
        "a redis+sentinel:// URL takes its password from REDIS_SENTINEL_PASSWORD",
        "secret: MILVUS_TOKEN is set but MILVUS_URI is a local file",
    ],
)
def test_setting_names_and_the_words_around_them_are_not_masked(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("token: 3f9a0c1d2e", "3f9a0c1d2e"),
        ("password=hunter2", "hunter2"),
        ("ADMIN_TOKEN=s3cr3t-value", "s3cr3t-value"),
        ("ADMIN_TOKEN: 9c1f0e7d3b2a", "9c1f0e7d3b2a"),
        ("api_token: abcdefXYZ", "abcdefXYZ"),
        ("secret = 'quoted-s3cret'", "quoted-s3cret"),
        ("connect postgresql://bob:hunter2@db/x", "hunter2"),
        ("redis://:pw0rd@host:6379/0", "pw0rd"),
        ("Authorization: Bearer 0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("sent bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        ("token: ADMIN_TOKENx9", "ADMIN_TOKENx9"),  # not a setting's name: a value
        ("REDIS_PASSWORD: hunter", "hunter"),  # a plain word after a setting's name: a value too
    ],
)
def test_secret_values_are_still_masked(text: str, secret: str) -> None:
    assert secret not in redact(text), redact(text)
