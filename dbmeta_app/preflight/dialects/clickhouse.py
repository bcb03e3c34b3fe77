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

import hashlib
import itertools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import TokenType

from dbmeta_app.preflight.reach import called_names
from dbmeta_app.preflight.view_memo import VIEW_WORK_SECONDS, ViewMemo, WorkClock, paren_depth
from dbmeta_app.schema.introspect.clickhouse import (
    STORAGE_POLICIES_SQL,
    ddl_tokens,
    is_local_engine,
    local_storage_policies,
    quote_literal,
    top_level,
)

log = logging.getLogger(__name__)

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


#: How many levels of views (a view reading a view …) are followed before giving up.
MAX_VIEW_DEPTH: Final = 8
#: A stored definition (a view's query, a column's expression, a dictionary's source query) longer than this is not
#: parsed: a query reading it is refused (parsing is Python work in the service: a 3.9 MB view took 34 s and
#: 1.6 GB on DuckDB). The caller's own SQL has the same bound (preflight.max_length's default).
MAX_VIEW_DEFINITION_CHARS: Final = 100_000
#: A stored definition nested deeper than this (parentheses) is not parsed: refused (the parser recurses).
MAX_STORED_DEPTH: Final = 100
#: The memo of checked definitions is emptied when it holds more entries than this.
MEMO_MAX_ENTRIES: Final = 20_000
#: A preflight never loads a dictionary: one that is not loaded (``system.dictionaries.status``) is refused, whatever
#: its source. The loader runs outside the statement's limits (max_memory_usage does not apply to it), and no size
#: the catalog tells bounds a load (a LowCardinality column is stored once per part, an ALIAS one not at all: a
#: "5 KB" table loaded 2.5 GB). A dictionary the operator loaded (``SYSTEM RELOAD DICTIONARY``) is used.
#: What a CLICKHOUSE dictionary source may say: what it reads of this server. Anything else (HOST, PORT, USER,
#: PASSWORD, SECURE, NAME of a named collection, …) may point it at another server.
_LOCAL_SOURCE_KEYS: Final = frozenset(
    {"TABLE", "DB", "QUERY", "WHERE", "INVALIDATE_QUERY", "UPDATE_FIELD", "UPDATE_LAG"}
)
_LOADED: Final = frozenset({"LOADED", "LOADED_AND_RELOADING"})

#: Runs one catalog query (the service appends its limits) and returns its rows.
CatalogQuery = Callable[[str], list[tuple[Any, ...]]]

#: What checking stored definitions found, by (0, digest of the text): shared by every ClickHouse profile (an entry
#: depends only on the text it was derived from; names it leaves unqualified are resolved where it is read).
_MEMO = ViewMemo()
_MEMO_LOCK = threading.Lock()


#: Functions whose first argument names a table (``joinGet('db.t', 'v', key)``; as a name it is a column node).
_TABLE_ARGUMENT_FUNCTIONS: Final = frozenset({"joinget", "joingetornull"})


