"""ClickHouse preflight: guard rules (sqlglot's ClickHouse dialect), per-query limits, EXPLAIN reading.

The guard admits a table function only from an allow-list of ones that generate data in process (``numbers``,
``zeros``, ``generateRandom``, ``values``, ``null``, ``view``, ``generate_series``): every other one (``url``,
``s3``, ``file``, ``remote``, ``cluster``, ``mysql``, ``postgresql``, ``jdbc``, ``odbc``, ``hdfs``,
``executable``, ``input``, ``azureBlobStorage``, ``iceberg``, ``deltaLake``, ``hudi``, ``gcs``, ``mongodb``,
``redis``, ``sqlite``, ``dictionary``, ``merge``, …) may reach files, URLs, other servers or other databases.
Tables of the ``system`` database are admitted only from an allow-list of catalog tables (never users, roles,
grants, quotas, query or session logs, processes, settings). ``SETTINGS`` and ``FORMAT`` clauses are refused
(the service sets the limits itself), ``INTO OUTFILE`` does not parse as a query, and a table named like a
path (``FROM 'data.csv'``, which clickhouse-local and chDB read as a file) is refused.

Every statement the service runs on ClickHouse carries :func:`limits_clause`: ``readonly = 2`` (no writes, no
DDL), a time limit, a memory limit, bounded result rows and bytes, no introspection functions.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlglot import exp

#: Table functions that only generate rows in process.
SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generaterandom",
        "generate_series",
        "generateseries",
        "values",
        "null",
        "view",
    }
)
#: Catalog tables of the ``system`` database a query may read: structure, no secrets, no other users' work.
SAFE_SYSTEM_TABLES: Final = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "databases",
        "tables",
        "columns",
        "data_skipping_indices",
        "parts",
        "parts_columns",
        "functions",
        "table_functions",
        "data_type_families",
        "time_zones",
        "formats",
        "aggregate_function_combinators",
    }
)
#: Scalar functions that read files or run models from files (table functions are allow-listed instead).
DENIED_FUNCTIONS: Final = frozenset({"catboostevaluate", "modelevaluate", "getenv"})

_PATHLIKE: Final = re.compile(r"[./\\:*?]")

#: Bounds of every statement the service runs (seconds and bytes are set from the profile's timeout).
MAX_MEMORY_BYTES: Final = 1_000_000_000
MAX_RESULT_ROWS: Final = 10_000
MAX_RESULT_BYTES: Final = 10_000_000


def limits_clause(timeout_ms: int) -> str:
    """Return the SETTINGS clause that bounds one statement: read-only, time, memory, result size."""
    seconds = max(1, -(-int(timeout_ms) // 1000))
    return (
        f" SETTINGS readonly = 2, max_execution_time = {seconds}, timeout_overflow_mode = 'throw',"
        f" max_memory_usage = {MAX_MEMORY_BYTES}, max_result_rows = {MAX_RESULT_ROWS},"
        f" max_result_bytes = {MAX_RESULT_BYTES}, result_overflow_mode = 'break',"
        " allow_introspection_functions = 0"
    )


def table_function_name(table: exp.Table) -> str | None:
    """Return the name of the table function a FROM item calls, or None for a plain table."""
    node = table.this
    if node is None or isinstance(node, exp.Identifier):
        return None
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.sql_names()[0].lower()
    return type(node).__name__.lower()


def dictionaries_used(tree: exp.Expr) -> set[str] | None:
    """Return the dictionary names the dict* functions of a query name (None: a name that is not a literal)."""
    names: set[str] = set()
    for node in tree.find_all(exp.Anonymous):
        if not node.name.lower().startswith("dict"):
            continue
        first = node.expressions[0] if node.expressions else None
        if not isinstance(first, exp.Literal) or not first.is_string:
            return None
        names.add(first.name)
    return names


#: A dictionary source that stays in the database: a ClickHouse table named without HOST (and no other server).
_SOURCE: Final = re.compile(r"\bSOURCE\s*\(\s*(\w+)\s*\(([^)]*)\)", re.I)


def remote_dictionaries(names: set[str], rows: list[tuple[str, str, str]], current: str) -> list[str]:
    """Of the dictionaries a query reads, those whose source is outside the database (or that are unknown).

    ``rows`` are (database, name, create_table_query) of the dictionaries in the catalog. Loading a dictionary
    reads its source: another ClickHouse server, MySQL, PostgreSQL, HTTP, a file or an executable.
    """
    sources = {f"{database}.{name}": create for database, name, create in rows}
    out = []
    for name in sorted(names):
        key = name if "." in name else f"{current}.{name}"
        found = _SOURCE.search(sources.get(key, ""))
        if found is None:
            out.append(f"{name} (not a dictionary of this database)")
            continue
        kind, args = found.group(1).upper(), found.group(2).upper()
        if kind != "CLICKHOUSE" or re.search(r"\b(HOST|PORT|USER|PASSWORD|SECURE)\b", args):
            out.append(f"{name} (source {kind})")
    return out


def tree_problem(tree: exp.Expr) -> str | None:
    """Return why a parsed ClickHouse query reaches outside the database or changes its limits, or None."""
    if dictionaries_used(tree) is None:
        return "the dictionary a dict*() function reads must be named by a string literal"
    for node in tree.walk():
        if isinstance(node, exp.Table):
            function = table_function_name(node)
            if function is not None and function not in SAFE_TABLE_FUNCTIONS:
                return (
                    f"table function {function}() is not allowed in a preflight query: only "
                    f"{', '.join(sorted(SAFE_TABLE_FUNCTIONS))} (others read files, URLs or other servers)"
                )
            if function is None and _PATHLIKE.search(node.name):
                return (
                    f"table name {node.name!r} looks like a file or URL (clickhouse-local and chDB read it); "
                    "only tables of the database may be queried"
                )
            if (
                function is None
                and node.db.lower() == "system"
                and node.name.lower() not in SAFE_SYSTEM_TABLES
            ):
                return (
                    f"system.{node.name} is not allowed in a preflight query (system tables other than the "
                    "catalog ones expose users, grants, settings or other sessions' queries)"
                )
        elif isinstance(node, exp.Select):
            if node.args.get("settings"):
                return "a SETTINGS clause is not allowed (the service sets the query limits)"
            if node.args.get("format"):
                return "a FORMAT clause is not allowed (the service reads the plan itself)"
        elif isinstance(node, exp.Func):
            name = node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_names()[0].lower()
            if name in DENIED_FUNCTIONS:
                return f"function {node.name or name}() is not allowed in a preflight query (it reads files)"
    return None


# --- EXPLAIN ---------------------------------------------------------------------------------------


def read_estimates(rows: list[tuple[Any, ...]], keys: list[str]) -> list[dict[str, Any]]:
    """Turn EXPLAIN ESTIMATE rows (database, table, parts, rows, marks) into dicts."""
    out = []
    for row in rows:
        entry = dict(zip(keys, row, strict=False))
        out.append(
            {
                "table": f"{entry.get('database')}.{entry.get('table')}",
                "parts": _int(entry.get("parts")),
                "rows": _int(entry.get("rows")),
                "marks": _int(entry.get("marks")),
            }
        )
    return out


def index_usage(plan: Any) -> list[dict[str, Any]]:
    """Find each ReadFromMergeTree step of a JSON plan and what its primary key / partition analysis selected."""
    found: list[dict[str, Any]] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("Node Type") == "ReadFromMergeTree":
            entry: dict[str, Any] = {"table": str(node.get("Description", ""))}
            for index in node.get("Indexes", ()) or ():
                if not isinstance(index, dict):
                    continue
                kind = str(index.get("Type", "")).lower()
                entry[kind] = {
                    "keys": list(index.get("Keys", ()) or ()),
                    "condition": index.get("Condition"),
                    "parts": [index.get("Initial Parts"), index.get("Selected Parts")],
                    "granules": [index.get("Initial Granules"), index.get("Selected Granules")],
                }
            found.append(entry)
        stack.extend(v for v in node.values() if isinstance(v, dict | list))
    return found


def warnings_for(usage: list[dict[str, Any]], large_rows: int, estimates: list[dict[str, Any]]) -> list[str]:
    """Warn when a read of a large table is not narrowed by its sorting (primary) key."""
    rows_by_table = {e["table"]: e["rows"] or 0 for e in estimates}
    out = []
    for entry in usage:
        table = entry["table"]
        rows = rows_by_table.get(table, 0)
        if rows < large_rows:
            continue
        primary = entry.get("primarykey")
        if primary is None or primary["condition"] in (None, "true") or not primary["keys"]:
            out.append(
                f"{table}: the query does not filter on the sorting key, so it reads all {rows:,} rows; "
                "filter on the leading ORDER BY columns"
            )
            continue
        initial, selected = primary["granules"]
        if isinstance(initial, int) and isinstance(selected, int) and selected >= initial:
            out.append(
                f"{table}: the filter on the sorting key ({', '.join(primary['keys'])}) skips no granules "
                f"({rows:,} rows read)"
            )
    return out


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
