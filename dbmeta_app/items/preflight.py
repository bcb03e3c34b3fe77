"""Safe, cached EXPLAIN preflight of LLM-written SQL.

guard (pure, memoised; the profile's complexity budget included) → cached result? → a slot of the
profile's concurrency bound (else at once ``busy``) → EXPLAIN built by us around the guarded statement, on
the profile's preflight pool, in a read-only, time-boxed, planner-bounded transaction, always rolled back
and the session reset → limits, warnings, "did you mean" hints from the cached snapshot → cached (valid
600 s, SQL errors 60 s; timeouts, busy answers, connection failures and out-of-memory answers never). Whatever
the EXPLAIN raises (a MemoryError included) is an answer, never a 500.

Every answer has exactly the keys of :data:`PREFLIGHT_KEYS` (null where one does not apply), built by
:func:`preflight_answer` whatever the outcome.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Final

import anyio
import orjson

from dbmeta_app import metrics
from dbmeta_app.cache.redis_cache import CACHE_TTL, RedisCache
from dbmeta_app.config import PreflightLimits, Settings
from dbmeta_app.errors import UpstreamUnavailableError
from dbmeta_app.preflight.budget import Budget
from dbmeta_app.preflight.explain import ExplainResult, apply_limits, out_of_memory, run_explain
from dbmeta_app.preflight.guard import UNSAFE, GuardVerdict, check_sql
from dbmeta_app.preflight.suggest import suggest_names
from dbmeta_app.preflight.verdicts import VerdictMemo
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.schema.printable import visible
from dbmeta_app.schema.store import held_schema_version, load_snapshot

log = logging.getLogger(__name__)

MAX_SQL_LENGTH = 100_000
#: Queries longer than this are parsed in a worker thread so the event loop never stalls on them.
INLINE_PARSE_MAX = 4_000

#: Why an answer is not ok: refused by the guard, invalid SQL, over a limit (complexity budget, estimated
#: rows or cost), the statement timed out, or the profile's database work is at its concurrency bound.
ERROR_KINDS: Final = ("unsafe", "sql", "limit", "timeout", "busy")
#: The keys of every preflight answer, in order (the README and ``PreflightResponse`` list the same).
PREFLIGHT_KEYS: Final = (
    "ok",
    "error",
    "error_kind",
    "position",
    "plan",
    "plan_truncated",
    "estimated_rows",
    "estimated_cost",
    "warnings",
    "suggestion",
    "cached",
    "profile",
    "dialect",
    "schema_version",
)


@dataclass(frozen=True, slots=True)
class PreflightReply:
    """A preflight answer as JSON bytes, and how many seconds to wait before retrying a ``busy`` one."""

    body: bytes
    retry_after: int | None = None


def preflight_answer(
    *,
    profile: str,
    dialect: str,
    schema_version: str | None,
    ok: bool = False,
    error: str | None = None,
    error_kind: str | None = None,
    position: int | None = None,
    plan: Any = None,
    plan_truncated: bool | None = None,
    estimated_rows: int | None = None,
    estimated_cost: float | None = None,
    warnings: tuple[str, ...] | list[str] = (),
    suggestion: str | None = None,
    cached: bool = False,
) -> dict[str, Any]:
    """Build one preflight answer: every key of PREFLIGHT_KEYS, null where it does not apply.

    The texts (error, warnings, suggestion) name what the database holds (views, routines, columns), so their
    control characters are escaped (``schema.printable``): a name must not start a line of its own in a prompt.
    """
    return {
        "ok": ok,
        "error": None if error is None else visible(error),
        "error_kind": error_kind,
        "position": position,
        "plan": plan,
        "plan_truncated": plan_truncated if plan is not None else None,
        "estimated_rows": estimated_rows,
        "estimated_cost": estimated_cost,
        "warnings": [visible(w) for w in warnings],
        "suggestion": None if suggestion is None else visible(suggestion),
        "cached": cached,
        "profile": profile,
        "dialect": dialect,
        "schema_version": schema_version,
    }


def budget_of(limits: PreflightLimits) -> Budget:
    """The guard's complexity budget of a profile."""
    return Budget(
        max_nodes=limits.max_nodes,
        max_relations=limits.max_relations,
        max_depth=limits.max_depth,
        max_query_depth=limits.max_query_depth,
        max_from_items=limits.max_from_items,
        max_constant_bytes=limits.max_constant_bytes,
    )