def table_references(tree: exp.Expr) -> set[tuple[str | None, str]]:
    """The (database or None, name) of every table a query may read by name: a superset, fail closed.

    A name a CTE also has is kept: the body of a non-recursive CTE ``WITH v AS (SELECT * FROM v)`` reads the
    table or view ``v``, not itself (looking up a name that is only a CTE finds nothing).

    Besides the FROM items (``exp.Table``), ClickHouse reads a table named elsewhere: ``x IN db.t`` (also ``NOT
    IN``, ``GLOBAL IN``, ``IN (db.t)``; sqlglot parses the name as a column) builds its set from the table, and a
    scalar subquery builds it while planning; ``joinGet('db.t', …)`` reads a Join table. So every name of the
    statement counts: each part of a column reference (``a.b.c``: ``a``, ``b``, ``c`` unqualified) and each
    adjacent pair (``a.b``, ``b.c`` as database.table), every identifier and every bare word; and the first
    argument of :data:`_TABLE_ARGUMENT_FUNCTIONS` when it is a string. A name that is no relation of the catalog
    is dropped by the catalog query; a column named like a relation makes the check follow that relation too
    (a local table passes; one the service refuses refuses the query: rename or drop the relation).
    """
    out: set[tuple[str | None, str]] = set()
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier):
            out.add((table.db or None, table.name))
    for column in tree.find_all(exp.Column):
        parts = [part.name for part in column.parts if part.name]
        out.update((None, part) for part in parts)
        out.update(itertools.pairwise(parts))
    for node in tree.find_all(exp.Identifier, exp.Var):
        if node.name:
            out.add((None, node.name))
    for call in tree.find_all(exp.Anonymous):
        if call.name.lower() in _TABLE_ARGUMENT_FUNCTIONS and call.expressions:
            first = call.expressions[0]
            if isinstance(first, exp.Literal) and first.is_string:
                database, _, name = first.name.rpartition(".")
                out.add((database or None, name))
    return out


def _literals(values: set[str]) -> str:
    return ", ".join(quote_literal(v) for v in sorted(values))


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the reach check needs of one query text, derived once from its parse tree (memoised, no tree kept)."""

    problem: str | None  # what the guard rules (tree_problem) say of it
    refs: frozenset[tuple[str | None, str]]  # the tables it reads by name
    dictionaries: frozenset[str] | None  # the dictionaries its dict*() calls name (None: not by literals)
    calls: frozenset[str]  # the names it calls, as written

    @classmethod
    def of(cls, tree: exp.Expr, text: str) -> _Facts:
        names = dictionaries_used(tree)
        return cls(
            problem=tree_problem(tree),
            refs=frozenset(table_references(tree)),
            dictionaries=None if names is None else frozenset(names),
            calls=frozenset(_calls(text)),
        )

    @classmethod
    def reading(cls, database: str | None, table: str) -> _Facts:
        return cls(None, frozenset({(database, table)}), frozenset(), frozenset())


class _OutOfTime(Exception):
    """The stored-definition work of one check used up its time (VIEW_WORK_SECONDS)."""


class _Work:
    """The parse work of one check on stored text: memoised in a ViewMemo, charged to one WorkClock."""

    def __init__(self, memo: ViewMemo, seconds: float) -> None:
        self.memo = memo
        self.clock = WorkClock(seconds)

    def facts(self, text: str) -> _Facts | str:
        """The text's facts, or why it cannot be checked (too long, too deep, not parsed); raises _OutOfTime."""
        key = (0, hashlib.sha256(text.encode()).hexdigest())
        known = self.memo.facts.get(key)
        if known is not None:
            return known  # type: ignore[no-any-return]
        error = self.memo.errors.get(key)
        if error is not None:
            return error
        if len(text) > MAX_VIEW_DEFINITION_CHARS:
            return f"{len(text):,} characters long, over the {MAX_VIEW_DEFINITION_CHARS:,} the service parses"
        if paren_depth(text) > MAX_STORED_DEPTH:
            return f"nested more than {MAX_STORED_DEPTH} levels deep, more than the service parses"
        if not self.clock.allows():
            raise _OutOfTime
        try:
            found: _Facts | str = _Facts.of(sqlglot.parse_one(text, read="clickhouse"), text)
        except (SqlglotError, RecursionError, ValueError) as exc:
            log.warning(
                "Could not parse a stored ClickHouse definition (%s): a query reading it is refused",
                type(exc).__name__,
            )
            found = f"the parser failed: {type(exc).__name__}"
        with _MEMO_LOCK:
            if self.memo.size() > MEMO_MAX_ENTRIES:
                self.memo.prune(set())
            if isinstance(found, str):
                self.memo.errors[key] = found
            else:
                self.memo.facts[key] = found
        return found


