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

Before planning, :func:`reach_problem` follows what the query reads through the catalog (table engines, views,
materialized views, dictionaries, column expressions) and refuses any call of a user-defined function (SQL,
executable or WebAssembly): a routine stored in the database is not known to be safe. Every statement the
service runs on ClickHouse carries the limits of :func:`dbmeta_app.db.session.clickhouse_limits`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmeta_app.preflight.reach import called_names
from dbmeta_app.schema.introspect.clickhouse import is_local_engine, materialized_view_target, quote_literal

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
#: ``file`` is also on the guard's common list; it is here too so that views and column expressions, which
#: only these rules check, cannot call it.
DENIED_FUNCTIONS: Final = frozenset({"catboostevaluate", "modelevaluate", "getenv", "file"})

_PATHLIKE: Final = re.compile(r"[./\\:*?]")


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


#: A dictionary's source: SOURCE(KIND(args)).
_SOURCE: Final = re.compile(r"\bSOURCE\s*\(\s*(\w+)\s*\(([^)]*)\)", re.I)
_REMOTE_ARGS: Final = re.compile(r"\b(HOST|PORT|USER|PASSWORD|SECURE)\b", re.I)
#: How many levels of views (a view reading a view …) are followed before giving up.
MAX_VIEW_DEPTH: Final = 8

#: Runs one catalog query (the service appends its limits) and returns its rows.
CatalogQuery = Callable[[str], list[tuple[Any, ...]]]


def table_references(tree: exp.Expr) -> set[tuple[str | None, str]]:
    """The (database or None, name) of every table a query reads by name.

    A name a CTE also has is kept: the body of a non-recursive CTE ``WITH v AS (SELECT * FROM v)`` reads the
    table or view ``v``, not itself (looking up a name that is only a CTE finds nothing).
    """
    out = set()
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier):
            out.add((table.db or None, table.name))
    return out


def _literals(values: set[str]) -> str:
    return ", ".join(quote_literal(v) for v in sorted(values))


def reach_problem(query: CatalogQuery, statement: str) -> str | None:
    """Follow what a guarded query reads through the catalog and say why it reaches outside the database, or None.

    Planning a ClickHouse query opens what it reads: a table's storage (an S3, URL, MySQL or Distributed
    table lists or connects), a view's query, a materialized view's target, a dictionary's source (constant
    folding may load it). Tables must have a local engine; views are followed through their queries (which
    pass the same guard rules), materialized views to their targets; dictionaries must read a table of this
    server. Unknown tables are left to the EXPLAIN to report. The expressions of the columns of the tables read
    (ALIAS columns are expanded into the query and folded while planning) must pass the same rules. A call of a
    user-defined function, by the query, a view it reads or a column expression, is refused (the function is
    named): what it runs is stored in the database, which the service does not trust.
    """
    current = str(query("SELECT currentDatabase()")[0][0])
    trees: list[tuple[exp.Expr, str]] = [(sqlglot.parse_one(statement, read="clickhouse"), current)]
    seen: set[str] = set()
    dictionaries: set[str] = set()
    #: Who calls what: ("", names) for the query, ("view db.v", names), ("column db.t.c", names).
    callers: list[tuple[str, set[str]]] = [("", _calls(statement))]
    tables: set[str] = set()
    # The query's level, then a level of views each (8 levels: a chain of 8 views is followed to the table it
    # reads, a chain of 9 is refused; as on DuckDB).
    for _ in range(MAX_VIEW_DEPTH + 1):
        wanted: set[str] = set()
        for tree, database in trees:
            names = dictionaries_used(tree)
            if names is None:
                return "the dictionary a dict*() function reads must be named by a string literal"
            dictionaries |= {n if "." in n else f"{database}.{n}" for n in names}
            wanted |= {f"{db or database}.{name}" for db, name in table_references(tree)}
        wanted -= seen
        trees = []
        if not wanted:
            break
        seen |= wanted
        databases = {key.split(".", 1)[0] for key in wanted}
        names = {key.split(".", 1)[1] for key in wanted}
        rows = query(
            "SELECT database, name, engine, create_table_query, as_select FROM system.tables "
            f"WHERE database IN ({_literals(databases)}) AND name IN ({_literals(names)})"
        )
        for database, name, engine, create, as_select in rows:
            key = f"{database}.{name}"
            if key not in wanted:
                continue
            if engine == "View":
                view = sqlglot.parse_one(str(as_select), read="clickhouse")
                problem = tree_problem(view)
                if problem is not None:
                    return f"view {key} reads outside the database: {problem}"
                trees.append((view, str(database)))
                callers.append((f"view {key}", _calls(str(as_select))))
            elif engine == "MaterializedView":
                target = materialized_view_target(str(create))
                if target is not None:  # else its inner table, a MergeTree of this database
                    db, _, table = target.rpartition(".")
                    trees.append((exp.select("*").from_(exp.table_(table, db=db or str(database))), current))
            elif engine == "Dictionary":
                dictionaries.add(key)
            elif str(engine).startswith("System"):
                continue  # a catalog table: the guard admits only the allow-listed ones
            elif not is_local_engine(str(engine)):
                return f"table {key} uses the {engine} engine, which reads outside the database"
            else:
                tables.add(key)
        if not trees:
            break  # what this level reads are tables (or nothing known)
    else:
        return f"views nested more than {MAX_VIEW_DEPTH} levels deep cannot be checked"
    if tables:
        problem = _column_problem(query, tables, callers)
        if problem is not None:
            return problem
    problem = _user_defined_problem(query, callers)
    if problem is not None:
        return problem
    if dictionaries:
        rows = query(
            "SELECT database, name, create_table_query FROM system.tables WHERE engine = 'Dictionary' AND "
            f"database IN ({_literals({d.split('.', 1)[0] for d in dictionaries})})"
        )
        remote = remote_dictionaries(dictionaries, [(str(r[0]), str(r[1]), str(r[2])) for r in rows])
        if remote:
            return "the query reads dictionaries whose source is outside the database: " + ", ".join(remote)
    return None


