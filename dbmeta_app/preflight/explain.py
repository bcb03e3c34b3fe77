"""Run a dialect-specific EXPLAIN of one guarded query inside a read-only, time-boxed transaction.

Blocking (SQLAlchemy sync engines): call it from a worker thread. Nothing here executes the query
itself, never ANALYZE; the transaction is the one :mod:`dbmeta_app.db.session` opens (read-only,
time-boxed, planner bounded, rolled back, the pooled session reset after). A plan larger than
``max_plan_bytes`` is cut to fit (``plan_truncated``). Expected failures come back as results, never
raised, with messages free of logins, hosts and addresses.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from dbmeta_app.db.engines import SQLITE_HARD_HEAP_LIMIT
from dbmeta_app.db.session import (
    ReadOnlySession,
    SessionRefused,
    caller_search_path,
    connection_failure,
    read_only_session,
)
from dbmeta_app.dialects import dialect_family
from dbmeta_app.preflight.budget import Budget
from dbmeta_app.preflight.dialects import clickhouse as clickhouse_rules
from dbmeta_app.preflight.dialects import duckdb as duckdb_rules
from dbmeta_app.preflight.echo import PLANNERS_READING_ROWS, Echo
from dbmeta_app.preflight.guard import DEFAULT_MAX_LENGTH, UNSAFE, check_sql
from dbmeta_app.preflight.plan_size import DEFAULT_MAX_PLAN_BYTES, load_bounded
from dbmeta_app.scrub import scrub

__all__ = [
    "DEFAULT_LARGE_TABLE_ROWS",
    "Check",
    "ExplainResult",
    "apply_limits",
    "mysql_estimates",
    "mysql_warnings",
    "out_of_memory",
    "postgres_estimates",
    "postgres_warnings",
    "run_explain",
]

logger = logging.getLogger(__name__)

DEFAULT_LARGE_TABLE_ROWS: Final = 100_000
# A server's error text can echo long input (MySQL quotes the SQL near the error): keep answers small.
_MAX_ERROR_CHARS: Final = 2_000

#: Below this much time left, the database is not asked at all (the answer would only be a timeout).
MIN_DATABASE_MS: Final = 50

# PostgreSQL SQLSTATEs: query_canceled (statement_timeout), lock_not_available (lock_timeout).
_PG_TIMEOUT_STATES: Final = frozenset({"57014", "55P03"})
_PG_CONNECTION_STATES: Final = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})
_PG_CONNECTION_CLASSES: Final = ("08", "53", "58", "XX")
# MySQL/MariaDB error numbers: lock wait, query interrupted (KILL QUERY), MySQL
# max_execution_time, MariaDB max_statement_time.
_MYSQL_TIMEOUT_ERRORS: Final = frozenset({1205, 1317, 3024, 1969})
_MYSQL_CONNECTION_ERRORS: Final = frozenset(
    {1040, 1045, 1049, 1053, 1152, 1158, 1159, 1160, 1161, 1927, 4031}
)

# Keys of MySQL EXPLAIN JSON under which a separate query block hangs; join order never crosses them.
_MYSQL_SUBQUERY_KEYS: Final = frozenset(
    {
        "attached_subqueries",
        "group_by_subqueries",
        "having_subqueries",
        "materialized",
        "materialized_from_subquery",
        "optimized_away_subqueries",
        "order_by_subqueries",
        "query_block",
        "select_list_subqueries",
        "subqueries",
        "union_result",
        "update_value_subqueries",
    }
)


#: A last check run in the EXPLAIN's transaction: a reason to refuse the statement, or None.
Check = Callable[[Connection], str | None]


@dataclass(frozen=True, slots=True)
class ExplainResult:
    """The outcome of one EXPLAIN: a plan with estimates, or a classified error."""

    ok: bool
    error: str | None
    error_kind: str | None
    plan: Any
    estimated_rows: int | None
    estimated_cost: float | None
    warnings: tuple[str, ...] = ()
    plan_truncated: bool = False
    #: The answer may differ on the next try (memory another request held, an internal error): never cached.
    transient: bool = False


def run_explain(
    engine: sqlalchemy.Engine,
    statement: str,
    *,
    timeout_ms: int = 5000,
    large_table_rows: int = DEFAULT_LARGE_TABLE_ROWS,
    max_length: int = DEFAULT_MAX_LENGTH,
    budget: Budget | None = None,
    max_plan_bytes: int = DEFAULT_MAX_PLAN_BYTES,
    mysql_timeout: str | None = None,
    check: Check | None = None,
    deadline: float | None = None,
    names: Callable[[], Iterable[str]] | None = None,
) -> ExplainResult:
    """EXPLAIN a guarded read-only statement on `engine` without executing it; never raise for DB errors.

    ``deadline`` (a ``time.monotonic()`` instant) is when the caller's time limit ends: the database gets
    only what is left of ``timeout_ms`` by then, so the time spent parsing, queueing and checking before it
    counts against the same limit (one limit per request, not one per step).

    ``check`` (e.g. a routine policy) runs in the EXPLAIN's own read-only transaction, just before it; a
    reason it returns refuses the statement (``error_kind`` "unsafe") without EXPLAINing it.
    ``mysql_timeout``: see :func:`~dbmeta_app.db.session.read_only_session`.
    ``names`` gives the schema's names (tables, columns): with the caller's own text, the only words of the
    database's that the answer may repeat (``preflight/echo.py``: no values the planner read from rows).
    """
    backend = engine.dialect.name
    # Check again here: this is the last door before the database, whoever the caller is.
    verdict = check_sql(statement, backend, max_length=max_length, budget=budget)
    if not verdict.ok or verdict.statement is None:
        prefix = "refused: " if verdict.kind == UNSAFE else ""
        return _failure(f"{prefix}{verdict.reason}", verdict.kind or UNSAFE)
    guarded = verdict.statement
    timeout_ms = max(1, int(timeout_ms))
    if deadline is not None:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms < MIN_DATABASE_MS:
            return _failure(
                f"statement timed out: the {timeout_ms} ms limit was spent before the database was asked",
                "timeout",
            )
        timeout_ms = min(timeout_ms, left_ms)
    session: ReadOnlySession | None = None
    family = dialect_family(backend)
    echo = Echo(
        guarded, names, reads_rows=family in PLANNERS_READING_ROWS, plan_words=family in ("mysql", "mariadb")
    )
    try:
        with read_only_session(engine, timeout_ms, mysql_timeout=mysql_timeout) as session:
            refusal = check(session.conn) if check is not None else None
            if refusal is not None:
                return _failure(f"refused: {refusal}", "unsafe")
            return _explain(session, backend, guarded, echo, large_table_rows, max_plan_bytes, budget)
    except SessionRefused as exc:
        return _failure(str(exc), "connection")
    except DBAPIError as exc:
        timed_out = session is not None and session.timed_out
        return _error_result(exc, backend, timeout_ms, timed_out=timed_out, echo=echo)
    except PoolTimeoutError:
        return _failure("no database connection available (pool exhausted)", "connection")
    except SQLAlchemyError as exc:
        logger.warning("EXPLAIN failed outside the database: %s", type(exc).__name__)
        return _failure(f"database connection failed ({type(exc).__name__})", "connection")
    except MemoryError:
        # SQLite's heap limit (db/engines.py), or the process's own memory: the statement costs too much to plan.
        # SQLite freed the statement when it failed and the session was reset on the way out (the connection is
        # usable: SQLITE_NOMEM under the heap limit is an error, not an abort); the traceback goes with this block.
        logger.warning("EXPLAIN on %s ran out of memory; answered as a limit", backend)
        return out_of_memory(backend)
    except Exception:
        logger.exception("EXPLAIN on %s failed unexpectedly; the statement is refused", backend)
        return dataclasses.replace(
            _failure(
                "refused: the service could not plan the statement (an internal error; see its log)", "unsafe"
            ),
            transient=True,
        )


def _explain(
    session: ReadOnlySession,
    backend: str,
    guarded: str,
    echo: Echo,
    large_table_rows: int,
    max_plan_bytes: int,
    budget: Budget | None,
) -> ExplainResult:
    """The dialect's EXPLAIN of the guarded statement, in the session's transaction."""
    if backend == "postgresql":
        return _explain_postgres(session, guarded, large_table_rows, max_plan_bytes)
    if backend == "sqlite":
        return _explain_sqlite(session, guarded, max_plan_bytes)
    if backend == "duckdb":
        stored = (budget or Budget()).max_constant_bytes
        return _explain_duckdb(session, guarded, large_table_rows, max_plan_bytes, stored)
    if dialect_family(backend) not in PLANNERS_READING_ROWS:
        return _explain_generic(session, guarded, max_plan_bytes)
    if backend in ("mysql", "mariadb"):
        result = _explain_mysql(session, guarded, large_table_rows, max_plan_bytes)
    else:
        result = _explain_clickhouse(session, guarded, large_table_rows, max_plan_bytes)
    return dataclasses.replace(result, plan=echo.plan(result.plan))


def out_of_memory(backend: str) -> ExplainResult:
    """The answer when planning ran out of memory: over a limit, not cached (another request may have held
    memory then: SQLite's heap limit is the whole process's)."""
    where = (
        f"SQLite's heap, capped at {SQLITE_HARD_HEAP_LIMIT // 2**20} MiB for the service"
        if backend == "sqlite"
        else "the service's memory"
    )
    result = _failure(
        f"query too complex to plan safely: the planner ran out of memory ({where}); simplify the query "
        "(fewer views, CTE references or subqueries)",
        "limit",
    )
    return dataclasses.replace(result, transient=True)


def apply_limits(result: ExplainResult, max_rows: int | None, max_cost: float | None) -> ExplainResult:
    """Turn a plan whose estimates exceed `max_rows` or `max_cost` into a `limit` failure."""
    if not result.ok:
        return result
    reasons: list[str] = []
    if max_rows is not None and result.estimated_rows is not None and result.estimated_rows > max_rows:
        reasons.append(
            f"estimated {result.estimated_rows:,} rows exceeds the limit of {max_rows:,} "
            "(the profile's preflight.max_estimated_rows)"
        )
    if max_cost is not None and result.estimated_cost is not None and result.estimated_cost > max_cost:
        reasons.append(
            f"estimated cost {result.estimated_cost:,.2f} exceeds the limit of {max_cost:,.2f} "
            "(the profile's preflight.max_cost)"
        )
    if not reasons:
        return result
    return dataclasses.replace(result, ok=False, error="; ".join(reasons), error_kind="limit")


# --- PostgreSQL ------------------------------------------------------------------------------------


def _explain_postgres(
    session: ReadOnlySession, statement: str, large_table_rows: int, max_plan_bytes: int
) -> ExplainResult:
    with caller_search_path(session.conn):  # the caller's names resolve the way the database resolves them
        row = session.run(f"EXPLAIN (FORMAT JSON) {statement}").one()
    plan, truncated = _plan(row[0], max_plan_bytes)
    rows, cost = postgres_estimates(plan)
    return _planned(
        plan,
        rows=rows,
        cost=cost,
        warnings=postgres_warnings(plan, large_table_rows=large_table_rows),
        truncated=truncated,
    )


def postgres_estimates(plan: Any) -> tuple[int | None, float | None]:
    """Return the top plan node's estimated rows and total cost from `EXPLAIN (FORMAT JSON)` output."""
    top = _pg_top(plan)
    if top is None:
        return None, None
    rows, cost = top.get("Plan Rows"), top.get("Total Cost")
    return (
        int(rows) if isinstance(rows, int | float) else None,
        float(cost) if isinstance(cost, int | float) else None,
    )