def _stored_problem(where: str, found: _Facts | str, what: str = "a definition") -> str | None:
    """Why stored text (a view's definition, a column's expression, a dictionary's query) is refused, or None."""
    if isinstance(found, str):
        return f"{where} has {what} the service cannot check ({found}): a query reading it is refused"
    if found.problem is not None:
        return f"{where} reads outside the database: {found.problem}"
    return None


def reach_problem(
    query: CatalogQuery,
    statement: str,
    *,
    memo: ViewMemo | None = None,
    view_seconds: float = VIEW_WORK_SECONDS,
) -> str | None:
    """Follow what a guarded query reads through the catalog and say why it reaches outside the database, or None.

    Planning a ClickHouse query opens what it reads: a table's storage (an S3, URL, MySQL or Distributed
    table lists or connects; a MergeTree on a web, S3, Azure or HDFS disk reads it), a view's query, a
    materialized view's target, a dictionary's source (constant folding may load it). Tables must have a local
    engine on local disks; views are followed through their queries (which pass the same guard rules),
    materialized views to their targets (as the catalog names them); dictionaries must read this server only,
    and what their source reads (a table, a query) is followed like a view. A dictionary not loaded yet must be
    one that is already loaded: a preflight never starts a load. Unknown tables are left to the EXPLAIN to
    report. The expressions of the columns of the tables read (ALIAS columns are expanded into the query and
    folded while planning) must pass the same rules. A call of a user-defined function, by the query, a view it
    reads, a dictionary source or a column expression, is refused (the function is named): what it runs is
    stored in the database, which the service does not trust.

    Stored text (views, column expressions, dictionary queries) is parsed at most once per text (``memo``,
    by default one shared by the process), only when at most :data:`MAX_VIEW_DEFINITION_CHARS` long, and
    within ``view_seconds`` per check: what is left over is refused, and checked by a later preflight.
    """
    work = _Work(_MEMO if memo is None else memo, view_seconds)
    try:
        return _reach_problem(query, statement, work)
    except _OutOfTime:
        return (
            f"a definition the query reads could not be checked in time (the service spends at most "
            f"{view_seconds:g} s per preflight on them; what was checked is kept: try again)"
        )


