"""Client mistakes on the MCP interface are JSON-RPC errors in the README's form, never tracebacks.

- ``prompts/get`` with a missing or unknown argument, or of an unknown prompt, and ``resources/read`` of an
  unknown resource: -32602 (invalid params) whose message is ``"<error>: <detail>"``;
- a message that is not one JSON-RPC 2.0 request (not JSON, a batch, ``"jsonrpc": "1.0"``, any other object):
  -32700 / -32600 with a short message, over HTTP and over stdio (where the server keeps serving);
- a body over ``MAX_BODY_BYTES`` on /mcp is a JSON-RPC error too (HTTP 413), and Host/Origin compare
  case-insensitively.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from dbmeta_app.api.mcp_server import _TrackedAnswers
from dbmeta_app.config import load_settings
from tests.api.test_mcp import INITIALIZE, MCP_HEADERS, ROOT, _settings, _stdio_env, mcp_session, serve

INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR = -32602, -32600, -32700


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def loud_logs() -> Iterator[list[logging.LogRecord]]:
    """Records at WARNING or above of the SDK's dispatcher and of the MCP server (the server runs in-process)."""
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("mcp", "dbmeta_app.api.mcp_server")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(_settings(tmp_path_factory.mktemp("mcp_errors") / "data")) as url:
        yield url


# ---- M3: prompts/get and resources/read -------------------------------------------------------------------

PROMPT_MISTAKES = [
    pytest.param("write_sql", {}, "invalid_request", "missing argument user_request", id="missing"),
    pytest.param(
        "write_sql",
        {"user_request": "x", "top_k": "3"},
        "invalid_request",
        "unknown argument top_k; the arguments of write_sql: user_request, profile",
        id="extra",
    ),
    pytest.param("nosuch", {}, "unknown_prompt", "Unknown prompt 'nosuch'; prompts: write_sql", id="unknown"),
]


@pytest.mark.parametrize(("name", "arguments", "error", "detail"), PROMPT_MISTAKES)
async def test_prompt_mistakes_are_invalid_params_in_the_readme_form_without_a_traceback(
    base_url: str,
    loud_logs: list[logging.LogRecord],
    name: str,
    arguments: dict[str, str],
    error: str,
    detail: str,
) -> None:
    async with mcp_session(base_url) as session:
        with pytest.raises(MCPError) as raised:
            await session.get_prompt(name, arguments)
        # the session is still usable
        assert (await session.get_prompt("write_sql", {"user_request": "orders"})).messages
    assert raised.value.error.code == INVALID_PARAMS
    assert str(raised.value) == f"{error}: {detail}"
    assert raised.value.data == {"error": error, "detail": detail}
    assert [r.getMessage() for r in loud_logs] == []


async def test_an_unknown_resource_is_invalid_params_in_the_readme_form(
    base_url: str, loud_logs: list[logging.LogRecord]
) -> None:
    async with mcp_session(base_url) as session:
        with pytest.raises(MCPError) as raised:
            await session.read_resource("dbmeta://default/nosuch")
    assert raised.value.error.code == INVALID_PARAMS
    assert str(raised.value).startswith("unknown_resource: no resource 'dbmeta://default/nosuch'"), (
        raised.value
    )
    assert [r.getMessage() for r in loud_logs] == []


PARAMS_MISTAKES = [
    pytest.param("tools/call", {"arguments": {}}, "name", id="tool-without-name"),
    pytest.param(
        "tools/call", {"name": "search_tables", "arguments": "orders"}, "arguments", id="arguments-not-object"
    ),
    pytest.param("prompts/get", {}, "name", id="prompt-without-name"),
    pytest.param("resources/read", {}, "uri", id="read-without-uri"),
    pytest.param("logging/setLevel", {"level": "loudest"}, "level", id="unknown-level"),
]


@pytest.mark.parametrize(("method", "params", "field"), PARAMS_MISTAKES)
async def test_params_of_the_wrong_shape_are_invalid_params_naming_the_field(
    base_url: str, loud_logs: list[logging.LogRecord], method: str, params: dict[str, Any], field: str
) -> None:
    # The SDK says only "Invalid request parameters": a client could not tell what to fix.
    message = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.post("/mcp", json=message, headers=MCP_HEADERS)
    assert r.status_code == 200, r.text
    error = r.json()["error"]
    assert error["code"] == INVALID_PARAMS, error
    assert error["message"].startswith(f"invalid_request: {method}: "), error
    assert field in error["message"], error
    assert error["data"] == {"error": "invalid_request", "detail": error["message"].split(": ", 1)[1]}, error
    assert "loudest" not in error["message"] and "orders" not in error["message"]  # never the values sent
    assert [rec.getMessage() for rec in loud_logs] == []