def postgres_warnings(plan: Any, *, large_table_rows: int = DEFAULT_LARGE_TABLE_ROWS) -> tuple[str, ...]:
    """Flag sequential scans of large tables and nested loops without any join condition."""
    top = _pg_top(plan)
    if top is None:
        return ()
    warnings: list[str] = []
    for node in _pg_nodes(top):
        node_type = node.get("Node Type")
        rows = _number(node.get("Plan Rows"))
        if node_type in ("Seq Scan", "Parallel Seq Scan") and rows >= large_table_rows:
            warnings.append(f"full scan of {_pg_relation(node)} (about {int(rows):,} rows estimated)")
        children = node.get("Plans")
        if (
            node_type == "Nested Loop"
            and "Join Filter" not in node
            and isinstance(children, list)
            and len(children) >= 2
            and _pg_is_cartesian(children[0], children[1])
        ):
            warnings.append(
                f"possible cartesian product: {_pg_describe(children[0])} and "
                f"{_pg_describe(children[1])} are joined without a join condition"
            )
    return tuple(dict.fromkeys(warnings))


def _pg_top(plan: Any) -> dict[str, Any] | None:
    if isinstance(plan, list) and plan and isinstance(plan[0], dict):
        plan = plan[0]
    if isinstance(plan, dict):
        top = plan.get("Plan", plan)
        if isinstance(top, dict):
            return top
    return None