def _reach_problem(query: CatalogQuery, statement: str, work: _Work) -> str | None:
    current = str(query("SELECT currentDatabase()")[0][0])
    try:
        top = _Facts.of(sqlglot.parse_one(statement, read="clickhouse"), statement)
    except (SqlglotError, RecursionError, ValueError):
        return "the query could not be parsed"
    # (facts, database its unqualified names are in, how many views deep)
    items: list[tuple[_Facts, str, int]] = [(top, current, 0)]
    #: Who calls what: ("", names) for the query, ("view db.v", names), ("column db.t.c", names), …
    callers: list[tuple[str, set[str]]] = [("", set(top.calls))]
    seen: set[str] = set()
    seen_dictionaries: set[str] = set()
    pending: dict[str, int] = {}  # dictionaries read as tables (Dictionary engine), for the next round
    local: dict[str, str] = {}  # local tables read: their storage policy
    while items or pending:
        wanted: dict[str, int] = {}
        dictionaries: dict[str, int] = dict(pending)
        pending = {}
        for facts, database, depth in items:
            if facts.dictionaries is None:
                return "the dictionary a dict*() function reads must be named by a string literal"
            for name in facts.dictionaries:
                dictionaries.setdefault(name if "." in name else f"{database}.{name}", depth)
            for db, name in facts.refs:
                wanted.setdefault(f"{db or database}.{name}", depth)
        items = []
        wanted = {k: v for k, v in wanted.items() if k not in seen}
        dictionaries = {k: v for k, v in dictionaries.items() if k not in seen_dictionaries}
        seen |= set(wanted)
        seen_dictionaries |= set(dictionaries)
        if dictionaries:
            problem = _dictionary_problem(query, dictionaries, current, work, items, callers)
            if problem is not None:
                return problem
        if not wanted:
            continue
        rows = query(
            "SELECT database, name, engine, create_table_query, as_select, storage_policy FROM system.tables "
            f"WHERE database IN ({_literals({k.split('.', 1)[0] for k in wanted})}) "
            f"AND name IN ({_literals({k.split('.', 1)[1] for k in wanted})})"
        )
        views: list[str] = []
        found_tables: set[str] = set()
        for database, name, engine, _create, as_select, policy in rows:
            key = f"{database}.{name}"
            if key not in wanted:
                continue
            depth = wanted[key]
            if engine == "View":
                if depth >= MAX_VIEW_DEPTH:
                    return f"views nested more than {MAX_VIEW_DEPTH} levels deep cannot be checked"
                found = work.facts(str(as_select))
                problem = _stored_problem(f"view {key}", found)
                if problem is not None:
                    return problem
                assert isinstance(found, _Facts)
                items.append((found, str(database), depth + 1))
                callers.append((f"view {key}", set(found.calls)))
            elif engine == "MaterializedView":
                views.append(key)
            elif engine == "Dictionary":
                pending.setdefault(key, depth)
            elif str(engine).startswith("System"):
                # a catalog table: the guard admits only the allow-listed ones in FROM; a name elsewhere
                # (``x IN system.users``) is held to the same list
                if str(database).lower() == "system" and str(name).lower() not in SAFE_SYSTEM_TABLES:
                    return (
                        f"system.{name} is not allowed in a preflight query (system tables other than the "
                        "catalog ones expose users, grants, settings or other sessions' queries)"
                    )
                continue
            elif not is_local_engine(str(engine)):
                return f"table {key} uses the {engine} engine, which reads outside the database"
            else:
                local[key] = str(policy or "")
                found_tables.add(key)
        if views:
            problem = _target_problem(query, views, wanted, items)
            if problem is not None:
                return problem
        if found_tables:
            problem = _column_problem(query, found_tables, work, items, callers, wanted)
            if problem is not None:
                return problem
    problem = _disk_problem(query, local)
    if problem is not None:
        return problem
    return _user_defined_problem(query, callers)


def _target_problem(
    query: CatalogQuery, views: list[str], depths: dict[str, int], items: list[tuple[_Facts, str, int]]
) -> str | None:
    """Follow materialized views to the table they write to, as the catalog names it (never from their DDL's text:
    a name with `` TO `` or `` AS `` in it would fool a reading of it); refuse one whose target is not known."""
    rows = query(
        "SELECT database, name, target_database, target_table FROM system.tables WHERE engine = 'MaterializedView' "
        f"AND database IN ({_literals({k.split('.', 1)[0] for k in views})}) "
        f"AND name IN ({_literals({k.split('.', 1)[1] for k in views})})"
    )
    targets = {f"{r[0]}.{r[1]}": (str(r[2] or ""), str(r[3] or "")) for r in rows}
    for key in views:
        database, table = targets.get(key, ("", ""))
        if not database or not table:
            return f"materialized view {key}: the table it writes to could not be determined"
        items.append((_Facts.reading(database, table), database, depths[key]))
    return None


def _column_problem(
    query: CatalogQuery,
    tables: set[str],
    work: _Work,
    items: list[tuple[_Facts, str, int]],
    callers: list[tuple[str, set[str]]],
    depths: dict[str, int],
) -> str | None:
    """Check the expressions of the columns of the tables read (ALIAS, DEFAULT, MATERIALIZED): they pass the guard
    rules, their calls are noted and what they read (dictionaries, tables) is followed."""
    rows = query(
        "SELECT database, table, name, default_expression FROM system.columns "
        f"WHERE database IN ({_literals({t.split('.', 1)[0] for t in tables})}) "
        f"AND table IN ({_literals({t.split('.', 1)[1] for t in tables})}) AND default_expression != ''"
    )
    for database, table, name, expression in rows:
        key = f"{database}.{table}"
        if key not in tables:
            continue
        where = f"column {key}.{name}"
        found = work.facts(f"SELECT {expression}")
        problem = _stored_problem(where, found, "an expression")
        if problem is not None:
            return problem
        assert isinstance(found, _Facts)
        callers.append((where, set(found.calls)))
        items.append((found, str(database), depths[key]))
    return None


