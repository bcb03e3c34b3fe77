"""The MCP tools over streamable HTTP: the real app under uvicorn, driven by the SDK's own client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from dbmeta_app.config import Settings, load_settings
from dbmeta_app.main import create_app
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

TOOLS = {
    "prompt_items",
    "preflight_query",
    "search_tables",
    "get_table_details",
    "list_schemas",
    "list_tables",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-http", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _settings(data_dir: Path) -> Settings:
    # the make_settings pattern (tests/conftest.py), built once for the module's one server
    return load_settings(
        data_dir=data_dir, redis_cache_enabled=False, search_backend="keyword", schema_check_interval=0
    )


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Serve create_app(settings) with uvicorn on a free port in a background thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="mcp-test-uvicorn", daemon=True)
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


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(_settings(tmp_path_factory.mktemp("mcp") / "data")) as url:
        yield url


@asynccontextmanager
async def mcp_session(base_url: str) -> AsyncIterator[ClientSession]:
    # opened inside each test: the client's task group must be entered and left in the same task,
    # which an async-generator fixture does not guarantee
    async with (
        streamable_http_client(base_url + "/mcp") as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def _structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, _text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_the_tools_are_listed_with_described_constrained_parameters_and_output_schemas(
    base_url: str,
) -> None:
    async with mcp_session(base_url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        props = {name: t.input_schema["properties"] for name, t in tools.items()}
        assert set(props["prompt_items"]) == {
            "user_request",
            "profile",
            "items",
            "schema_top_k",
            "examples_top_k",
            "max_tokens",
        }
        assert set(props["preflight_query"]) == {"sql", "profile"}
        assert set(props["search_tables"]) == {"query", "top_k", "profile"}
        assert set(props["get_table_details"]) == {"tables", "profile", "with_examples", "max_tokens"}
        assert tools["search_tables"].input_schema["required"] == ["query"]
        assert tools["get_table_details"].input_schema["required"] == ["tables"]
        top_k = props["search_tables"]["top_k"]
        assert (top_k["minimum"], top_k["maximum"], top_k["default"]) == (1, 200, 10) and top_k["description"]
        assert props["search_tables"]["query"]["maxLength"] == 20_000
        assert props["get_table_details"]["tables"]["maxItems"] == 2_000
        assert all(t.description and t.annotations and t.annotations.read_only_hint for t in tools.values())
        assert set(props["list_tables"]) == {"schema", "detail_level", "limit", "profile"}
        assert props["list_tables"]["detail_level"]["enum"] == ["names", "summary", "full"]
        for name, tool in tools.items():
            assert tool.output_schema and tool.output_schema["type"] == "object", name
            assert tool.output_schema["properties"], name
        kinds = tools["prompt_items"].output_schema["$defs"]["PromptItem"]["properties"]["type"]["enum"]
        assert kinds == ["db_struct", "query_examples", "instructions", "sql_dialect"]


async def test_search_tables_puts_tickets_first_for_a_support_request(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        result = await session.call_tool(
            "search_tables", {"query": "open support tickets by priority", "top_k": 5}
        )
        answer = _structured(result)
        assert answer["profile"] == "default" and answer["tables"][0]["name"] == "tickets"
        assert 1 <= len(answer["tables"]) <= 5 and answer["tables"][0]["score"] > 0
        assert "1. tickets (score " in _text(result)


async def test_preflight_refuses_a_delete_as_an_unsafe_verdict(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        result = await session.call_tool("preflight_query", {"sql": "DELETE FROM orders"})
        answer = _structured(result)  # a verdict, not a fault: the call itself succeeds
        assert answer["ok"] is False and answer["error_kind"] == "unsafe" and answer["plan"] is None
        assert _text(result).startswith("Preflight FAILED (unsafe): refused:")
        assert "None" not in _text(result) and '"ok"' not in _text(result)  # compact: no JSON repeated


async def test_preflight_of_a_valid_select_returns_a_plan(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        sql = "SELECT c.company_name, count(*) FROM orders o JOIN customers c USING (customer_id) GROUP BY 1"
        result = await session.call_tool("preflight_query", {"sql": sql})
        answer = _structured(result)
        assert answer["ok"] is True and answer["error"] is None and answer["plan"]
        assert answer["dialect"] == "sqlite" and answer["schema_version"]
        assert _text(result).startswith("Preflight OK: estimated rows unknown")  # SQLite has no estimate
        assert "None" not in _text(result) and '"ok"' not in _text(result)
        assert "\nPlan: [" in _text(result)


async def test_table_details_render_the_known_tables_and_list_the_unknown(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        result = await session.call_tool("get_table_details", {"tables": ["orders", "nope"]})
        item = _structured(result)
        assert item["type"] == "db_struct" and item["metadata"]["tables"] == ["orders"]
        assert item["metadata"]["unknown_tables"] == ["nope"] and item["metadata"]["filtered"] is True
        assert item["text"].startswith("# orders") and "# customers" not in item["text"]
        assert "# orders" in _text(result) and "Unknown tables (not in the schema): nope" in _text(result)


async def test_the_schema_tools_keep_to_a_token_budget(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        result = await session.call_tool(
            "prompt_items",
            {"user_request": "open support tickets by priority", "items": ["db_struct"], "max_tokens": 150},
        )
        budget = _structured(result)["prompt_items"][0]["metadata"]["budget"]
        assert budget["truncated"] is True and budget["estimated_tokens"] <= 150
        details = await session.call_tool("get_table_details", {"tables": ["tickets"], "max_tokens": 40})
        assert _structured(details)["metadata"]["budget"]["max_tokens"] == 40


async def test_prompt_items_returns_the_four_item_types(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        result = await session.call_tool(
            "prompt_items", {"user_request": "average order value per customer segment"}
        )
        answer = _structured(result)
        kinds = [i["type"] for i in answer["prompt_items"]]
        assert kinds == ["db_struct", "query_examples", "instructions", "sql_dialect"]
        assert (
            answer["profile"] == "default" and "customers" in answer["prompt_items"][0]["metadata"]["tables"]
        )
        assert answer["prompt_items"][3]["metadata"]["dialect"] == "sqlite"
        assert all(f"## {kind}\n" in _text(result) for kind in kinds)


async def test_an_unknown_profile_is_a_tool_error_naming_it(base_url: str) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_tables", {"query": "tickets", "profile": "nope"}),
        ("preflight_query", {"sql": "SELECT 1", "profile": "nope"}),
        ("get_table_details", {"tables": ["orders"], "profile": "nope"}),
        ("prompt_items", {"profile": "nope"}),
    ]
    async with mcp_session(base_url) as session:
        for name, args in calls:
            result = await session.call_tool(name, args)
            assert result.is_error, name
            assert json.loads(_text(result)) == {
                "error": "unknown_profile",
                "detail": "Unknown profile 'nope'; configured profiles: default",
            }
            # what clients check against the tool's outputSchema: an error does not claim to be an answer
            assert result.structured_content is None


async def test_an_unknown_tool_is_a_tool_error_in_the_services_json(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        result = await session.call_tool("nosuch", {})
    assert result.is_error and result.structured_content is None
    answer = json.loads(_text(result))  # README: the text of every tool error is the JSON {"error", "detail"}
    assert set(answer) == {"error", "detail"} and answer["error"] == "unknown_tool", answer
    assert "'nosuch'" in answer["detail"] and "prompt_items" in answer["detail"], answer


async def test_list_schemas_and_list_tables_browse_at_each_detail_level(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        schemas = _structured(await session.call_tool("list_schemas", {}))
        assert schemas["schemas"] == [{"name": "", "tables": 22, "views": 2}]
        names = _structured(await session.call_tool("list_tables", {"limit": 3}))
        assert names["tables"] == ["campaign_responses", "campaigns", "currencies"]
        assert (names["total"], names["truncated"], names["text"]) == (24, True, None)
        result = await session.call_tool("list_tables", {"detail_level": "summary", "schema": ""})
        summary = _structured(result)
        orders = next(t for t in summary["tables"] if t["name"] == "orders")
        assert orders["kind"] == "table" and orders["columns"] > 3 and orders["description"]
        assert summary["truncated"] is False and "- orders (table, " in _text(result)
        full = _structured(await session.call_tool("list_tables", {"detail_level": "full", "limit": 2}))
        assert full["text"].startswith("# campaign_responses") and "# campaigns" in full["text"]
        empty = _structured(await session.call_tool("list_tables", {"schema": "nope"}))
        assert (empty["total"], empty["tables"]) == (0, [])


async def test_resources_serve_a_profiles_schema_and_one_table(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
        assert templates == {"dbmeta://{profile}/schema", "dbmeta://{profile}/tables/{name}"}
        schema = (await session.read_resource("dbmeta://default/schema")).contents[0]
        assert "# orders" in schema.text and "# tickets" in schema.text  # type: ignore[union-attr]
        table = (await session.read_resource("dbmeta://default/tables/orders")).contents[0]
        assert table.text.startswith("# orders") and "# tickets" not in table.text  # type: ignore[union-attr]
        with pytest.raises(Exception, match="no table 'nope'"):
            await session.read_resource("dbmeta://default/tables/nope")


async def test_the_write_sql_prompt_carries_the_prompt_items(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        prompts = {p.name: p for p in (await session.list_prompts()).prompts}
        assert set(prompts) == {"write_sql"}
        assert [a.name for a in prompts["write_sql"].arguments or []] == ["user_request", "profile"]
        got = await session.get_prompt("write_sql", {"user_request": "open tickets by priority"})
        text = got.messages[0].content.text  # type: ignore[union-attr]
        assert "Request: open tickets by priority" in text and "# tickets" in text
        assert "## sql_dialect" in text and "preflight_query" in text


async def test_tool_calls_are_counted_by_tool_and_outcome(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        await session.call_tool("list_schemas", {})
        await session.call_tool("list_schemas", {"profile": "nope"})
    async with httpx.AsyncClient(base_url=base_url) as client:
        text = (await client.get("/metrics")).text
    assert 'dbmeta_mcp_tool_calls_total{outcome="ok",tool="list_schemas"}' in text
    assert 'dbmeta_mcp_tool_calls_total{outcome="error",tool="list_schemas"}' in text
    assert 'dbmeta_mcp_tool_duration_seconds_count{tool="list_schemas"}' in text


#: Arguments the tools' input schemas refuse, with where (``loc``) and why (``type``) the refusal says.
INVALID_ARGUMENTS: list[tuple[str, dict[str, Any], list[str | int], str]] = [
    ("search_tables", {"query": "tickets", "top_k": 0}, ["top_k"], "greater_than_equal"),
    ("search_tables", {"query": "tickets", "top_k": 201}, ["top_k"], "less_than_equal"),
    ("search_tables", {"query": "x" * 20_001}, ["query"], "string_too_long"),
    ("search_tables", {"query": ""}, ["query"], "string_too_short"),
    ("prompt_items", {"user_request": "x" * 20_001}, ["user_request"], "string_too_long"),
    ("prompt_items", {"items": ["db_struct", "bogus"]}, ["items", 1], "literal_error"),
    ("prompt_items", {"max_tokens": -1}, ["max_tokens"], "greater_than_equal"),
    ("get_table_details", {"tables": [f"t{i}" for i in range(2_001)]}, ["tables"], "too_long"),
    ("get_table_details", {}, ["tables"], "missing"),
    ("preflight_query", {}, ["sql"], "missing"),
    ("preflight_query", {"sql": 5}, ["sql"], "string_type"),
    ("list_tables", {"detail_level": "bogus"}, ["detail_level"], "literal_error"),
]


def _invalid_request(text: str, loc: list[str | int], kind: str) -> None:
    """The HTTP API's 422 body: ``invalid_request`` and one problem a field, never the value sent."""
    body = json.loads(text)
    assert body["error"] == "invalid_request" and set(body) == {"error", "detail"}, body
    assert [(p["loc"], p["type"]) for p in body["detail"]] == [(loc, kind)], body
    assert all(set(p) == {"loc", "msg", "type"} and p["msg"] for p in body["detail"]), body
    assert "input_value" not in text and "pydantic.dev" not in text and "xxxx" not in text


