"""DuckDB preflight: guard rules (sqlglot's DuckDB dialect) and EXPLAIN reading.

DuckDB reads files and URLs from plain queries: file readers (``read_csv``, ``read_parquet``, ``read_json``,
``read_text``, ``parquet_scan``, ``sqlite_scan``, ``postgres_scan``, ``glob``, …), ``query()`` running SQL held
in a string, and *replacement scans*, where a table name such as ``'data.csv'`` or ``"s3://b/x.parquet"`` is
read as a file. The guard admits only allow-listed table functions that generate rows (``range``,
``generate_series``, ``unnest``) and refuses table names that look like paths or URLs; ``COPY``, ``ATTACH``,
``INSTALL``/``LOAD``, ``PRAGMA``, ``SET`` are not queries and are refused by the common rules. Belt and
braces: the service opens DuckDB files read-only with ``enable_external_access = false``
(:func:`dbmeta_app.runtime.create_profile_engine`).
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlglot import exp

SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {"range", "generate_series", "generateseries", "unnest", "explodinggenerateseries"}
)
#: Scalar functions that read the process environment or files.
DENIED_FUNCTIONS: Final = frozenset({"getenv", "read_text", "read_blob", "current_setting"})
_PATHLIKE: Final = re.compile(r"[./\\:]")


def _function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.sql_names()[0].lower()
    return type(node).__name__.lower()


def tree_problem(tree: exp.Expr) -> str | None:
    """Return why a parsed DuckDB query reads outside the database, or None."""
    for node in tree.walk():
        if isinstance(node, exp.Table):
            inner = node.this
            if inner is not None and not isinstance(inner, exp.Identifier):
                name = _function_name(inner)
                if name not in SAFE_TABLE_FUNCTIONS:
                    return (
                        f"table function {name}() is not allowed in a preflight query: only "
                        "range, generate_series and unnest (others read files, URLs or other databases)"
                    )
            elif _PATHLIKE.search(node.name):
                return (
                    f"table name {node.name!r} looks like a file or URL (DuckDB would read it); "
                    "only tables of the database may be queried"
                )
        elif isinstance(node, exp.Func) and _function_name(node) in DENIED_FUNCTIONS:
            return f"function {_function_name(node)}() is not allowed in a preflight query"
    return None


def plan_statement(statement: str) -> str:
    """The EXPLAIN that returns the physical plan with estimated cardinalities as JSON."""
    return f"EXPLAIN (FORMAT JSON) {statement}"


def estimated_rows(plan: Any) -> int | None:
    """Return the estimated cardinality of the plan's root operator, when DuckDB gave one."""
    node = plan[0] if isinstance(plan, list) and plan else plan
    if not isinstance(node, dict):
        return None
    extra = node.get("extra_info")
    value = extra.get("Estimated Cardinality") if isinstance(extra, dict) else None
    if value is None and node.get("children"):
        return estimated_rows(node["children"][0])
    try:
        return int(str(value).lstrip("~"))
    except (TypeError, ValueError):
        return None


def warnings_for(plan: Any, large_rows: int) -> list[str]:
    """Warn about unfiltered scans of large tables."""
    out = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.get("children") or ())
        extra = node.get("extra_info")
        if not isinstance(extra, dict) or "scan" not in str(node.get("name", "")).lower():
            continue
        rows = estimated_rows({"extra_info": extra}) or 0
        if rows >= large_rows and not extra.get("Filters"):
            out.append(f"full scan of {extra.get('Table', 'a table')} (~{rows:,} rows) without a filter")
    return out
