"""/metrics: RED metrics per route, no ``_created`` series, OpenMetrics on request, valid for promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from dbmeta_app.main import create_app

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMTOOL = shutil.which("promtool")
MCP = {"accept": "application/json, text/event-stream"}


@pytest.fixture
def client(make_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(schema_check_interval=0)), base_url="http://localhost") as c:
        yield c


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_are_counted_by_route_template_method_and_status_class(client: TestClient) -> None:
    ok = 'dbmeta_http_requests_total{method="POST",route="/v1/tables/search",status="2xx"}'
    bad = 'dbmeta_http_requests_total{method="POST",route="/v1/tables/search",status="4xx"}'
    before = client.get("/metrics").text
    client.post("/v1/tables/search", json={"query": "orders"})
    client.post("/v1/tables/search", json={"query": "orders"})
    client.post("/v1/tables/search", json={"query": ""})
    client.get("/no/such/path/unrouted-qzx")
    after = client.get("/metrics").text
    assert _value(after, ok) - _value(before, ok) == 2
    assert _value(after, bad) - _value(before, bad) == 1
    assert (
        'dbmeta_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/tables/search"}'
        in (after)
    )
    # an unknown path is one label value, never the raw path (bounded cardinality); the probe
    # segment has letters so that no sample value (a float sum) can contain it by chance
    assert 'route="unmatched"' in after and "unrouted-qzx" not in after


def test_mcp_requests_are_counted_under_their_route(client: TestClient) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    client.post("/mcp", json=body, headers=MCP)
    assert 'route="/mcp"' in client.get("/metrics").text


def test_there_are_no_created_series(client: TestClient) -> None:
    client.post("/v1/tables/search", json={"query": "orders"})
    text = client.get("/metrics").text
    assert "dbmeta_http_requests_total" in text and "_created" not in text


def test_the_text_format_by_default_and_openmetrics_when_asked(client: TestClient) -> None:
    plain = client.get("/metrics")
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    om = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"] == OPENMETRICS
    assert om.text.endswith("# EOF\n") and "_created" not in om.text
    assert re.search(r"^# TYPE dbmeta_http_requests counter$", om.text, re.M)


def test_the_openmetrics_exposition_parses_strictly(client: TestClient) -> None:
    client.post("/v1/tables/search", json={"query": "orders"})
    om = client.get("/metrics", headers={"accept": "application/openmetrics-text"}).text
    families = {f.name: f for f in text_string_to_metric_families(om)}
    assert families["dbmeta_http_requests"].type == "counter"
    assert families["dbmeta_http_request_duration_seconds"].type == "histogram"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool absent (apt-get install -y prometheus)")
def test_promtool_accepts_the_exposition(client: TestClient) -> None:
    # promtool reads the Prometheus text format (its OpenMetrics check is the parser test above)
    client.post("/v1/tables/search", json={"query": "orders"})
    client.post("/v1/preflight", json={"sql": "SELECT 1"})
    client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=MCP)
    text = client.get("/metrics").text
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    # promtool exits 0 when the exposition parses; lint remarks (if any) are printed, not failures
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