async def _tool_calls(base_url: str, tool: str, outcome: str) -> float:
    async with httpx.AsyncClient(base_url=base_url) as client:
        text = (await client.get("/metrics")).text
    line = f'dbmeta_mcp_tool_calls_total{{outcome="{outcome}",tool="{tool}"}} '
    return next((float(s.removeprefix(line)) for s in text.splitlines() if s.startswith(line)), 0.0)


@pytest.mark.parametrize(
    ("tool", "args", "loc", "kind"), INVALID_ARGUMENTS, ids=[f"{c[0]}-{c[3]}" for c in INVALID_ARGUMENTS]
)
async def test_invalid_arguments_are_tool_errors_in_the_services_json_and_counted(
    base_url: str, tool: str, args: dict[str, Any], loc: list[str | int], kind: str
) -> None:
    before = await _tool_calls(base_url, tool, "error")
    async with mcp_session(base_url) as session:
        result = await session.call_tool(tool, args)
    assert result.is_error and result.structured_content is None
    _invalid_request(_text(result), loc, kind)
    assert await _tool_calls(base_url, tool, "error") == before + 1


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("search_tables", {"query": "tickets", "profle": "nope"}),
        ("prompt_items", {"user_request": "tickets", "profle": "nope"}),
        ("preflight_query", {"sql": "SELECT 1", "profle": "nope"}),
    ],
)
async def test_an_argument_a_tool_does_not_take_is_refused_never_answered_from_the_default_profile(
    base_url: str, tool: str, args: dict[str, Any]
) -> None:
    before = await _tool_calls(base_url, tool, "error")
    async with mcp_session(base_url) as session:
        result = await session.call_tool(tool, args)
    assert result.is_error and result.structured_content is None, result
    _invalid_request(_text(result), ["profle"], "extra_forbidden")
    assert await _tool_calls(base_url, tool, "error") == before + 1