# ---- M4: malformed messages over HTTP ---------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"{not json", PARSE_ERROR, "Parse error", id="not-json"),
    pytest.param(
        b'[{"jsonrpc":"2.0","id":5,"method":"ping"}]',
        INVALID_REQUEST,
        "batches are not supported",
        id="batch",
    ),
    pytest.param(
        b'{"jsonrpc":"1.0","id":6,"method":"ping"}', INVALID_REQUEST, "JSON-RPC 2.0", id="jsonrpc-1.0"
    ),
    pytest.param(b'{"query":"x"}', INVALID_REQUEST, "JSON-RPC 2.0", id="not-a-message"),
    pytest.param(b'"ping"', INVALID_REQUEST, "JSON-RPC 2.0", id="a-string"),
]


@pytest.mark.parametrize(("body", "code", "says"), MALFORMED)
async def test_a_malformed_message_over_http_is_a_short_json_rpc_error(
    base_url: str, body: bytes, code: int, says: str
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.post("/mcp", content=body, headers={**MCP_HEADERS, "x-request-id": "bad-msg-1"})
    assert r.status_code == 400 and r.headers["x-request-id"] == "bad-msg-1", r.text
    answer = r.json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] is None, answer
    error = answer["error"]
    assert error["code"] == code and says in error["message"], error
    assert len(r.content) < 600, r.text  # not pydantic's dump of every union member
    assert error["data"] == {"error": "bad_request", "detail": error["message"], "request_id": "bad-msg-1"}


# ---- M4 (and M3): over stdio ------------------------------------------------------------------------------


def _line(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no answer within {timeout}s"
    answer: dict[str, Any] = json.loads(process.stdout.readline())
    return answer


def test_stdio_answers_malformed_lines_and_keeps_serving(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dbmeta_app.cli", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.log").open("wb"),
        env=_stdio_env(tmp_path / "data"),
        cwd=str(ROOT),
    )
    assert process.stdin is not None

    def send(line: str | dict[str, Any]) -> None:
        assert process.stdin is not None
        process.stdin.write((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n")
        process.stdin.flush()

    try:
        send(INITIALIZE)
        assert _line(process, 90)["result"]["serverInfo"]["name"] == "dbmeta"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send("this is not json")
        garbage = _line(process, 10)
        assert garbage["id"] is None and garbage["error"]["code"] == PARSE_ERROR, garbage
        send('[{"jsonrpc":"2.0","id":2,"method":"ping"}]')
        batch = _line(process, 10)
        assert batch["id"] is None and batch["error"]["code"] == INVALID_REQUEST, batch
        assert "batches are not supported" in batch["error"]["message"]
        send('{"jsonrpc":"1.0","id":3,"method":"ping"}')
        assert _line(process, 10)["error"]["code"] == INVALID_REQUEST
        # an id that is neither a string nor an integer: the SDK takes the line for a notification and
        # drops it, so the client would wait forever; JSON-RPC says Invalid Request with a null id
        for ident in ("1.5", "null", "true", "[1]", '{"a":1}', "1e400"):
            send('{"jsonrpc":"2.0","id":' + ident + ',"method":"ping"}')
            refused = _line(process, 10)
            assert refused["id"] is None and refused["error"]["code"] == INVALID_REQUEST, (ident, refused)
            assert "must be a string or an integer" in refused["error"]["message"], refused
        # a notification (no id) is never answered: the next answer is the next request's
        send({"jsonrpc": "2.0", "method": "ping"})
        send({"jsonrpc": "2.0", "id": 4, "method": "ping"})
        assert _line(process, 10) == {"jsonrpc": "2.0", "id": 4, "result": {}}
        send({"jsonrpc": "2.0", "id": 5, "method": "prompts/get", "params": {"name": "write_sql"}})
        prompt = _line(process, 30)
        assert prompt["id"] == 5 and prompt["error"]["code"] == INVALID_PARAMS, prompt
        assert prompt["error"]["message"] == "invalid_request: missing argument user_request"
    finally:
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log and "raised" not in log, log


def test_stdio_answers_what_was_asked_before_its_input_closed(tmp_path: Path) -> None:
    # A client that writes its requests and closes its end (printf … | dbmeta mcp) gets every answer: the
    # server finishes what is in flight before it ends, instead of answering "Connection closed".
    lines = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "prompt_items",
                "arguments": {"user_request": "revenue by month", "max_tokens": 300},
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "list_schemas", "arguments": {}},
        },
        {"jsonrpc": "2.0", "id": 4, "method": "ping"},
    ]
    done = subprocess.run(
        [sys.executable, "-m", "dbmeta_app.cli", "mcp"],
        input="".join(json.dumps(line) + "\n" for line in lines).encode(),
        capture_output=True,
        env=_stdio_env(tmp_path / "data"),
        cwd=str(ROOT),
        timeout=120,
    )
    answers = {a["id"]: a for a in map(json.loads, done.stdout.decode().splitlines())}
    assert sorted(answers) == [1, 2, 3, 4], answers
    assert all("error" not in answers[i] for i in (2, 3, 4)), answers
    assert (
        answers[2]["result"]["isError"] is False and "profile:" in answers[2]["result"]["content"][0]["text"]
    )
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-2000:]