async def guard(verdicts: VerdictMemo, sql: str, dialect: str, budget: Budget | None = None) -> GuardVerdict:
    """Check SQL with the guard (memoised in ``verdicts``; long inputs parsed off the event loop)."""
    limits = budget if budget is not None else Budget()
    key, verdict = verdicts.get(dialect, limits, sql)
    if verdict is not None:
        return verdict
    if len(sql) <= INLINE_PARSE_MAX:
        verdict = check_sql(sql, dialect, max_length=MAX_SQL_LENGTH, budget=limits)
    else:
        verdict = await anyio.to_thread.run_sync(
            lambda: check_sql(sql, dialect, max_length=MAX_SQL_LENGTH, budget=limits)
        )
    verdicts.put(key, verdict)
    return verdict


def _refusal_text(verdict: GuardVerdict) -> str:
    reason = verdict.reason or "refused"
    return f"refused: {reason}" if (verdict.kind or UNSAFE) == UNSAFE else reason


async def preflight_reply(
    settings: Settings, cache: RedisCache, rt: ProfileRuntime, sql: str
) -> PreflightReply:
    """Return the preflight answer of one SQL text for a profile (see the module docstring).

    Cached answers are stored with ``"cached": true`` already in them, so a hit is served as stored bytes.
    """
    started = time.perf_counter()
    # One time limit for the whole answer: parsing, queueing and checking count against it too.
    deadline = time.monotonic() + rt.profile.preflight.timeout_ms / 1000
    dialect, limits = rt.dialect, rt.profile.preflight
    verdict = await guard(rt.verdicts, sql, dialect, budget_of(limits))
    if not verdict.ok or verdict.statement is None:
        metrics.PREFLIGHT_SECONDS.labels(rt.name, "refused").observe(time.perf_counter() - started)
        answer = preflight_answer(
            profile=rt.name,
            dialect=dialect,
            schema_version=held_schema_version(settings, rt),
            error=_refusal_text(verdict),
            error_kind=verdict.kind or UNSAFE,
            position=verdict.position,
        )
        return PreflightReply(orjson.dumps(answer))
    if limits.require_least_privilege:
        refusal = await least_privilege_refusal(rt)
        if refusal is not None:
            metrics.PREFLIGHT_SECONDS.labels(rt.name, "refused").observe(time.perf_counter() - started)
            answer = preflight_answer(
                profile=rt.name,
                dialect=dialect,
                schema_version=held_schema_version(settings, rt),
                error=refusal,
                error_kind=UNSAFE,
            )
            return PreflightReply(orjson.dumps(answer))
    snapshot, _ = await load_snapshot(settings, cache, rt)

    def explain_key(definitions: str | None) -> str:
        # The definitions fingerprint last seen: once a preflight sees views or routines change, the
        # answers cached before are no longer served (the schema version does not move with them).
        return rt.scope.key(
            "explain",
            schema_version=snapshot.schema_version,
            sql=verdict.normalized,
            limits=(
                limits.timeout_ms,
                limits.max_estimated_rows,
                limits.max_cost,
                limits.max_plan_bytes,
                limits.allow_functions,
            ),
            definitions=definitions,
        )

    key = explain_key(rt.routines.fingerprint)
    cached, _ = await cache.get_bytes("explain", key)
    if cached is not None:
        metrics.PREFLIGHT_SECONDS.labels(rt.name, "cached").observe(time.perf_counter() - started)
        return PreflightReply(cached)
    statement = verdict.statement
    async with rt.admission.slot() as admitted:
        if not admitted:
            metrics.PREFLIGHT_SECONDS.labels(rt.name, "busy").observe(time.perf_counter() - started)
            return _busy(rt, snapshot.schema_version)
        # The routine policy runs in the EXPLAIN's own transaction, just before it (preflight/policy.py).
        check = rt.routines.checker(verdict.reach, statement)
        try:
            result = await anyio.to_thread.run_sync(
                lambda: run_explain(
                    rt.preflight_engine,
                    statement,
                    timeout_ms=limits.timeout_ms,
                    budget=budget_of(limits),
                    max_plan_bytes=limits.max_plan_bytes,
                    check=check,
                    deadline=deadline,
                    names=snapshot.names,
                ),
                limiter=rt.thread_limiter(),
            )
        except MemoryError:  # run_explain answers it; this is the last door before a 500
            log.warning("Preflight of profile %r ran out of memory", rt.name)
            result = out_of_memory(rt.dialect)
        except Exception:
            log.exception("Preflight of profile %r failed unexpectedly; the statement is refused", rt.name)
            result = ExplainResult(
                ok=False,
                error="refused: the service could not plan the statement (an internal error; see its log)",
                error_kind=UNSAFE,
                plan=None,
                estimated_rows=None,
                estimated_cost=None,
                transient=True,
            )
    if result.error_kind == "connection":
        raise UpstreamUnavailableError(f"database of profile {rt.name!r} is unavailable: {result.error}")
    key = explain_key(rt.routines.fingerprint)
    result = apply_limits(result, limits.max_estimated_rows, limits.max_cost)
    suggestion = None
    if result.error_kind == "sql" and result.error:
        columns = {k: [c.name for c in t.columns] for k, t in snapshot.tables.items()}
        suggestion = suggest_names(
            result.error, snapshot.tables.keys(), columns, verdict.tables, dialect=snapshot.dialect
        )
    answer = _explained(result, rt, snapshot.schema_version, suggestion)
    if result.transient:
        pass  # out of memory, an internal error: the next try may answer otherwise
    elif result.error_kind is None or result.error_kind == "limit":
        await cache.set_json("explain", key, {**answer, "cached": True}, CACHE_TTL["explain"])
    elif result.error_kind == "sql":
        await cache.set_json("explain", key, {**answer, "cached": True}, CACHE_TTL["explain_error"])
    # timeouts (and connection failures, raised above) are never cached
    metrics.PREFLIGHT_SECONDS.labels(rt.name, "explained").observe(time.perf_counter() - started)
    return PreflightReply(orjson.dumps(answer))


