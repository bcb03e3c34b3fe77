"""DuckDB preflight: guard rules (sqlglot's DuckDB dialect) and EXPLAIN reading.

DuckDB reads files and URLs from plain queries: file readers (``read_csv``, ``read_parquet``, ``read_json``,
``read_text``, ``parquet_scan``, ``sqlite_scan``, ``postgres_scan``, ``glob``, …), ``query()`` running SQL held
in a string, and *replacement scans*, where a table name such as ``'data.csv'`` or ``"s3://b/x.parquet"`` is
read as a file. The guard admits only allow-listed table functions that generate rows (``range``,
``generate_series``, ``unnest``) and refuses table names that look like paths or URLs; ``COPY``, ``ATTACH``,
``INSTALL``/``LOAD``, ``PRAGMA``, ``SET`` are not queries and are refused by the common rules. Belt and
braces: the service opens DuckDB files read-only with ``enable_external_access = false``
(:func:`dbmeta_app.runtime.create_profile_engine`).

DuckDB plans in the service's own process, and a database file may hold macros (scalar and table), views and
generated columns, all of which planning expands and folds. Before planning, :func:`reach_problem` follows
what the query reads through the catalog and refuses any call of a macro of the database (a routine stored in
it is not known to be safe; DuckDB's own macros, ``internal``, stay allowed), views and generated columns that
fail the guard rules, and stored definitions whose constants would be too big to fold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmeta_app.preflight.budget import (
    Budget,
    Constant,
    glot_view_outputs,
    measure_sqlglot,
    merge_outputs,
    settle_view_outputs,
)
from dbmeta_app.preflight.reach import called_names

SAFE_TABLE_FUNCTIONS: Final = frozenset(
    {"range", "generate_series", "generateseries", "unnest", "explodinggenerateseries"}
)
#: Scalar functions that read the process environment or files.
DENIED_FUNCTIONS: Final = frozenset({"getenv", "read_text", "read_blob", "current_setting"})
_PATHLIKE: Final = re.compile(r"[./\\:]")
#: How many levels of views (a view reading a view …) are followed before giving up.
MAX_VIEW_DEPTH: Final = 8

#: Runs one catalog query in the EXPLAIN's session and returns its rows.
CatalogQuery = Callable[[str], list[tuple[Any, ...]]]

_MACRO_KINDS: Final = {"macro": "macro", "table_macro": "table macro"}


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


def table_names(tree: exp.Expr) -> set[str]:
    """The lower-cased name of every table a query reads by name, qualifiers dropped.

    CTE names are kept: the body of a non-recursive ``WITH v AS (SELECT * FROM v)`` reads the view ``v``.
    """
    return {t.name.lower() for t in tree.find_all(exp.Table) if isinstance(t.this, exp.Identifier)}


def _literals(values: set[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def reach_problem(
    query: CatalogQuery, statement: str, *, max_constant_bytes: int = Budget().max_constant_bytes
) -> str | None:
    """Follow what a guarded query reads through the catalog and say why it may not be planned, or None.

    Planning binds a view's query into the caller's, a generated column's expression into every read of its
    table, and a macro's body into each call, and folds their constants in this process. So: a call of a macro
    of the database (``duckdb_functions()`` with ``internal = false``; a user macro may shadow a built-in
    name), by the query, a view it reads (transitively, up to :data:`MAX_VIEW_DEPTH` levels) or a generated
    column of a table it reads, is refused; views and generated columns must pass :func:`tree_problem`; their
    constants together may build at most ``max_constant_bytes`` (the profile's ``preflight.max_constant_bytes``),
    each view's measured with the constant columns of the views it reads (by name, transitively: ``SELECT
    repeat('x', p.n) FROM params p`` over ``params AS SELECT 100000007 AS n`` builds what ``params`` holds), and
    so may the query with the constant columns of the views and generated columns it reads. Views and tables are
    matched by name in every schema (a name may reach more than it resolves to, never less).
    """
    callers: list[tuple[str, set[str]]] = [("", _calls(statement))]
    stored: list[tuple[str, exp.Expr]] = []
    query_tree = sqlglot.parse_one(statement, read="duckdb")
    trees = [query_tree]
    #: (schema, lower-case name) → the view's query and its column list (CREATE VIEW v (m) AS …)
    views: dict[tuple[str, str], tuple[exp.Expr, list[str]]] = {}
    seen: set[str] = set()
    for _ in range(MAX_VIEW_DEPTH + 1):  # the query's level, then a level of views each
        wanted = set().union(*(table_names(tree) for tree in trees)) - seen
        trees = []
        if not wanted:
            break
        seen |= wanted
        rows = query(
            "SELECT schema_name, view_name, sql FROM duckdb_views() "
            f"WHERE NOT internal AND lower(view_name) IN ({_literals(wanted)})"
        )
        for schema, name, sql in rows:
            where = f"view {schema}.{name}"
            try:
                parsed = sqlglot.parse_one(str(sql), read="duckdb")
            except SqlglotError:
                return f"{where} has a definition the service cannot check"
            view = parsed.expression if isinstance(parsed, exp.Create) else parsed
            if not isinstance(view, exp.Expr):
                return f"{where} has a definition the service cannot check"
            callers.append((where, _calls(str(sql))))
            stored.append((where, view))
            trees.append(view)
            listed = parsed.this if isinstance(parsed, exp.Create) else None
            columns = [c.name for c in listed.expressions] if isinstance(listed, exp.Schema) else []
            views[(str(schema), str(name).lower())] = (view, columns)
        if not trees:
            break  # what this level reads are tables (or nothing known)
    else:
        return f"views nested more than {MAX_VIEW_DEPTH} levels deep cannot be checked"
    generated: dict[str, Constant] = {}  # the constant generated columns of the tables read, by name
    if seen:
        rows = query(
            "SELECT schema_name, table_name, column_name, generation_expression FROM duckdb_columns() "
            f"WHERE is_generated AND lower(table_name) IN ({_literals(seen)})"
        )
        for schema, table, column, expression in rows:
            where = f"generated column {schema}.{table}.{column}"
            text = f"SELECT {expression}"
            try:
                tree = sqlglot.parse_one(text, read="duckdb")
            except SqlglotError:
                return f"{where} has an expression the service cannot check"
            stored.append((where, tree))
            callers.append((where, _calls(text)))
            if isinstance(tree, exp.Select) and len(tree.expressions) == 1:
                generated = merge_outputs(
                    generated, glot_view_outputs(tree, columns=[str(column)], dialect="duckdb")
                )
    problem = _macro_problem(query, callers)
    if problem is not None:
        return problem
    seeds = _view_seeds(views, generated)
    constant_bytes = 0
    for where, tree in stored:
        problem = tree_problem(tree)
        if problem is not None:
            return f"{where} reads outside the database: {problem}"
        seed = seeds[id(tree)][0] if id(tree) in seeds else generated
        constant_bytes += measure_sqlglot(tree, "duckdb", seed).constant_bytes
        if constant_bytes > max_constant_bytes:
            return (
                f"{where} (with the other views and generated columns the query reads) would make DuckDB build "
                f"{constant_bytes:,} bytes of constants while planning, over the limit of "
                f"{max_constant_bytes:,} (preflight.max_constant_bytes)"
            )
    outputs = merge_outputs(generated, *(part for pair in seeds.values() for part in pair))
    built = measure_sqlglot(query_tree, "duckdb", outputs).constant_bytes if outputs else 0
    if built > max_constant_bytes:
        return (
            "with the constant columns of the views it reads and of the generated columns of its tables, the query "
            f"would make DuckDB build {built:,} bytes of constants while planning, over the limit of "
            f"{max_constant_bytes:,} (preflight.max_constant_bytes)"
        )
    return None


def _view_seeds(
    views: dict[tuple[str, str], tuple[exp.Expr, list[str]]], generated: dict[str, Constant]
) -> dict[int, tuple[dict[str, Constant], dict[str, Constant]]]:
    """Per view (by the id of its query): the constant columns its definition may read, by name (those of the views
    it reads, transitively, matched by name in every schema, and of the generated columns of the tables read), and
    its own, which a reader of the view sees (an alias its select list reads back,
    ``SELECT 100000007 AS n, repeat('x', n)``, is followed by the measure itself)."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in views:
        by_name.setdefault(key[1], []).append(key)
    reads = {
        key: [k for n in table_names(tree) for k in by_name.get(n, ())] for key, (tree, _) in views.items()
    }
    settled = settle_view_outputs(
        reads,
        lambda key, seed: glot_view_outputs(
            views[key][0], merge_outputs(seed, generated), views[key][1], dialect="duckdb"
        ),
    )
    return {id(views[key][0]): (merge_outputs(seed, generated), own) for key, (seed, own) in settled.items()}


def _macro_problem(query: CatalogQuery, callers: list[tuple[str, set[str]]]) -> str | None:
    """Say which macro of the database the query, a view or a generated column calls, or None."""
    names = set().union(*(called for _, called in callers))
    if not names:
        return None
    rows = query(
        "SELECT DISTINCT function_name, function_type FROM duckdb_functions() "
        f"WHERE NOT internal AND lower(function_name) IN ({_literals(names)})"
    )
    kinds = {str(name).lower(): _MACRO_KINDS.get(str(kind), "function") for name, kind in rows}
    for where, called in callers:
        for name in sorted(called & kinds.keys()):
            what = f"{kinds[name]} {name}() of the database"
            verb = f"{where} calls {what}, which is" if where else f"{what} is"
            return f"{verb} not allowed in a preflight query: the service cannot vouch for what it runs"
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


def _calls(sql: str) -> set[str]:
    return called_names(sql, "duckdb", fold_case=True)
