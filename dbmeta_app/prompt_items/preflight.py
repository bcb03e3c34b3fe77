"""Safe, cached EXPLAIN preflight of LLM-written SQL.

guard (pure, memoised) → cached result? → EXPLAIN built by us around the guarded statement, on the
profile's preflight pool, in a read-only transaction with timeouts, always rolled back → limits, warnings,
"did you mean" hints from the cached snapshot → cached (valid 600 s, SQL errors 60 s; timeouts and
connection failures never).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import anyio
import orjson

from dbmeta_app import metrics
from dbmeta_app.cache.redis_cache import CACHE_TTL, RedisCache, get_cache
from dbmeta_app.config import Settings, get_settings
from dbmeta_app.errors import UpstreamUnavailableError
from dbmeta_app.prompt_items.db_struct import load_snapshot
from dbmeta_app.runtime import ProfileRuntime, open_profile
from dbmeta_app.sql.explain import ExplainResult, apply_limits, run_explain
from dbmeta_app.sql.guard import GuardVerdict, check_sql
from dbmeta_app.sql.suggest import suggest_names

MAX_SQL_LENGTH = 100_000
#: Queries longer than this are parsed in a worker thread so the event loop never stalls on them.
INLINE_PARSE_MAX = 4_000
_VERDICTS_MAX = 2048


class _VerdictMemo:
    """The guard is pure: remember verdicts by (dialect, sha256 of the SQL) so repeats skip parsing."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, bytes], GuardVerdict] = OrderedDict()

    def get(self, dialect: str, sql: str) -> tuple[tuple[str, bytes], GuardVerdict | None]:
        key = (dialect, hashlib.sha256(sql.encode("utf-8", "surrogatepass")).digest())
        verdict = self._items.get(key)
        if verdict is not None:
            self._items.move_to_end(key)
        return key, verdict

    def put(self, key: tuple[str, bytes], verdict: GuardVerdict) -> None:
        self._items[key] = verdict
        while len(self._items) > _VERDICTS_MAX:
            self._items.popitem(last=False)


_verdicts = _VerdictMemo()


async def guard(sql: str, dialect: str) -> GuardVerdict:
    """Check SQL with the guard (memoised; long inputs parsed off the event loop)."""
    key, verdict = _verdicts.get(dialect, sql)
    if verdict is not None:
        return verdict
    if len(sql) <= INLINE_PARSE_MAX:
        verdict = check_sql(sql, dialect, max_length=MAX_SQL_LENGTH)
    else:
        verdict = await anyio.to_thread.run_sync(lambda: check_sql(sql, dialect, max_length=MAX_SQL_LENGTH))
    _verdicts.put(key, verdict)
    return verdict


def _answer(result: ExplainResult, **extra: Any) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "error": result.error,
        "error_kind": result.error_kind,
        "plan": result.plan,
        "estimated_rows": result.estimated_rows,
        "estimated_cost": result.estimated_cost,
        "warnings": list(result.warnings),
        **extra,
    }


async def preflight(settings: Settings, cache: RedisCache, rt: ProfileRuntime, sql: str) -> bytes:
    """Return the preflight verdict of one SQL text for a profile, as JSON bytes (see the module docstring).

    Cached answers are stored with ``"cached": true`` already in them, so a hit is served as stored bytes.
    """
    started = time.perf_counter()
    dialect = rt.dialect
    verdict = await guard(sql, dialect)
    if not verdict.ok:
        metrics.PREFLIGHT_SECONDS.labels(rt.name, "refused").observe(time.perf_counter() - started)
        return orjson.dumps(
            {
                "ok": False,
                "error": f"refused: {verdict.reason}",
                "error_kind": "unsafe",
                "position": verdict.position,
                "plan": None,
                "estimated_rows": None,
                "estimated_cost": None,
                "warnings": [],
                "cached": False,
                "profile": rt.name,
                "dialect": dialect,
            }
        )
    snapshot, _ = await load_snapshot(settings, cache, rt)
    limits = rt.profile.preflight
    key = rt.scope.key(
        "explain",
        client=settings.client,
        env=settings.env,
        profile=rt.name,
        schema_version=snapshot.version,
        sql=verdict.normalized,
        limits=(limits.timeout_ms, limits.max_estimated_rows, limits.max_cost),
    )
    cached, _ = await cache.get_bytes("explain", key)
    if cached is not None:
        metrics.PREFLIGHT_SECONDS.labels(rt.name, "cached").observe(time.perf_counter() - started)
        return cached
    assert verdict.statement is not None  # ok verdicts always carry the statement
    statement = verdict.statement
    result = await anyio.to_thread.run_sync(
        lambda: run_explain(rt.preflight_engine, statement, timeout_ms=limits.timeout_ms)
    )
    if result.error_kind == "connection":
        raise UpstreamUnavailableError(f"database of profile {rt.name!r} is unavailable: {result.error}")
    result = apply_limits(result, limits.max_estimated_rows, limits.max_cost)
    extra: dict[str, Any] = {"profile": rt.name, "dialect": dialect, "schema_version": snapshot.version}
    if result.error_kind == "sql" and result.error:
        columns = {k: [c.name for c in t.columns] for k, t in snapshot.tables.items()}
        hint = suggest_names(result.error, snapshot.tables.keys(), columns, verdict.tables)
        if hint:
            extra["suggestion"] = hint
    answer = _answer(result, **extra)
    if result.error_kind is None or result.error_kind == "limit":
        await cache.set_json("explain", key, {**answer, "cached": True}, CACHE_TTL["explain"])
    elif result.error_kind == "sql":
        await cache.set_json("explain", key, {**answer, "cached": True}, CACHE_TTL["explain_error"])
    # timeouts (and connection failures, raised above) are never cached
    metrics.PREFLIGHT_SECONDS.labels(rt.name, "explained").observe(time.perf_counter() - started)
    return orjson.dumps({**answer, "cached": False})


async def query_preflight(
    sql: str, profile: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Preflight SQL for a profile outside the app (CLI, library use)."""
    settings = settings or get_settings()
    rt = open_profile(settings.profile(profile), settings)
    try:
        answer: dict[str, Any] = orjson.loads(await preflight(settings, get_cache(settings), rt, sql))
        return answer
    finally:
        rt.dispose()