def _explained(
    result: ExplainResult, rt: ProfileRuntime, version: str, suggestion: str | None
) -> dict[str, Any]:
    return preflight_answer(
        profile=rt.name,
        dialect=rt.dialect,
        schema_version=version,
        ok=result.ok,
        error=result.error,
        error_kind=result.error_kind,
        plan=result.plan,
        plan_truncated=result.plan_truncated,
        estimated_rows=result.estimated_rows,
        estimated_cost=result.estimated_cost,
        warnings=result.warnings,
        suggestion=suggestion or None,
    )


def _busy(rt: ProfileRuntime, version: str) -> PreflightReply:
    limits = rt.profile.preflight
    retry = max(1, math.ceil(limits.timeout_ms / 1000))
    answer = preflight_answer(
        profile=rt.name,
        dialect=rt.dialect,
        schema_version=version,
        error=(
            f"busy: profile {rt.name!r} had no free slot for this EXPLAIN: it runs at most {limits.concurrency} "
            f"EXPLAINs and sample reads at once (preflight.concurrency), and at most {limits.queue} more wait "
            f"up to {limits.queue_wait_ms:,} ms each (preflight.queue, queue_wait_ms); retry in {retry} s"
        ),
        error_kind="busy",
    )
    return PreflightReply(orjson.dumps(answer), retry_after=retry)


async def preflight(settings: Settings, cache: RedisCache, rt: ProfileRuntime, sql: str) -> bytes:
    """Return the preflight answer of one SQL text for a profile, as JSON bytes."""
    return (await preflight_reply(settings, cache, rt, sql)).body


async def least_privilege_refusal(rt: ProfileRuntime) -> str | None:
    """Return why a profile that requires a least-privilege role is refused while its role can do more."""
    report = rt.privileges.fresh()
    if report is None:
        report = await anyio.to_thread.run_sync(rt.privileges.report, rt.engine)
    if report.least_privilege:
        return None
    if not report.checked:
        reason = f"the profile requires a least-privilege database role, which could not be checked: {report.error}"
    else:
        reason = (
            "the profile requires a least-privilege database role (preflight.require_least_privilege), "
            "but its role can: " + "; ".join(report.problems) + " (see docs/SECURITY.md)"
        )
    return f"refused: {reason}"