def _disk_problem(query: CatalogQuery, tables: dict[str, str]) -> str | None:
    """Refuse a table whose storage policy puts data on a disk that is not local (web, S3, Azure, HDFS, a cache
    or an encrypted disk over one): reading its parts reads the network."""
    policies = {policy for policy in tables.values() if policy}
    if not policies:
        return None
    allowed = local_storage_policies(query(STORAGE_POLICIES_SQL))
    for key in sorted(tables):
        policy = tables[key]
        if policy and policy not in allowed:
            return f"table {key} is not on a local disk (storage policy {policy}): reading it reads outside the database"
    return None


def dictionary_source(create_table_query: str) -> tuple[str, list[tuple[str, str]]] | None:
    """The kind and the (KEY, value) arguments of a dictionary's ``SOURCE(KIND(KEY value …))``, read from its DDL
    by tokens (string literals respected: a ``)`` inside the QUERY ends nothing); None when it cannot be read."""
    return _dictionary_clause(create_table_query, "SOURCE")


def dictionary_layout(create_table_query: str) -> str | None:
    """The kind of a dictionary's ``LAYOUT(KIND(…))`` (``HASHED``, ``DIRECT``, ``CACHE`` …), or None."""
    found = _dictionary_clause(create_table_query, "LAYOUT")
    return found[0] if found is not None else None


def _dictionary_clause(create_table_query: str, clause: str) -> tuple[str, list[tuple[str, str]]] | None:
    tokens = ddl_tokens(create_table_query)
    if tokens is None:
        return None
    for i in top_level(tokens):
        if tokens[i].text.upper() == clause:
            rest = tokens[i + 1 :]
            if (
                len(rest) < 4
                or rest[0].token_type != TokenType.L_PAREN
                or rest[2].token_type != TokenType.L_PAREN
            ):
                return None
            kind = rest[1].text.upper()
            args: list[tuple[str, str]] = []
            j = 3
            while j + 1 < len(rest) and rest[j].token_type != TokenType.R_PAREN:
                key, value = rest[j], rest[j + 1]
                if value.token_type in (TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA):
                    return None  # a structured value (or a key alone): not read, refused
                args.append((key.text.upper(), value.text))
                j += 2
            if j >= len(rest) or rest[j].token_type != TokenType.R_PAREN:
                return None
            if j + 1 >= len(rest) or rest[j + 1].token_type != TokenType.R_PAREN:
                return None
            return kind, args
    return None