def _pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children = current.get("Plans")
        if isinstance(children, list):
            stack.extend(child for child in reversed(children) if isinstance(child, dict))


def _pg_is_cartesian(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    """Tell whether no condition on the inner side of a nested loop mentions the outer side."""
    if _number(outer.get("Plan Rows")) <= 1 or _number(inner.get("Plan Rows")) <= 1:
        return False  # one row on a side: a cross join is harmless
    aliases = {str(n["Alias"]) for n in _pg_nodes(outer) if n.get("Alias")}
    if not aliases:
        return False
    texts: list[str] = []
    for node in _pg_nodes(inner):
        for key, value in node.items():
            if key.endswith(("Cond", "Filter", "Key", "Output")):
                texts.extend(value if isinstance(value, list) else [value])
    joined = " ".join(str(text) for text in texts)
    pattern = "|".join(rf'(?<![\w"]){re.escape(a)}\.|"{re.escape(a)}"\.' for a in aliases)
    return re.search(pattern, joined) is None


def _pg_relation(node: dict[str, Any]) -> str:
    name = node.get("Relation Name") or node.get("Alias") or "a table"
    schema = node.get("Schema")
    return f"{schema}.{name}" if schema else str(name)


def _pg_describe(node: dict[str, Any]) -> str:
    for current in _pg_nodes(node):
        if current.get("Relation Name") or current.get("Alias"):
            return _pg_relation(current)
    return str(node.get("Node Type", "a subplan"))


# --- MySQL / MariaDB -------------------------------------------------------------------------------


def _explain_mysql(
    session: ReadOnlySession, statement: str, large_table_rows: int, max_plan_bytes: int
) -> ExplainResult:
    row = session.run(f"EXPLAIN FORMAT=JSON {statement}").one()
    plan, truncated = _plan(row[0], max_plan_bytes)
    rows, cost = mysql_estimates(plan)
    return _planned(
        plan,
        rows=rows,
        cost=cost,
        warnings=mysql_warnings(plan, large_table_rows=large_table_rows),
        truncated=truncated,
    )


def mysql_estimates(plan: Any) -> tuple[int | None, float | None]:
    """Return estimated result rows and query cost from MySQL/MariaDB `EXPLAIN FORMAT=JSON` output."""
    block = plan.get("query_block") if isinstance(plan, dict) else None
    if not isinstance(block, dict):
        return None, None
    cost_info = block.get("cost_info")
    cost_value = cost_info.get("query_cost") if isinstance(cost_info, dict) else block.get("cost")
    try:
        cost = float(cost_value) if cost_value is not None else None
    except (TypeError, ValueError):
        cost = None
    return _mysql_block_rows(block), cost


def mysql_warnings(plan: Any, *, large_table_rows: int = DEFAULT_LARGE_TABLE_ROWS) -> tuple[str, ...]:
    """Flag full scans (access type ALL) of large tables and joins without any join condition."""
    warnings: list[str] = []
    for node in _json_dicts(plan):
        table = node.get("table")
        if isinstance(table, dict) and table.get("access_type") == "ALL":
            rows = _mysql_table_rows(table)
            if rows is not None and rows >= large_table_rows:
                warnings.append(
                    f"full scan of {table.get('table_name', 'a table')} (about {int(rows):,} rows estimated)"
                )
        loop = node.get("nested_loop")
        if isinstance(loop, list):
            warnings.extend(_mysql_cartesian_warnings(loop))
    return tuple(dict.fromkeys(warnings))


def _mysql_cartesian_warnings(loop: list[Any]) -> list[str]:
    warnings: list[str] = []
    earlier: list[str] = []
    earlier_rows = 1.0
    for item in loop:
        if not isinstance(item, dict):
            continue
        table = _mysql_item_table(item)
        if table is None:
            continue
        name = str(table.get("table_name", ""))
        rows = _mysql_table_rows(table) or 0.0
        conditions = _mysql_item_conditions(item)
        joined = any(
            re.search(rf"(?<![\w`]){re.escape(other)}\.|`{re.escape(other)}`\.", conditions)
            for other in earlier
        )
        if earlier and not joined and not table.get("ref") and earlier_rows > 1 and rows > 1:
            buffer = table.get("using_join_buffer") or (item.get("block-nl-join") or {}).get("join_type")
            how = f" (join buffer: {buffer})" if buffer else ""
            warnings.append(
                f"possible cartesian product: {name} is joined to {', '.join(earlier)} "
                f"without a join condition{how}"
            )
        earlier.append(name)
        earlier_rows *= max(rows, 1.0)
    return warnings


def _mysql_item_table(item: dict[str, Any]) -> dict[str, Any] | None:
    """Return the table entry of one nested-loop item, looking through block-nl-join/filesort wrappers."""
    stack: list[Any] = [item]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            table = node.get("table")
            if isinstance(table, dict):
                return table
            stack.extend(
                value
                for key, value in node.items()
                if key not in _MYSQL_SUBQUERY_KEYS and isinstance(value, dict | list)
            )
    return None


def _mysql_item_conditions(item: dict[str, Any]) -> str:
    """Join every attached condition and ref of one nested-loop item (outside its subqueries)."""
    texts: list[str] = []
    stack: list[Any] = [item]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("attached_condition", "ref"):
                    texts.append(str(value))
                elif key not in _MYSQL_SUBQUERY_KEYS and isinstance(value, dict | list):
                    stack.append(value)
    return " ".join(texts)


def _mysql_table_rows(table: dict[str, Any]) -> float | None:
    for key in ("rows_examined_per_scan", "rows"):
        value = table.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _mysql_block_rows(block: dict[str, Any]) -> int | None:
    union = block.get("union_result")
    if isinstance(union, dict):
        specs = union.get("query_specifications")
        if isinstance(specs, list) and specs:
            parts = [
                _mysql_block_rows(spec["query_block"])
                for spec in specs
                if isinstance(spec, dict) and isinstance(spec.get("query_block"), dict)
            ]
            if parts and all(part is not None for part in parts):
                return sum(part for part in parts if part is not None)
        return None
    tables = _mysql_join_tables(block)
    if not tables:
        return None
    real = [table for table in tables if "table_name" in table]
    if not real:
        return 1  # "No tables used": a single row
    produced = real[-1].get("rows_produced_per_join")
    if isinstance(produced, int | float):  # MySQL: rows out of the whole join
        return int(produced)
    estimate = 1.0
    for table in real:  # MariaDB: rows examined, thinned by the filtered percentage
        rows = _mysql_table_rows(table) or 1.0
        filtered = table.get("filtered")
        estimate *= rows * (float(filtered) / 100 if isinstance(filtered, int | float) else 1.0)
    return max(1, round(estimate))


def _mysql_join_tables(block: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the tables of a query block's join, looking through sort/group wrappers only."""
    stack: list[Any] = [block]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        loop = node.get("nested_loop")
        if isinstance(loop, list):
            return [t for t in (_mysql_item_table(i) for i in loop if isinstance(i, dict)) if t]
        table = node.get("table")
        if isinstance(table, dict):
            return [table]
        stack.extend(
            value
            for key, value in node.items()
            if key not in _MYSQL_SUBQUERY_KEYS and isinstance(value, dict | list)
        )
    return []


# --- SQLite ----------------------------------------------------------------------------------------


def _explain_sqlite(session: ReadOnlySession, statement: str, max_plan_bytes: int) -> ExplainResult:
    started = time.monotonic()
    result = session.run(f"EXPLAIN QUERY PLAN {statement}")
    rows, truncated = _bounded_rows(result, max_plan_bytes)
    took_ms = round((time.monotonic() - started) * 1000)
    if took_ms > session.timeout_ms:
        # SQLite resets interrupts when a statement starts, so planning itself cannot be cut short;
        # report the overrun anyway, so a query too costly to plan is treated as one that timed out.
        return _failure(
            f"statement timed out: planning took {took_ms} ms, over the {session.timeout_ms} ms limit",
            "timeout",
        )
    plan = [{"id": row[0], "parent": row[1], "detail": str(row[-1])} for row in rows if len(row) >= 3]
    return _planned(plan, rows=None, truncated=truncated)


# --- ClickHouse ------------------------------------------------------------------------------------


def _explain_clickhouse(
    session: ReadOnlySession, statement: str, large_table_rows: int, max_plan_bytes: int
) -> ExplainResult:
    """EXPLAIN PLAN (indexes, JSON) for the plan and key use, EXPLAIN ESTIMATE for parts, rows and marks.

    ``plan`` is ``{"plan": <the JSON plan>, "estimate": [{table, parts, rows, marks}], "indexes":
    [{table, primarykey: {keys, condition, parts: [initial, selected], granules: [...]}, partition: ...}]}``;
    ``estimated_rows`` is the sum of the rows the MergeTree reads will touch.
    """
    # Planning opens what the query reads (storages, views, dictionaries): follow it through the catalog first.
    problem = clickhouse_rules.reach_problem(lambda sql: list(session.run(sql).fetchall()), statement)
    if problem is not None:
        return _failure(f"refused: {problem}", "unsafe")
    # The session's run() appends the limits clause: build the bare EXPLAIN statements here.
    result = session.run(f"EXPLAIN PLAN indexes = 1, json = 1 {statement}")
    rows, truncated = _bounded_rows(result, max_plan_bytes)
    plan: Any = None
    if rows and rows[0]:
        plan, cut = _plan(rows[0][0], max_plan_bytes)
        truncated = truncated or cut
    result = session.run(f"EXPLAIN ESTIMATE {statement}")
    keys = list(result.keys())
    estimate_rows, cut = _bounded_rows(result, max_plan_bytes)
    estimates = clickhouse_rules.read_estimates([tuple(r) for r in estimate_rows], keys)
    usage = clickhouse_rules.index_usage(plan)
    counts = [e["rows"] for e in estimates if e["rows"] is not None]
    return _planned(
        {"plan": plan, "estimate": estimates, "indexes": usage},
        rows=sum(counts) if estimates else None,
        warnings=clickhouse_rules.warnings_for(usage, large_table_rows, estimates),
        truncated=truncated or cut,
    )


# --- DuckDB ----------------------------------------------------------------------------------------


def _explain_duckdb(
    session: ReadOnlySession,
    statement: str,
    large_table_rows: int,
    max_plan_bytes: int,
    max_constant_bytes: int,
) -> ExplainResult:
    # Planning expands the database's macros, views and generated columns in this process: check them first.
    problem = duckdb_rules.reach_problem(
        lambda sql: list(session.run(sql).fetchall()), statement, max_constant_bytes=max_constant_bytes
    )
    if problem is not None:
        return _failure(f"refused: {problem}", "unsafe")
    result = session.run(duckdb_rules.plan_statement(statement))
    rows, truncated = _bounded_rows(result, max_plan_bytes)
    plan: Any = None
    if rows and len(rows[0]) > 1:
        plan, cut = _plan(rows[0][1], max_plan_bytes)
        truncated = truncated or cut
    return _planned(
        plan,
        rows=duckdb_rules.estimated_rows(plan),
        warnings=duckdb_rules.warnings_for(plan, large_table_rows),
        truncated=truncated,
    )


# --- other dialects --------------------------------------------------------------------------------


def _explain_generic(session: ReadOnlySession, statement: str, max_plan_bytes: int) -> ExplainResult:
    """EXPLAIN on dialects without a module of their own (Trino, others): the statement alone."""
    backend = session.backend
    sql = f"EXPLAIN (FORMAT JSON) {statement}" if backend == "trino" else f"EXPLAIN {statement}"
    result = session.run(sql)
    keys = list(result.keys())
    fetched, truncated = _bounded_rows(result, max_plan_bytes)
    rows = [tuple(row) for row in fetched]
    plan: Any = [{key: _jsonable(value) for key, value in zip(keys, row, strict=False)} for row in rows]
    estimated_rows: int | None = None
    if backend == "trino" and len(rows) == 1 and rows[0]:
        plan, truncated = _plan(rows[0][0], max_plan_bytes)
        estimated_rows = _trino_rows(plan)
    return _planned(plan, rows=estimated_rows, truncated=truncated)


def _trino_rows(plan: Any) -> int | None:
    node = plan
    if isinstance(node, dict) and "estimates" not in node and node:
        node = node.get("0", next(iter(node.values())))  # distributed plan: fragment 0 is the root
    estimates = node.get("estimates") if isinstance(node, dict) else None
    if isinstance(estimates, list) and estimates and isinstance(estimates[0], dict):
        count = estimates[0].get("outputRowCount")
        if isinstance(count, int | float) and math.isfinite(count):
            return int(count)
    return None


# --- shared ----------------------------------------------------------------------------------------


def _plan(value: Any, max_plan_bytes: int) -> tuple[Any, bool]:
    """Decode a plan the server sent as JSON text, cut to `max_plan_bytes` when it is larger."""
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return load_bounded(value, max_plan_bytes)
    # Decoded by the driver (a driver the read-only session does not know): re-encode it to bound it.
    text = json.dumps(value, default=str)
    return load_bounded(text, max_plan_bytes)


def _bounded_rows(result: Any, max_bytes: int) -> tuple[list[Any], bool]:
    """Fetch plan rows until about `max_bytes` of them are held; tell whether any were left unread."""
    rows: list[Any] = []
    size = 0
    while True:
        batch = result.fetchmany(256)
        if not batch:
            return rows, False
        for row in batch:
            size += sum(len(str(value)) + 8 for value in row)
            if size > max_bytes:
                result.close()
                return rows, True
            rows.append(row)


#: The largest integer an answer carries (JSON encoders, orjson and the cache's, stop at 64 bits): a planner's
#: estimate beyond it (a cross join of a few large tables: 10^20 rows) is a float in the plan, clamped here.
_INT_MAX = 2**63 - 1


def _json_safe(value: Any) -> Any:
    """The plan with every integer beyond 64 bits as a float (a plan is bounded: max_plan_bytes)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT_MAX <= value <= _INT_MAX else float(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _planned(
    plan: Any,
    *,
    rows: int | None,
    cost: float | None = None,
    warnings: Sequence[str] = (),
    truncated: bool,
) -> ExplainResult:
    return ExplainResult(
        ok=True,
        error=None,
        error_kind=None,
        plan=_json_safe(plan),
        estimated_rows=None if rows is None else min(rows, _INT_MAX),
        estimated_cost=cost,
        warnings=tuple(warnings),
        plan_truncated=truncated,
    )


def _failure(error: str, kind: str) -> ExplainResult:
    return ExplainResult(
        ok=False, error=error, error_kind=kind, plan=None, estimated_rows=None, estimated_cost=None
    )


def _error_result(
    exc: DBAPIError, backend: str, timeout_ms: int, *, timed_out: bool = False, echo: Echo | None = None
) -> ExplainResult:
    """Classify a driver error as sql / timeout / connection, with a message free of connection details
    and of values the caller did not write (``echo``).

    A timeout names the limit it hit, whichever way the database reported it (SQLite says "interrupted").
    """
    kind, message = _classify(exc, backend, timed_out=timed_out)
    message = scrub(message)[:_MAX_ERROR_CHARS]
    if echo is not None:
        message = echo.message(message)
    if kind == "timeout" and f"{timeout_ms} ms limit" not in message:
        message = f"{message} (the {timeout_ms} ms limit)"
    if kind == "connection":
        logger.warning("EXPLAIN could not reach the %s database: %s", backend, message)
    return _failure(message, kind)


def _classify(exc: DBAPIError, backend: str, *, timed_out: bool) -> tuple[str, str]:
    orig: BaseException = exc.orig if exc.orig is not None else exc
    if backend == "postgresql":
        state = getattr(orig, "sqlstate", None)
        if isinstance(state, str) and state in _PG_TIMEOUT_STATES:
            return "timeout", _pg_message(orig)
        if exc.connection_invalidated or not state or state in _PG_CONNECTION_STATES:
            return "connection", connection_failure(orig)
        if state.startswith(_PG_CONNECTION_CLASSES):
            return "connection", connection_failure(orig)
        return "sql", _pg_message(orig)
    if backend in ("mysql", "mariadb"):
        args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
        number = args[0] if args and isinstance(args[0], int) else None
        text = str(args[1]) if len(args) > 1 else str(orig)
        if timed_out or number in _MYSQL_TIMEOUT_ERRORS:
            return "timeout", f"statement timed out: {text}"
        if exc.connection_invalidated or number is None or number in _MYSQL_CONNECTION_ERRORS:
            return "connection", connection_failure(orig)
        if 2000 <= number < 3000:  # client-side (CR_*) errors: socket, protocol, server gone
            return "connection", connection_failure(orig)
        return "sql", text
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    lowered = text.lower()
    if timed_out or "interrupted" in lowered or "database is locked" in lowered:
        return "timeout", f"statement timed out: {text}"
    if exc.connection_invalidated or "unable to open" in lowered or "disk i/o" in lowered:
        return "connection", connection_failure(orig)
    return "sql", text


def _pg_message(orig: BaseException) -> str:
    """Return the server's primary message (and hint), without the echoed statement or position."""
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    hint = getattr(diag, "message_hint", None)
    text = str(primary) if primary else (str(orig).splitlines()[0] if str(orig) else "")
    return f"{text} (hint: {hint})" if hint else text


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_jsonable(item) for item in value]
    return str(value)


def _json_dicts(value: Any) -> Iterator[dict[str, Any]]:
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            yield current
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