async def test_the_input_schemas_still_state_the_constraints_the_tools_enforce(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    for tool, args, loc, _ in INVALID_ARGUMENTS:
        schema = tools[tool].input_schema
        assert schema["type"] == "object" and str(loc[0]) in schema["properties"], (tool, schema)
        assert set(args) <= set(schema["properties"]), (tool, args)
    search = tools["search_tables"].input_schema
    assert search["properties"]["query"] == {
        "description": "What the tables are needed for, in natural language",
        "maxLength": 20_000,
        "minLength": 1,
        "title": "Query",
        "type": "string",
    }


async def test_the_write_sql_prompt_names_an_unknown_profile(base_url: str) -> None:
    async with mcp_session(base_url) as session:
        with pytest.raises(MCPError) as raised:
            await session.get_prompt("write_sql", {"user_request": "x", "profile": "nope"})
    assert str(raised.value) == "unknown_profile: Unknown profile 'nope'; configured profiles: default"
    assert raised.value.data == {
        "error": "unknown_profile",
        "detail": "Unknown profile 'nope'; configured profiles: default",
    }


@pytest.mark.parametrize(
    ("method", "kwargs", "status", "code", "kind"),
    [
        ("POST", {"content": b"{not json"}, 400, -32700, "bad_request"),
        ("POST", {"json": {"foo": 1}}, 400, -32600, "bad_request"),  # Invalid Request, not params
        ("POST", {"json": INITIALIZE, "headers": {"accept": "text/html"}}, 406, -32600, "not_acceptable"),
        ("DELETE", {}, 405, -32600, "method_not_allowed"),
        (
            "POST",
            {"content": b'{"jsonrpc":"2.0","id":1e400,"method":"tools/list"}'},
            400,
            -32600,
            "bad_request",
        ),
        ("POST", {"json": {"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}}, 400, -32600, "bad_request"),
        # README: a body not sent as application/json is a 415, and on /mcp it stays JSON-RPC
        (
            "POST",
            {"content": json.dumps(INITIALIZE).encode(), "headers": {"content-type": "text/plain"}},
            415,
            -32600,
            "unsupported_media_type",
        ),
    ],
    ids=["parse", "not-a-message", "not-acceptable", "delete", "id-1e400", "id-1.5", "content-type"],
)
async def test_transport_errors_are_json_rpc_errors_carrying_the_services_fields(
    base_url: str, method: str, kwargs: dict[str, Any], status: int, code: int, kind: str
) -> None:
    headers = {**MCP_HEADERS, **kwargs.pop("headers", {}), "x-request-id": "rpc-err-1"}
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.request(method, "/mcp", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert (
        r.headers["content-type"].startswith("application/json") and r.headers["x-request-id"] == "rpc-err-1"
    )
    body = r.json()
    assert set(body) == {"jsonrpc", "id", "error"} and body["jsonrpc"] == "2.0" and body["id"] is None, body
    error = body["error"]
    assert set(error) == {"code", "message", "data"} and error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert error["data"] == {"error": kind, "detail": error["message"], "request_id": "rpc-err-1"}, body


async def test_the_endpoint_is_exactly_mcp_beside_the_rest_api(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=False) as client:
        for path in ("/mcp", "/mcp/"):
            r = await client.post(
                path, json=INITIALIZE, headers={**MCP_HEADERS, "x-request-id": "mcp-probe-1"}
            )
            assert r.status_code == 200, (path, r.status_code, r.text)
            assert r.json()["result"]["serverInfo"]["name"] == "dbmeta"
            assert r.headers["x-request-id"] == "mcp-probe-1"
        assert (await client.post("/mcp/mcp", json=INITIALIZE, headers=MCP_HEADERS)).status_code == 404
        # by default only loopback names: another Host (DNS rebinding) is refused with the JSON 403
        r = await client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "host": "dbmeta:8000"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        openapi = (await client.get("/openapi.json")).json()
        assert "/v1/tables/search" in openapi["paths"] and not any(
            p.startswith("/mcp") for p in openapi["paths"]
        )
        assert (await client.get("/healthz")).status_code == 200
        search = await client.post("/v1/tables/search", json={"query": "open support tickets by priority"})
        assert search.json()["tables"][0]["name"] == "tickets" and search.headers["x-request-id"]


def test_a_second_lifespan_of_the_same_app_serves_mcp_again(make_settings: Any) -> None:
    """The SDK's session manager runs once; the app makes a new one per lifespan (TestClient reuse, fuzzing)."""
    from fastapi.testclient import TestClient

    app = create_app(make_settings(schema_check_interval=0))
    for _ in range(2):
        with TestClient(app, base_url="http://localhost") as client:
            r = client.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            assert r.status_code == 200, r.text
            assert r.json()["result"]["serverInfo"]["name"] == "dbmeta"
    r = TestClient(app, base_url="http://localhost").post(
        "/mcp", json=INITIALIZE, headers=MCP_HEADERS
    )  # no lifespan: not running
    assert r.status_code == 503 and r.json()["error"] == "unavailable"


# ---- third-party clients: the MCP Inspector CLI (npm) and the SDK's stdio client -------------------------

INSPECTOR = shutil.which("mcp-inspector")
needs_inspector = pytest.mark.skipif(
    INSPECTOR is None,
    reason="MCP Inspector CLI absent (npm install -g @modelcontextprotocol/inspector)",
)
#: One call per tool, with the Inspector's --tool-arg syntax, and what its structured answer holds.
INSPECTOR_CALLS: list[tuple[str, list[str], str]] = [
    ("prompt_items", ["user_request=open tickets by priority"], "prompt_items"),
    ("preflight_query", ["sql=SELECT count(*) FROM orders"], "ok"),
    ("search_tables", ["query=open support tickets", "top_k=3"], "tables"),
    ("get_table_details", ['tables=["orders"]'], "text"),
    ("list_schemas", [], "schemas"),
    ("list_tables", ["detail_level=summary", "limit=5"], "tables"),
]


def _stdio_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    return {
        **env,
        "DATA_DIR": str(data_dir),
        "SEARCH_BACKEND": "keyword",
        "REDIS_CACHE_ENABLED": "false",
        "SCHEMA_CHECK_INTERVAL": "0",
        "HF_HUB_OFFLINE": "1",
    }


def _inspector(*args: str, env: dict[str, str] | None = None) -> Any:
    assert INSPECTOR is not None
    done = subprocess.run(
        [INSPECTOR, "--cli", *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def _inspector_call(base_url: str, tool: str, *args: str) -> Any:
    """tools/call over HTTP with the Inspector CLI; ``args`` are its ``name=value`` tool arguments."""
    argv = [base_url + "/mcp", "--transport", "http", "--method", "tools/call", "--tool-name", tool]
    for arg in args:
        argv += ["--tool-arg", arg]
    return _inspector(*argv)


@needs_inspector
def test_the_inspector_cli_lists_the_tools_over_http(base_url: str) -> None:
    listed = _inspector(base_url + "/mcp", "--transport", "http", "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert set(tools) == TOOLS
    assert all(t["outputSchema"]["type"] == "object" and t["inputSchema"] for t in tools.values())


@needs_inspector
@pytest.mark.parametrize(("tool", "args", "key"), INSPECTOR_CALLS, ids=[c[0] for c in INSPECTOR_CALLS])
def test_the_inspector_cli_calls_each_tool_over_http(
    base_url: str, tool: str, args: list[str], key: str
) -> None:
    answer = _inspector_call(base_url, tool, *args)
    assert answer["isError"] is False, answer
    assert key in answer["structuredContent"] and answer["content"][0]["text"]


@needs_inspector
def test_the_inspector_cli_shows_a_tool_error_as_the_servers_json(base_url: str) -> None:
    answer = _inspector_call(base_url, "search_tables", "query=x", "profile=nosuch")
    assert answer["isError"] is True, answer
    assert json.loads(answer["content"][0]["text"])["error"] == "unknown_profile"


@needs_inspector
def test_the_inspector_cli_shows_invalid_arguments_as_the_servers_json(base_url: str) -> None:
    answer = _inspector_call(base_url, "search_tables", "query=x", "top_k=0")
    assert answer["isError"] is True, answer
    _invalid_request(answer["content"][0]["text"], ["top_k"], "greater_than_equal")


async def test_a_get_of_the_endpoint_is_answered_at_once_not_held_open(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for accept in ("text/event-stream", "application/json, text/event-stream", "*/*"):
            r = await client.get("/mcp", headers={"accept": accept})
            assert r.status_code == 405 and r.headers["allow"] == "POST", r.text
            assert r.json()["error"] == "method_not_allowed"


@needs_inspector
def test_the_inspector_cli_lists_the_same_tools_over_stdio(tmp_path: Path) -> None:
    listed = _inspector(
        sys.executable, "-m", "dbmeta_app.cli", "mcp", "--method", "tools/list", env=_stdio_env(tmp_path)
    )
    assert {t["name"] for t in listed["tools"]} == TOOLS


async def test_the_sdk_stdio_client_lists_and_calls_the_same_tools(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "dbmeta_app.cli", "mcp"],
        env=_stdio_env(tmp_path),
        cwd=str(ROOT),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        info = await session.initialize()
        assert info.server_info.name == "dbmeta"
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == TOOLS and all(t.output_schema for t in tools.values())
        result = await session.call_tool("search_tables", {"query": "open support tickets by priority"})
        assert _structured(result)["tables"][0]["name"] == "tickets"
        table = (await session.read_resource("dbmeta://default/tables/orders")).contents[0]
        assert table.text.startswith("# orders")  # type: ignore[union-attr]
        invalid = await session.call_tool("search_tables", {"query": "x", "top_k": 0})
        assert invalid.is_error and invalid.structured_content is None
        _invalid_request(_text(invalid), ["top_k"], "greater_than_equal")
        with pytest.raises(MCPError, match=r"^unknown_profile: Unknown profile 'nope'"):
            await session.get_prompt("write_sql", {"user_request": "x", "profile": "nope"})


async def test_the_sdk_http_client_needs_the_api_token_when_it_is_set(tmp_path: Path) -> None:
    token = "7e9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e"
    settings = load_settings(
        data_dir=tmp_path / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
        api_token=token,
    )
    with serve(settings) as url:
        async with httpx.AsyncClient(base_url=url) as raw:
            refused = await raw.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert (await raw.get("/healthz")).status_code == 200
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client,
            streamable_http_client(url + "/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert tools == TOOLS
            answer = _structured(await session.call_tool("list_schemas", {}))
            assert answer["profile"] == "default"