def _dictionary_problem(
    query: CatalogQuery,
    dictionaries: dict[str, int],
    current: str,
    work: _Work,
    items: list[tuple[_Facts, str, int]],
    callers: list[tuple[str, set[str]]],
) -> str | None:
    """Check the sources of the dictionaries a query reads (qualified names) and follow what they read.

    Loading a dictionary reads its source: another ClickHouse server, MySQL, PostgreSQL, HTTP, a file or an
    executable, or a query or table of this server, which is followed like a view (what a QUERY, WHERE or
    INVALIDATE_QUERY reads, the TABLE's engine, disks and column expressions). A dictionary that is not loaded
    (or whose layout reads its source on every lookup: DIRECT, CACHE) is refused: a preflight never loads one."""
    rows = query(
        "SELECT database, name, create_table_query FROM system.tables WHERE engine = 'Dictionary' AND "
        f"database IN ({_literals({d.split('.', 1)[0] for d in dictionaries})}) "
        f"AND name IN ({_literals({d.split('.', 1)[1] for d in dictionaries})})"
    )
    creates = {f"{r[0]}.{r[1]}": str(r[2]) for r in rows}
    remote = []
    unloaded: list[str] = []
    status = _dictionary_status(query, set(dictionaries) & set(creates))
    for key in sorted(dictionaries):
        depth = dictionaries[key]
        database = key.split(".", 1)[0]
        if key not in creates:
            remote.append(f"{key} (not a dictionary of this database)")
            continue
        source = dictionary_source(creates[key])
        if source is None:
            remote.append(f"{key} (its source could not be read)")
            continue
        kind, args = source
        keys = [k for k, _ in args]
        other = [k for k in dict.fromkeys(keys) if k not in _LOCAL_SOURCE_KEYS]
        if kind != "CLICKHOUSE":
            remote.append(f"{key} (source {kind})")
            continue
        if other:
            remote.append(f"{key} (source CLICKHOUSE with {', '.join(other)})")
            continue
        values = dict(args)
        layout = dictionary_layout(creates[key])
        # A DIRECT or CACHE layout reads its source on every lookup (loaded or not); a layout not read: the same.
        in_memory = layout is not None and "DIRECT" not in layout and "CACHE" not in layout
        loaded = in_memory and status.get(key) in _LOADED
        if len(values) != len(args) or ("QUERY" in values) == ("TABLE" in values):
            remote.append(f"{key} (source CLICKHOUSE without exactly one TABLE or QUERY)")
            continue
        # Unqualified names: the loader's database is the dictionary's or the current one; follow both.
        homes = {database, current}
        where = f"dictionary {key}"
        texts = [values[k] for k in ("QUERY", "INVALIDATE_QUERY") if k in values]
        if "WHERE" in values:
            texts.append(f"SELECT 1 WHERE {values['WHERE']}")
        for text in texts:
            found = work.facts(text)
            problem = _stored_problem(f"{where}'s source", found)
            if problem is not None:
                return problem
            assert isinstance(found, _Facts)
            callers.append((where, set(found.calls)))
            items.extend((found, home, depth) for home in sorted(homes))
        if "TABLE" in values:
            tables = (
                {f"{values['DB']}.{values['TABLE']}"}
                if "DB" in values
                else {f"{h}.{values['TABLE']}" for h in homes}
            )
            items.extend((_Facts.reading(*t.split(".", 1)), current, depth) for t in sorted(tables))
        if not loaded:
            unloaded.append(f"dictionary {key} {_not_loaded(status.get(key), layout, in_memory)}")
    if remote:
        return "the query reads dictionaries whose source is outside the database: " + ", ".join(remote)
    if unloaded:
        return (
            f"{unloaded[0]}: a preflight never loads a dictionary (the loader ignores the query limits, and the "
            "catalog does not bound what a load costs); an operator may load it (SYSTEM RELOAD DICTIONARY)"
        )
    return None


def _dictionary_status(query: CatalogQuery, keys: set[str]) -> dict[str, str]:
    if not keys:
        return {}
    rows = query(
        "SELECT database, name, toString(status) FROM system.dictionaries WHERE "
        f"database IN ({_literals({d.split('.', 1)[0] for d in keys})}) "
        f"AND name IN ({_literals({d.split('.', 1)[1] for d in keys})})"
    )
    return {f"{r[0]}.{r[1]}": str(r[2]) for r in rows}


def _not_loaded(status: str | None, layout: str | None, in_memory: bool) -> str:
    if in_memory:
        return f"is not loaded (status {status or 'unknown'})"
    return f"has a {layout or 'unreadable'} layout, which reads its source on every lookup"


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
            if name in _TABLE_ARGUMENT_FUNCTIONS and not _names_a_table(node):
                return f"the table {node.name}() reads must be named by a string literal or a name"
    return None


def _names_a_table(call: exp.Func) -> bool:
    first = call.expressions[0] if call.expressions else None
    return isinstance(first, exp.Column) or (isinstance(first, exp.Literal) and first.is_string)


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