# ---- M13: 413 on /mcp, Host/Origin case ---------------------------------------------------------------------


def test_a_body_over_the_limit_on_mcp_is_a_json_rpc_413(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
        max_body_bytes=4096,
    )
    big = json.dumps({**INITIALIZE, "pad": "a" * 10_000}).encode()
    with serve(settings) as url:
        declared = httpx.post(url + "/mcp", content=big, headers={**MCP_HEADERS, "x-request-id": "big-1"})

        def chunks() -> Iterator[bytes]:
            yield from (big[i : i + 1000] for i in range(0, len(big), 1000))

        streamed = httpx.post(
            url + "/mcp", content=chunks(), headers={**MCP_HEADERS, "x-request-id": "big-2"}
        )
        rest = httpx.post(
            url + "/v1/tables/search", content=big, headers={"content-type": "application/json"}
        )
    for r, rid in ((declared, "big-1"), (streamed, "big-2")):
        assert r.status_code == 413 and r.headers["x-request-id"] == rid, r.text
        answer = r.json()
        assert answer["jsonrpc"] == "2.0" and answer["id"] is None, answer
        assert isinstance(answer["error"]["code"], int) and answer["error"]["message"], answer
        assert answer["error"]["data"] == {
            "error": "payload_too_large",
            "detail": answer["error"]["message"],
            "request_id": rid,
        }
    # the REST API keeps the one error shape
    assert (
        rest.status_code == 413
        and rest.json()["error"] == "payload_too_large"
        and "jsonrpc" not in rest.json()
    )


async def test_host_and_origin_are_compared_case_insensitively(base_url: str, tmp_path: Path) -> None:
    port = base_url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=base_url) as client:
        for headers in (
            {"host": f"LOCALHOST:{port}"},
            {"host": f"LocalHost:{port}", "origin": f"HTTP://LOCALHOST:{port}"},
        ):
            r = await client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
            assert r.status_code == 200, (headers, r.text)
        r = await client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "host": "EVIL.example"})
        assert r.status_code == 403, r.text
    settings = load_settings(
        data_dir=tmp_path / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
        mcp_allowed_hosts="DBmeta:8000",
        mcp_allowed_origins="https://Agent.Example",
    )
    with serve(settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            ok = {**MCP_HEADERS, "host": "dbmeta:8000", "origin": "https://agent.example"}
            assert (await client.post("/mcp", json=INITIALIZE, headers=ok)).status_code == 200
            other = {**MCP_HEADERS, "host": "dbmeta:8000", "origin": "https://other.example"}
            assert (await client.post("/mcp", json=INITIALIZE, headers=other)).status_code == 403


async def test_at_the_end_of_stdio_a_cancelled_request_is_not_waited_for() -> None:
    sent: list[SessionMessage] = []

    class Sink:
        async def send(self, item: SessionMessage) -> None:
            sent.append(item)

        async def aclose(self) -> None:
            return None

    answers = _TrackedAnswers(Sink())  # type: ignore[arg-type]
    answers.asked(SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=7, method="tools/call")))
    answers.asked(SessionMessage(JSONRPCRequest(jsonrpc="2.0", id="eight", method="ping")))
    with anyio.move_on_after(0.2) as scope:
        await answers.drained()
    assert scope.cancelled_caught  # two requests unanswered: it waits
    await answers.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id="eight", result={})))
    cancel = {"requestId": 7, "reason": "the user gave up"}
    answers.asked(
        SessionMessage(JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params=cancel))
    )
    with anyio.fail_after(1):
        await answers.drained()  # answered or cancelled: nothing left to wait for
    assert len(sent) == 1


def test_stdio_ends_quietly_when_the_client_stops_reading(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dbmeta_app.cli", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_stdio_env(tmp_path / "data"),
        cwd=str(ROOT),
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        process.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 1
        process.stdout.close()  # the client is gone from our stdout, and asks again
        for _ in range(3):
            process.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
            process.stdin.flush()
            if process.poll() is not None:
                break
            select.select([], [], [], 0.5)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
    assert process.wait(30) == 0
    err = process.stderr.read().decode()
    assert "unexpected" not in err and "Traceback" not in err, err[-2000:]
