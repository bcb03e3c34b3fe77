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
fail the guard rules, and stored definitions whose constants would be too big to fold. A database in which a
macro has the name of a built-in (function, table function or operator) is refused outright
(:func:`shadow_problem`), and the service's own catalog queries name every function in the system catalog
(``system.main.duckdb_functions()``), which no macro of the database shadows. Stored definitions are parsed
under a size, depth and time bound, memoised (:class:`~dbmeta_app.preflight.view_memo.ViewMemo`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
from dbmeta_app.preflight.view_memo import VIEW_WORK_SECONDS, ViewMemo, WorkClock, paren_depth

log = logging.getLogger(__name__)

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


#: The service's own DuckDB SQL calls every catalog function and built-in by its name in the system catalog
#: (``system.main.duckdb_functions()``, ``system.main.lower(…)``): a macro of the database of the same name would
#: otherwise be called instead (a table macro ``duckdb_functions()`` answered the macro check for the database).
SYSTEM: Final = "system.main."

#: A stored definition (a view's query, a generated column's expression) longer than this is not parsed: a query
#: reading it is refused (a 3.9 MB view took 34 s and 1.6 GB to parse and measure). The caller's own SQL has the
#: same bound (preflight.max_length's default).
VIEW_DEFINITION_MAX: Final = 100_000
#: A stored definition nested deeper than this (parentheses) is not parsed: refused (the parser recurses).
STORED_DEPTH_MAX: Final = 100
#: The memo of parsed definitions is emptied when it holds more entries than this.
MEMO_MAX_ENTRIES: Final = 20_000

#: What parsing and measuring stored definitions found, by (oid, digest of the text): shared by every DuckDB
#: profile (an entry depends only on the text it was derived from).
_MEMO = ViewMemo()
_MEMO_LOCK = threading.Lock()

_SHADOWS: Final = (
    f"SELECT DISTINCT f.schema_name, f.function_name, f.function_type FROM {SYSTEM}duckdb_functions() AS f "
    f"WHERE NOT f.internal AND {SYSTEM}lower(f.function_name) IN "
    f"(SELECT {SYSTEM}lower(b.function_name) FROM {SYSTEM}duckdb_functions() AS b WHERE b.internal) "
    "ORDER BY f.function_name LIMIT 1"
)


def shadow_problem(query: CatalogQuery) -> str | None:
    """Say which function of the database has the name of a DuckDB built-in (function, table function, operator
    such as ``+``, ``||`` or ``~~``), or None.

    DuckDB binds a macro of the database in place of the built-in of the same name wherever the name is used,
    operators included (``SELECT 1 + 1`` ran the database's ``"+"``): no call can be vouched for, so nothing of
    such a database is planned or sampled."""
    rows = query(_SHADOWS)
    if not rows:
        return None
    schema, name, kind = rows[0]
    what = _MACRO_KINDS.get(str(kind), "function")
    return (
        f"{what} {name}() of the database (schema {schema}) has the name of a DuckDB built-in function or "
        "operator, which it replaces wherever that name is used: the service plans and reads nothing in a "
        "database that redefines DuckDB's built-ins"
    )


class _OutOfTime(Exception):
    """The stored-definition work of one check used up its time (VIEW_WORK_SECONDS)."""


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a stored definition's check needs, derived once from its parse tree (memoised, no tree kept)."""

    reads: frozenset[str]  # the names it reads as tables (lower-cased)
    calls: frozenset[str]  # the names it calls (lower-cased)
    problem: str | None  # what the guard rules say of it
    columns: tuple[str, ...]  # a view's column list (CREATE VIEW v (m) AS …)


@dataclass(frozen=True, slots=True)
class _Stored:
    where: str
    key: tuple[int, str]  # (oid, digest of the text)
    text: str  # what is parsed
    facts: _Facts
    view: tuple[str, str] | None  # (schema, lower-case name) of a view; None: a generated column
    column: str = ""  # a generated column's name


class _Work:
    """The parse and measure work of one check: memoised, charged to one WorkClock."""

    def __init__(self, memo: ViewMemo, seconds: float) -> None:
        self.memo = memo
        self.clock = WorkClock(seconds)
        self.trees: dict[tuple[int, str], exp.Expr] = {}
        self.columns: dict[tuple[int, str], tuple[str, ...]] = {}

    def in_time(self) -> None:
        """Before each unit of work (a definition's parse and what is measured on it), never between a parse and
        its use (``view_memo.WorkClock``)."""
        if not self.clock.allows():
            raise _OutOfTime

    def tree(self, key: tuple[int, str], text: str) -> exp.Expr:
        """The definition's query (a view's, without its CREATE), parsed in this check only when needed."""
        if key not in self.trees:
            self.trees[key], self.columns[key] = _parse(text)
        return self.trees[key]

    def facts(self, key: tuple[int, str], text: str) -> _Facts | str:
        """The definition's facts, or why it cannot be checked (too long, too deep, not parsed)."""
        known = self.memo.facts.get(key)
        if isinstance(known, _Facts):
            return known
        error = self.memo.errors.get(key)
        if error is not None:
            return error
        if len(text) > VIEW_DEFINITION_MAX:  # read cut to one character more
            error = f"its definition is longer than the {VIEW_DEFINITION_MAX:,} characters the service parses"
        elif paren_depth(text) > STORED_DEPTH_MAX:
            error = f"its definition is nested more than {STORED_DEPTH_MAX} levels deep, more than the service parses"
        else:
            try:
                self.in_time()
                tree = self.tree(key, text)
                facts = _Facts(
                    reads=frozenset(table_names(tree)),
                    calls=frozenset(_calls(text)),
                    problem=tree_problem(tree),
                    columns=self.columns[key],
                )
            except _OutOfTime:
                raise
            except (SqlglotError, RecursionError, ValueError) as exc:
                error = f"its definition could not be parsed by the service ({type(exc).__name__})"
            except Exception as exc:  # noqa: BLE001 - any failure on untrusted text refuses (fail closed)
                log.warning("Could not check a stored DuckDB definition: %s", type(exc).__name__)
                error = f"its definition could not be checked by the service ({type(exc).__name__})"
            else:
                self.memo.facts[key] = facts
                self.memo.parsed.add(key)
                return facts
        self.memo.errors[key] = error
        return error

    def outputs(self, stored: _Stored, seed: Mapping[str, Constant]) -> dict[str, Constant]:
        """The constant columns of a view (measured with ``seed``) or of a generated column."""
        key = (*stored.key, tuple(sorted(seed.items())))
        known = self.memo.outputs.get(key)
        if known is None:
            self.in_time()
            tree = self.tree(stored.key, stored.text)
            if stored.view is None:
                one = isinstance(tree, exp.Select) and len(tree.expressions) == 1
                known = glot_view_outputs(tree, columns=[stored.column], dialect="duckdb") if one else {}
            else:
                known = glot_view_outputs(tree, seed, stored.facts.columns, dialect="duckdb")
            self.memo.outputs[key] = known
        return known

    def measured(self, stored: _Stored, seed: Mapping[str, Constant]) -> int:
        """The bytes of constants the definition makes DuckDB build, its inputs' constants given by ``seed``."""
        key = (*stored.key, tuple(sorted(seed.items())), ())  # no namesakes on DuckDB
        known = self.memo.measured.get(key)
        if known is None:
            self.in_time()
            tree = self.tree(stored.key, stored.text)
            known = measure_sqlglot(tree, "duckdb", seed).constant_bytes
            self.memo.measured[key] = known
        return known


def _parse(text: str) -> tuple[exp.Expr, tuple[str, ...]]:
    """A stored definition's query, and a view's column list (``CREATE VIEW v (m) AS …``)."""
    parsed = sqlglot.parse_one(text, read="duckdb")
    query = parsed.expression if isinstance(parsed, exp.Create) else parsed
    if not isinstance(query, exp.Expr):
        raise ValueError("no query")
    listed = parsed.this if isinstance(parsed, exp.Create) else None
    columns = tuple(c.name for c in listed.expressions) if isinstance(listed, exp.Schema) else ()
    return query, columns


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def reach_problem(
    query: CatalogQuery,
    statement: str,
    *,
    max_constant_bytes: int = Budget().max_constant_bytes,
    memo: ViewMemo | None = None,
) -> str | None:
    """Follow what a guarded query reads through the catalog and say why it may not be planned, or None.

    First, a database that redefines a DuckDB built-in (:func:`shadow_problem`) is refused whatever the query.
    Planning binds a view's query into the caller's, a generated column's expression into every read of its
    table, and a macro's body into each call, and folds their constants in this process. So: a call of a macro
    of the database (``duckdb_functions()`` with ``internal = false``), by the query, a view it reads
    (transitively, up to :data:`MAX_VIEW_DEPTH` levels) or a generated column of a table it reads, is refused;
    views and generated columns must pass :func:`tree_problem`; their constants together may build at most
    ``max_constant_bytes`` (the profile's ``preflight.max_constant_bytes``), each view's measured with the
    constant columns of the views it reads (by name, transitively: ``SELECT repeat('x', p.n) FROM params p`` over
    ``params AS SELECT 100000007 AS n`` builds what ``params`` holds), and so may the query with the constant
    columns of the views and generated columns it reads. Views and tables are matched by name in every schema (a
    name may reach more than it resolves to, never less).

    Stored definitions are untrusted text: one longer than :data:`VIEW_DEFINITION_MAX` or nested deeper than
    :data:`STORED_DEPTH_MAX`, or one the parser fails on (RecursionError included), is refused unchecked (fail
    closed); parsing and measuring are memoised by (oid, digest of the text) in ``memo`` (the module's own by
    default) and charged to :data:`VIEW_WORK_SECONDS` per check: what is left over refuses this query, and the
    next check goes on where this one stopped.
    """
    problem = shadow_problem(query)
    if problem is not None:
        return problem
    work = _Work(_MEMO if memo is None else memo, VIEW_WORK_SECONDS)
    try:
        return _reach(query, statement, max_constant_bytes, work)
    except _OutOfTime:
        return (
            "a view or generated column the query reads was not measured yet: the database's stored definitions "
            f"take more than {VIEW_WORK_SECONDS:g} s to parse and measure (the service goes on at the next "
            "preflight)"
        )
    except RecursionError:
        return "a view or generated column the query reads is nested too deeply for the service to check"
    finally:
        if memo is None and _MEMO.size() > MEMO_MAX_ENTRIES:
            with _MEMO_LOCK:
                _MEMO.prune(set())


def _reach(query: CatalogQuery, statement: str, max_constant_bytes: int, work: _Work) -> str | None:
    callers: list[tuple[str, frozenset[str]]] = [("", frozenset(_calls(statement)))]
    stored: list[_Stored] = []
    query_tree = sqlglot.parse_one(statement, read="duckdb")
    wanted_next = table_names(query_tree)
    views: dict[tuple[str, str], _Stored] = {}
    seen: set[str] = set()
    for _ in range(MAX_VIEW_DEPTH + 1):  # the query's level, then a level of views each
        wanted = wanted_next - seen
        wanted_next = set()
        if not wanted:
            break
        seen |= wanted
        rows = query(
            f"SELECT view_oid, schema_name, view_name, {SYSTEM}left(sql, {VIEW_DEFINITION_MAX + 1}) "
            f"FROM {SYSTEM}duckdb_views() "
            f"WHERE NOT internal AND {SYSTEM}lower(view_name) IN ({_literals(wanted)})"
        )
        found = False
        for oid, schema, name, sql in rows:
            where = f"view {schema}.{name}"
            text = str(sql)
            key = (int(oid), _digest(text))
            facts = work.facts(key, text)
            if isinstance(facts, str):
                return f"{where} has a definition the service cannot check: {facts}"
            entry = _Stored(where, key, text, facts, (str(schema), str(name).lower()))
            callers.append((where, facts.calls))
            stored.append(entry)
            views[entry.view] = entry  # type: ignore[index]
            wanted_next |= facts.reads
            found = True
        if not found:
            break  # what this level reads are tables (or nothing known)
    else:
        return f"views nested more than {MAX_VIEW_DEPTH} levels deep cannot be checked"
    generated: dict[str, Constant] = {}  # the constant generated columns of the tables read, by name
    if seen:
        rows = query(
            f"SELECT table_oid, schema_name, table_name, column_name, "
            f"{SYSTEM}left(generation_expression, {VIEW_DEFINITION_MAX + 1}) FROM {SYSTEM}duckdb_columns() "
            f"WHERE is_generated AND {SYSTEM}lower(table_name) IN ({_literals(seen)})"
        )
        for oid, schema, table, column, expression in rows:
            where = f"generated column {schema}.{table}.{column}"
            text = f"SELECT {expression}"
            key = (int(oid), _digest(str(column), text))
            facts = work.facts(key, text)
            if isinstance(facts, str):
                return f"{where} has an expression the service cannot check: {facts}"
            entry = _Stored(where, key, text, facts, None, str(column))
            stored.append(entry)
            callers.append((where, facts.calls))
            generated = merge_outputs(generated, work.outputs(entry, {}))
    problem = _macro_problem(query, callers)
    if problem is not None:
        return problem
    seeds = _view_seeds(views, generated, work)
    constant_bytes = 0
    for entry in stored:
        if entry.facts.problem is not None:
            return f"{entry.where} reads outside the database: {entry.facts.problem}"
        seed = seeds[entry.view][0] if entry.view in seeds else generated
        constant_bytes += work.measured(entry, seed)
        if constant_bytes > max_constant_bytes:
            return (
                f"{entry.where} (with the other views and generated columns the query reads) would make DuckDB "
                f"build {constant_bytes:,} bytes of constants while planning, over the limit of "
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
    views: dict[tuple[str, str], _Stored], generated: dict[str, Constant], work: _Work
) -> dict[tuple[str, str] | None, tuple[dict[str, Constant], dict[str, Constant]]]:
    """Per view (by (schema, lower-case name)): the constant columns its definition may read, by name (those of the
    views it reads, transitively, matched by name in every schema, and of the generated columns of the tables
    read), and its own, which a reader of the view sees (an alias its select list reads back,
    ``SELECT 100000007 AS n, repeat('x', n)``, is followed by the measure itself)."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in views:
        by_name.setdefault(key[1], []).append(key)
    reads = {key: [k for n in entry.facts.reads for k in by_name.get(n, ())] for key, entry in views.items()}
    settled = settle_view_outputs(
        reads, lambda key, seed: work.outputs(views[key], merge_outputs(seed, generated))
    )
    return {key: (merge_outputs(seed, generated), own) for key, (seed, own) in settled.items()}


def _macro_problem(query: CatalogQuery, callers: list[tuple[str, frozenset[str]]]) -> str | None:
    """Say which macro of the database the query, a view or a generated column calls, or None."""
    names = set().union(*(called for _, called in callers))
    if not names:
        return None
    rows = query(
        f"SELECT DISTINCT function_name, function_type FROM {SYSTEM}duckdb_functions() "
        f"WHERE NOT internal AND {SYSTEM}lower(function_name) IN ({_literals(names)})"
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
