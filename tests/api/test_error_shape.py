"""Every error, on every mount, is ``{"error", "detail"}`` JSON with an X-Request-ID — unexpected ones included.

The app runs under real uvicorn and is called with a real HTTP client over keep-alive connections: a dropped
or reset connection, which an in-process test client cannot show, fails these tests.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
import yaml

from dbmeta_app.api.middleware import reshape_error
from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.schema import store
from tests.conftest import free_port

MAX_BODY = 64 * 1024


class ReflectionAborted(BaseException):
    """What some drivers and green-thread libraries raise: not an Exception."""


MCP = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn on a free port serving three profiles: the sample, one whose reflection raises, one that is down."""
    tmp = tmp_path_factory.mktemp("errors")
    profiles = tmp / "profiles.yml"
    profiles.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    # a dialect whose reflection raises what no code here expects (chDB's did, on Nested)
                    "broken": {"database_url": f"sqlite:///{tmp / 'broken.db'}"},
                    # a database that cannot be opened: an expected failure, a 503
                    "down": {"database_url": f"sqlite:///{tmp / 'no-such-dir' / 'down.db'}"},
                    # reflection raising an exception that is not an Exception (Starlette's handler misses it)
                    "odd": {"database_url": f"sqlite:///{tmp / 'odd.db'}"},
                }
            }
        )
    )
    settings = load_settings(
        data_dir=tmp / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
        max_body_bytes=MAX_BODY,
        profiles_file=profiles,
        default_profile="broken",
    )
    real = store.introspect

    def introspect(engine: Any, profile: str, **kwargs: Any) -> Any:
        if profile == "broken":
            raise NotImplementedError("reflection of type Nested(a String) is not implemented")
        if profile == "odd":
            raise ReflectionAborted("a driver's own BaseException")
        return real(engine, profile, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(store, "introspect", introspect)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="info", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="errors-test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        patch.undo()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:  # one keep-alive connection, reused
        yield c


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    assert r.headers.get("x-request-id"), dict(r.headers)
    body = r.json()
    if "jsonrpc" in body:
        # the MCP transport's own errors stay JSON-RPC 2.0: the service's fields are the error's data
        assert set(body) == {"jsonrpc", "id", "error"} and isinstance(body["error"]["code"], int), body
        assert body["error"]["data"]["request_id"] == r.headers["x-request-id"], body
        body = body["error"]["data"]
    assert {"error", "detail"} <= set(body) and isinstance(body["error"], str) and body["detail"], body
    if code is not None:
        assert body["error"] == code, body
    return dict(body)


def test_an_unexpected_reflection_error_is_a_json_500_with_the_request_id_and_the_connection_lives(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for path, body in [
        ("/v1/prompt-items/schema", {}),
        ("/v1/tables/search", {"query": "orders"}),
        ("/v1/prompt-items", {"user_request": "orders"}),
    ]:
        r = client.post(path, json=body, headers={"x-request-id": "trace-500"})
        assert_error(r, 500, "internal_error")
        assert r.headers["x-request-id"] == "trace-500"
    # the same connection answers the next request: it was neither closed nor reset
    assert client.get("/healthz").status_code == 200
    assert "Exception in ASGI application" not in caplog.text
    logged = [rec for rec in caplog.records if rec.levelno == logging.ERROR and rec.exc_info]
    assert logged and all(getattr(rec, "request_id", "trace-500") == "trace-500" for rec in logged)


def _read_response(sock: socket.socket) -> bytes:
    """Read one HTTP/1.1 answer with a Content-Length (b"" when the server closed the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_after_an_unexpected_error_the_same_connection_answers_the_next_request(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/prompt-items/schema HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 500") and b'"internal_error"' in first
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")  # before: the server had closed it


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_sent_whole_before_reading_gets_the_413_not_a_reset(
    base_url: str, framing: str
) -> None:
    # What most HTTP libraries do (no ``Expect: 100-continue``): send the whole body, then read the answer;
    # urllib also says ``Connection: close``, so the server closes once it has answered.
    host, port = base_url.removeprefix("http://").split(":")
    payload = b'{"sql": "' + b"a" * (8 * 1024 * 1024) + b'"}'
    if framing == "chunked":
        head = b"Transfer-Encoding: chunked\r\n\r\n"
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _pieces(payload, 65536)) + b"0\r\n\r\n"
    else:
        head, body = b"Content-Length: %d\r\n\r\n" % len(payload), payload
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            b"POST /v1/preflight HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + head
        )
        sock.sendall(
            body
        )  # before: the server answered, then reset the connection under the rest of the body
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 413") and b'"payload_too_large"' in answer, answer[:200]


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_an_unexpected_reflection_error_over_mcp_is_a_tool_error_naming_the_request_id(
    client: httpx.Client,
) -> None:
    r = client.post(
        "/mcp",
        json=_call("get_table_details", {"tables": ["orders"]}),
        headers={**MCP, "x-request-id": "m-1"},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "m-1"
    result = r.json()["result"]
    assert result["isError"] is True
    assert json.loads(result["content"][0]["text"]) == {
        "error": "internal_error",
        "detail": "unexpected server error (request id m-1)",
    }
    assert "structuredContent" not in result or result["structuredContent"] is None
    assert client.get("/healthz").status_code == 200


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"user_request": "'
    for _ in range(size // 8192):
        yield b"a" * 8192
    yield b'"}'


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/nope", {}, 404, "not_found"),
        ("DELETE", "/v1/tables/search", {}, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/tables/search",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "invalid_request",
        ),
        ("POST", "/v1/prompt-items/schema", {"json": {"profile": "nope"}}, 404, "unknown_profile"),
        ("POST", "/v1/prompt-items/schema", {"json": {"profile": "down"}}, 503, "upstream_unavailable"),
        ("POST", "/v1/prompt-items/schema", {"json": {"profile": "broken"}}, 500, "internal_error"),
        ("POST", "/v1/prompt-items/schema", {"json": {"profile": "odd"}}, 500, "internal_error"),
        ("POST", "/v1/prompt-items/schema", {"content": b'{"x": "' + b"a" * MAX_BODY + b'"}'}, 413, None),
        ("POST", "/v1/prompt-items/schema", {"content": "chunked"}, 413, "payload_too_large"),
        ("POST", "/mcp", {"content": b'{"x": "' + b"a" * MAX_BODY + b'"}', "headers": MCP}, 413, None),
        ("POST", "/mcp", {"content": "chunked", "headers": MCP}, 413, "payload_too_large"),
        ("POST", "/v1/preflight", {"content": b'{"sql": "SELECT 1"}'}, 415, "unsupported_media_type"),
        (
            "POST",
            "/v1/tables/search",
            {"content": b'{"query": "x"}', "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/mcp",
            {"content": b"{}", "headers": {**MCP, "content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("POST", "/mcp", {"json": {}, "headers": {**MCP, "accept": "text/html"}}, 406, "not_acceptable"),
        ("POST", "/mcp", {"content": b"{nope", "headers": MCP}, 400, "bad_request"),
        ("GET", "/mcp", {"headers": {"accept": "application/json"}}, 405, "method_not_allowed"),
        ("DELETE", "/mcp", {"headers": MCP}, 405, "method_not_allowed"),
        ("GET", "/docs/assets/nope.js", {}, 404, "not_found"),
        ("POST", "/healthz", {}, 405, "method_not_allowed"),
    ],
)
def test_every_error_status_on_every_mount_is_json_with_a_request_id(
    client: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    if kwargs.get("content") == "chunked":
        kwargs = {**kwargs, "content": _chunks(2 * MAX_BODY)}
    r = client.request(method, path, **kwargs)
    body = assert_error(r, status, code)
    if status == 413:
        assert body["error"] == "payload_too_large" and str(MAX_BODY) in body["detail"]
    assert client.get("/healthz").status_code == 200  # and the connection goes on


def test_a_caller_request_id_is_echoed_on_errors(client: httpx.Client) -> None:
    r = client.post("/v1/prompt-items/schema", json={"profile": "nope"}, headers={"x-request-id": "abc.123"})
    assert_error(r, 404, "unknown_profile")
    assert r.headers["x-request-id"] == "abc.123"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (
            413,
            "text/plain; charset=utf-8",
            b"Content Too Large",
            {"error": "payload_too_large", "detail": "Content Too Large"},
        ),
        (404, "application/json", b'{"detail":"Not Found"}', {"error": "not_found", "detail": "Not Found"}),
        (502, "text/html", b"", {"error": "bad_gateway", "detail": "Bad Gateway"}),
        (418, "application/json", b"[1, 2]", {"error": "http_error", "detail": "[1, 2]"}),
        (
            503,
            "application/json",
            b'{"ready": false, "checks": {"database": {"ok": false}}}',
            {
                "ready": False,
                "checks": {"database": {"ok": False}},
                "error": "unavailable",
                "detail": "Service Unavailable",
            },
        ),
    ],
)
def test_error_bodies_of_any_other_shape_are_reshaped_keeping_what_they_say(
    status: int, content_type: str, body: bytes, expected: dict[str, str]
) -> None:
    shaped = reshape_error(status, content_type, body)
    assert shaped is not None and orjson.loads(shaped) == expected


def test_a_json_rpc_error_stays_one_with_the_services_fields_as_its_data() -> None:
    body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Unsupported Media Type"}}'
    shaped = reshape_error(415, "application/json", body, "r-1")
    assert shaped is not None and orjson.loads(shaped) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32600,
            "message": "Unsupported Media Type",
            "data": {
                "error": "unsupported_media_type",
                "detail": "Unsupported Media Type",
                "request_id": "r-1",
            },
        },
    }


def test_an_error_body_of_the_one_shape_is_passed_on_unchanged() -> None:
    assert reshape_error(404, "application/json", b'{"error": "unknown_profile", "detail": "x"}') is None


def _server_errors(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("dbmeta_http_requests_total{") and 'status="5xx"' in line
    )


@pytest.mark.parametrize("path", ["/v1/tables/search", "/v1/preflight", "/mcp"])
def test_a_client_that_leaves_before_sending_its_body_is_not_a_server_error(
    base_url: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    before = _server_errors(base_url)
    with caplog.at_level(logging.INFO):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n".encode()
                + b'{"query": "x"'
            )
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "left before" not in caplog.text:
            time.sleep(0.05)
    assert "left before" in caplog.text  # said once, as what it is
    assert _server_errors(base_url) == before
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text[-2000:]


@pytest.mark.parametrize("path", ["/v1/tables/search", "/v1/preflight", "/mcp"])
def test_a_body_that_stops_half_way_gets_a_json_408_not_silence(
    base_url: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends part of its body and stops held its connection with no answer (120 s seen, until the
    client gave up); now the answer is a JSON 408 with the request id once BODY_SECONDS have passed."""
    from dbmeta_app.api import middleware

    monkeypatch.setattr(middleware, "BODY_SECONDS", 1.0)
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"query": "x"'
        )
        answer = _read_response(sock)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"x-request-id" in answer.lower() and b"did not all arrive within 1 s" in answer, answer[-400:]
    assert took < 8, took
    if path != "/mcp":
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/cache/stats", "/openapi.json"])
def test_head_answers_like_get_without_a_body(base_url: str, path: str) -> None:
    get = httpx.get(f"{base_url}{path}")
    head = httpx.head(f"{base_url}{path}")
    assert head.status_code == get.status_code, (head.status_code, head.text)
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["x-request-id"]


def test_head_of_a_post_only_route_is_405_and_counted_under_its_route(base_url: str) -> None:
    assert httpx.head(f"{base_url}/v1/preflight").status_code == 405
    assert httpx.head(f"{base_url}/healthz").status_code == 200
    text = httpx.get(f"{base_url}/metrics").text
    assert 'method="HEAD",route="/healthz",status="2xx"' in text, text


def test_a_refused_token_is_counted_under_its_route(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    settings = load_settings(
        data_dir=tmp_path,
        redis_cache_enabled=False,
        search_backend="keyword",
        api_token="tok-abcdefgh-12345678",
    )
    with TestClient(create_app(settings)) as client:

        def counted(route: str) -> float:  # the registry is the process's: other tests count too
            prefix = f'dbmeta_http_requests_total{{method="POST",route="{route}",status="4xx"}} '
            lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)]
            return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

        before = (counted("/v1/preflight"), counted("unmatched"))
        for _ in range(3):
            assert client.post("/v1/preflight", json={"sql": "SELECT 1"}).status_code == 401
        assert (counted("/v1/preflight"), counted("unmatched")) == (before[0] + 3, before[1])
