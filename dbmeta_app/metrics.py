"""Prometheus metrics: every metric the service exports is defined here, once.

Counters have no ``_created`` series (``disable_created_metrics``): a timestamp per label set that no
dashboard reads doubles the series count. Labels are low-cardinality: a route's template (never the raw
path), the method, the status class; a tool's name and its outcome.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

#: The Prometheus text format every scraper reads (prometheus_client's default now names version 1.0.0).
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # type: ignore[no-untyped-call]

#: Latency buckets of requests and tool calls (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: The methods counted by name; any other is counted as "other".
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "dbmeta_http_requests_total",
    "HTTP requests answered, by route template, method and status class (2xx, 4xx, 5xx)",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "dbmeta_http_request_duration_seconds",
    "Time to answer an HTTP request, until the end of the answer, by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
MCP_TOOL_CALLS = Counter(
    "dbmeta_mcp_tool_calls_total",
    "MCP tool calls (HTTP and stdio), by tool and outcome (ok, error: a tool error result)",
    ["tool", "outcome"],
)
MCP_TOOL_SECONDS = Histogram(
    "dbmeta_mcp_tool_duration_seconds",
    "Time to answer an MCP tool call, by tool",
    ["tool"],
    buckets=LATENCY_BUCKETS,
)


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered HTTP request."""
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


def exposition(accept: str) -> tuple[bytes, str]:
    """The metrics and their content type: OpenMetrics when the Accept header asks for it."""
    if "application/openmetrics-text" in accept:
        return generate_openmetrics(REGISTRY), OPENMETRICS_CONTENT_TYPE  # type: ignore[no-untyped-call]
    return generate_latest(REGISTRY), TEXT_CONTENT_TYPE


CACHE_HITS = Counter("dbmeta_cache_hits_total", "Cache hits by kind and tier", ["kind", "tier"])
CACHE_MISSES = Counter("dbmeta_cache_misses_total", "Cache misses by kind", ["kind"])
CACHE_ERRORS = Counter(
    "dbmeta_cache_errors_total", "Redis errors (served from memory instead) by kind", ["kind"]
)
CACHE_TOO_LARGE = Counter(
    "dbmeta_cache_too_large_total", "Values over REDIS_MAX_VALUE_BYTES, kept out of Redis, by kind", ["kind"]
)
REDIS_UP = Gauge(
    "dbmeta_redis_up", "1 when the last Redis call succeeded, 0 when Redis is failing or disabled"
)
INTROSPECTION_SECONDS = Histogram(
    "dbmeta_introspection_seconds",
    "Time to introspect a profile's full schema",
    ["profile"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SCHEMA_VERSION = Gauge(
    "dbmeta_schema_info", "Current schema version of a profile (value is always 1)", ["profile", "version"]
)
SEARCH_SECONDS = Histogram(
    "dbmeta_search_seconds",
    "Time to pick the relevant tables for a request",
    ["profile"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PREFLIGHT_SECONDS = Histogram(
    "dbmeta_preflight_seconds",
    "Time to answer a preflight request, by outcome: refused (by the guard), cached, busy, explained",
    ["profile", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
BREAKER_STATE = Gauge(
    "dbmeta_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["name"]
)
