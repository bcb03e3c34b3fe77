"""Prometheus metrics: every metric the service exports is defined here, once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