def _column_problem(query: CatalogQuery, tables: set[str], callers: list[tuple[str, set[str]]]) -> str | None:
    """Check the expressions of the columns of the tables read (ALIAS, DEFAULT, MATERIALIZED); note their calls."""
    rows = query(
        "SELECT database, table, name, default_expression FROM system.columns "
        f"WHERE database IN ({_literals({t.split('.', 1)[0] for t in tables})}) "
        f"AND table IN ({_literals({t.split('.', 1)[1] for t in tables})}) AND default_expression != ''"
    )
    for database, table, name, expression in rows:
        if f"{database}.{table}" not in tables:
            continue
        where = f"column {database}.{table}.{name}"
        text = f"SELECT {expression}"
        try:
            problem = tree_problem(sqlglot.parse_one(text, read="clickhouse"))
            callers.append((where, _calls(text)))
        except SqlglotError:
            return f"{where} has an expression the service cannot check"
        if problem is not None:
            return f"{where} reads outside the database: {problem}"
    return None


def _user_defined_problem(query: CatalogQuery, callers: list[tuple[str, set[str]]]) -> str | None:
    """Say which user-defined function the query, a view or a column expression calls, or None.

    Names are compared as ClickHouse resolves them: exactly (a UDF's name is case-sensitive, and a UDF spelled
    ``Lower`` takes ``Lower(x)`` from the case-insensitive built-in).
    """
    names = set().union(*(called for _, called in callers))
    if not names:
        return None
    rows = query(
        f"SELECT name FROM system.functions WHERE origin != 'System' AND name IN ({_literals(names)})"
    )
    user_defined = {str(row[0]) for row in rows}
    for where, called in callers:
        for name in sorted(called & user_defined):
            verb = (
                f"{where} calls user-defined function {name}(), which is"
                if where
                else (f"user-defined function {name}() is")
            )
            return f"{verb} not allowed in a preflight query: the service cannot vouch for what it runs"
    return None


def remote_dictionaries(names: set[str], rows: list[tuple[str, str, str]]) -> list[str]:
    """Of the dictionaries a query reads (qualified names), those whose source is outside the database.

    ``rows`` are (database, name, create_table_query) of dictionaries in the catalog. Loading a dictionary reads
    its source: another ClickHouse server, MySQL, PostgreSQL, HTTP, a file or an executable.
    """
    sources = {f"{database}.{name}": create for database, name, create in rows}
    out = []
    for name in sorted(names):
        found = _SOURCE.search(sources.get(name, ""))
        if found is None:
            out.append(f"{name} (not a dictionary of this database)")
        elif found.group(1).upper() != "CLICKHOUSE" or _REMOTE_ARGS.search(found.group(2)):
            out.append(f"{name} (source {found.group(1).upper()})")
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


def _calls(sql: str) -> set[str]:
    return called_names(sql, "clickhouse", fold_case=False)
