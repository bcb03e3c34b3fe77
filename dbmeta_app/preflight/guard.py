"""Decide whether LLM-written SQL is exactly one read-only query that is safe to wrap in EXPLAIN.

Pure: no I/O. PostgreSQL is parsed with pglast (the server's own grammar), every other dialect with
sqlglot. An accepted query is re-serialised from the checked tree, re-parsed, checked again and compared
with the first tree, so the text that reaches the database is the text that was checked, never the raw
input. Deep trees (a 2,000-term expression, a 1,000-branch UNION) are serialised on a big-stack thread,
and the tree is measured against a complexity budget (:mod:`dbmeta_app.preflight.budget`) before anything
reaches a database. A refusal says why and of what kind: ``sql`` (invalid), ``unsafe`` or ``limit``.
"""

from __future__ import annotations

import itertools
import re
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pglast
import sqlglot
from pglast import ast as pg
from pglast.parser import ParseError as PgParseError
from pglast.stream import RawStream
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.errors import ParseError as GlotParseError
from sqlglot.generators.mysql import MySQLGenerator
from sqlglot.tokenizer_core import Token, TokenType

from dbmeta_app.dialects import dialect_family
from dbmeta_app.preflight.budget import Budget, Measures, measure_postgres, measure_sqlglot, over_budget
from dbmeta_app.preflight.dialects import clickhouse as clickhouse_rules
from dbmeta_app.preflight.dialects import duckdb as duckdb_rules
from dbmeta_app.preflight.dialects import mysql as mysql_rules
from dbmeta_app.preflight.reach import Reach, mysql_reach, postgres_reach

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "LIMIT",
    "OTHER_DENIED_FUNCTIONS",
    "OTHER_DENIED_PREFIXES",
    "POSTGRES_DENIED_FUNCTIONS",
    "POSTGRES_DENIED_PREFIXES",
    "SQL",
    "UNSAFE",
    "GuardVerdict",
    "MySQLFamily",
    "check_sql",
    "is_denied_function",
    "pg_walk",
    "sqlglot_dialect",
]

DEFAULT_MAX_LENGTH: Final = 100_000

#: Why a verdict is not ok: invalid SQL, SQL the service will not run, or SQL too big to plan safely.
SQL: Final = "sql"
UNSAFE: Final = "unsafe"
LIMIT: Final = "limit"

T = TypeVar("T")

# Functions that sleep, take locks, touch files or the network, write (sequences, settings, slots,
# large objects), signal other backends, or run SQL held in a string (query_to_xml, ts_stat), which a
# plan-time constant fold could execute. Names are compared schema-stripped and lower-cased.
POSTGRES_DENIED_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        "brin_desummarize_range",
        "brin_summarize_new_values",
        "brin_summarize_range",
        "currval",
        "gin_clean_pending_list",
        "lastval",
        "loread",
        "lowrite",
        "nextval",
        "pg_cancel_backend",
        "pg_current_xact_id",
        "pg_current_xact_id_if_assigned",
        "pg_export_snapshot",
        "pg_logdir_ls",
        "pg_notify",
        "pg_prewarm",
        "pg_promote",
        "pg_reload_conf",
        "pg_signal_backend",
        "pg_start_backup",
        "pg_stat_file",
        "pg_stat_statements_reset",
        "pg_stop_backup",
        "pg_sync_replication_slots",
        "pg_terminate_backend",
        "pg_truncate_visibility_map",
        "set_config",
        "setval",
        "ts_rewrite",
        "ts_stat",
    }
)
POSTGRES_DENIED_PREFIXES: Final[tuple[str, ...]] = (
    "binary_upgrade_",
    "cursor_to_xml",
    "database_to_xml",
    "dblink",
    "lo_",
    "pg_advisory",
    "pg_backup_",
    "pg_clear_",
    "pg_copy_",
    "pg_create_",
    "pg_drop_",
    "pg_file_",
    "pg_import_",
    "pg_log_",
    "pg_logical_",
    "pg_ls_",
    "pg_read_",
    "pg_replication_",
    "pg_restore_",
    "pg_rotate_",
    "pg_sleep",
    "pg_stat_reset",
    "pg_switch_",
    "pg_try_advisory",
    "pg_wait_",
    "pg_wal_replay_",
    "pg_xlog_replay_",
    "postgres_fdw_",
    "query_to_xml",
    "schema_to_xml",
    "table_to_xml",
    "txid_",
)
# MySQL/MariaDB, SQLite (and its common file/eval extensions), ClickHouse table functions that reach
# files, URLs or other servers, and generic command runners. MySQL evaluates constant subqueries
# while optimising, so these could run during a plain EXPLAIN.
OTHER_DENIED_FUNCTIONS: Final[frozenset[str]] = frozenset(
    {
        # MySQL / MariaDB
        "benchmark",
        "get_lock",
        "last_insert_id",
        "load_file",
        "master_gtid_wait",
        "master_pos_wait",
        "release_all_locks",
        "release_lock",
        "sleep",
        "source_pos_wait",
        "sys_bineval",
        "sys_eval",
        "sys_exec",
        "sys_get",
        "sys_set",
        "wait_for_executed_gtid_set",
        "wait_until_sql_thread_after_gtids",
        # SQLite and extensions
        "define",
        "edit",
        "eval",
        "fsdir",
        "fts3_tokenizer",
        "lines_read",
        "load_extension",
        "lsdir",
        "readfile",
        "undefine",
        "writefile",
        "zipfile",
        # ClickHouse
        "arrowflight",
        "cluster",
        "clusterallreplicas",
        "cosn",
        "dictionary",  # sqlglot reads dictionary('d') as a table named dictionary: refuse the name itself
        "file",
        "filecluster",
        "gcs",
        "input",
        "jdbc",
        "mongodb",
        "mysql",
        "odbc",
        "oss",
        "postgresql",
        "redis",
        "remote",
        "remotesecure",
        "sleepeachrow",
        "sqlite",
        "url",
        "urlcluster",
        "ytsaurus",
        # generic command runners / remote readers
        "exec",
        "execute",
        "opendatasource",
        "openquery",
        "openrowset",
        "shell",
        "system",
        "xp_cmdshell",
    }
)
OTHER_DENIED_PREFIXES: Final[tuple[str, ...]] = (
    "azureblobstorage",
    "deltalake",
    "executable",
    "fileio_",
    "hdfs",
    "hudi",
    "iceberg",
    "paimon",
    "s3",
)


class _MySQLFamilyGenerator(MySQLGenerator):
    """sqlglot's MySQL output, spelled so that MariaDB accepts it too."""

    def regexplike_sql(self, expression: exp.RegexpLike) -> str:
        """Write `x REGEXP y`: MariaDB has no REGEXP_LIKE()."""
        if expression.args.get("flag") is not None:
            return self.function_fallback_sql(expression)
        return self.binary(expression, "REGEXP")


class MySQLFamily(MySQL):
    """The sqlglot dialect for MySQL and MariaDB (SQLAlchemy reports both as "mysql")."""

    Generator = _MySQLFamilyGenerator


_GlotDialect = str | type[MySQLFamily] | None

_SQLGLOT_DIALECTS: Final[dict[str, _GlotDialect]] = {
    "mysql": MySQLFamily,
    "mariadb": MySQLFamily,
    "sqlite": "sqlite",
    "clickhouse": "clickhouse",
    "duckdb": "duckdb",
    "trino": "trino",
}
#: Rules of a dialect beyond the common ones (preflight/dialects/<family>.py): why a tree is refused, or None.
_DIALECT_RULES: Final[dict[str, Callable[[exp.Expr], str | None]]] = {
    "clickhouse": clickhouse_rules.tree_problem,
    "duckdb": duckdb_rules.tree_problem,
    "mysql": mysql_rules.tree_problem,
    "mariadb": mysql_rules.tree_problem,
}
_POSTGRES_NAMES: Final = frozenset({"postgresql", "postgres"})

# Characters that render as nothing or as a plain space but are not SQL whitespace to the server:
# they make the text a reviewer sees differ from the tokens the database reads.
_SUSPICIOUS_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})
_ASCII_CONTROL: Final = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_NON_ASCII: Final = re.compile(r"[^\x00-\x7f]")
_TOKEN_REPR: Final = re.compile(r"<Token token_type: [^,]+, text: ([^,]*),[^>]*>")
_CLASS_REPR: Final = re.compile(r"<class '(?:[\w]+\.)*(\w+)'>")

_PG_STATEMENT_REASONS: Final[dict[str, str]] = {
    "ExplainStmt": "EXPLAIN is added by the service; send only the bare query (no EXPLAIN/ANALYZE)",
    "TransactionStmt": "transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) is not allowed",
    "VariableSetStmt": "SET/RESET is not allowed",
    "VariableShowStmt": "SHOW is not allowed; query pg_settings instead",
    "DoStmt": "DO blocks are not allowed",
    "CallStmt": "CALL is not allowed",
    "CopyStmt": "COPY is not allowed",
    "PrepareStmt": "PREPARE is not allowed",
    "ExecuteStmt": "EXECUTE is not allowed",
    "DeallocateStmt": "DEALLOCATE is not allowed",
    "InsertStmt": "INSERT is not allowed; only read-only queries are",
    "UpdateStmt": "UPDATE is not allowed; only read-only queries are",
    "DeleteStmt": "DELETE is not allowed; only read-only queries are",
    "MergeStmt": "MERGE is not allowed; only read-only queries are",
    "CreateTableAsStmt": "CREATE TABLE AS / SELECT INTO is not allowed",
    "VacuumStmt": "VACUUM/ANALYZE is not allowed",
    "LockStmt": "LOCK is not allowed",
    "ListenStmt": "LISTEN is not allowed",
    "NotifyStmt": "NOTIFY is not allowed",
}
_PG_WRITE_NODES: Final[dict[type[pg.Node], str]] = {
    pg.InsertStmt: "INSERT",
    pg.UpdateStmt: "UPDATE",
    pg.DeleteStmt: "DELETE",
    pg.MergeStmt: "MERGE",
}


def _glot_classes(*names: str) -> tuple[type[exp.Expr], ...]:
    """Return the sqlglot expression classes of this sqlglot version among the given names."""
    found: list[type[exp.Expr]] = []
    for name in names:
        cls = getattr(exp, name, None)
        if isinstance(cls, type) and issubclass(cls, exp.Expr):
            found.append(cls)
    return tuple(found)


_GLOT_FORBIDDEN: Final = _glot_classes(
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "AlterTable",
    "Command",
    "Set",
    "Use",
    "Transaction",
    "Commit",
    "Rollback",
    "Copy",
    "LoadData",
    "TruncateTable",
    "Grant",
    "Revoke",
    "Pragma",
    "Attach",
    "Detach",
    "Describe",
    "Kill",
    "Execute",
    "Cache",
    "Uncache",
    "Refresh",
    "Analyze",
    "Show",
    "NextValueFor",
)
_GLOT_QUERY_ROOTS: Final = _glot_classes("Select", "SetOperation", "Union", "Intersect", "Except", "Values")
_GLOT_WRAPPERS: Final = _glot_classes("Subquery", "Paren")
_GLOT_VARIABLES: Final = _glot_classes("Parameter", "SessionParameter", "Placeholder")


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The outcome of checking one piece of SQL for the preflight."""

    ok: bool
    statement: str | None
    normalized: str
    reason: str | None = None
    position: int | None = None
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    kind: str | None = None  # SQL, UNSAFE or LIMIT when not ok
    measures: Measures | None = None  # the planning work the query asks for, when it could be measured
    #: What the accepted statement reaches by name (functions, operators, casts, relations), for the
    #: routine policy; None when refused, or for dialects without one.
    reach: Reach | None = None


def sqlglot_dialect(dialect: str) -> _GlotDialect:
    """Return the sqlglot dialect used for a SQLAlchemy dialect name (None: sqlglot's generic one)."""
    return _SQLGLOT_DIALECTS.get(dialect_family(dialect))


def is_denied_function(name: str, dialect: str) -> bool:
    """Tell whether a function name (any case, schema-qualified or not) is denied for a dialect."""
    bare = name.rsplit(".", 1)[-1].strip('"`[]').lower()
    dialect = dialect_family(dialect)
    if dialect in _POSTGRES_NAMES:
        names, prefixes = POSTGRES_DENIED_FUNCTIONS, POSTGRES_DENIED_PREFIXES
    else:
        # Other engines never define pg_* functions, so PostgreSQL's list only adds safety there.
        names = OTHER_DENIED_FUNCTIONS | POSTGRES_DENIED_FUNCTIONS
        prefixes = OTHER_DENIED_PREFIXES + POSTGRES_DENIED_PREFIXES
    return bare in names or bare.startswith(prefixes)


def check_sql(
    sql: str, dialect: str, *, max_length: int = DEFAULT_MAX_LENGTH, budget: Budget | None = None
) -> GuardVerdict:
    """Check that `sql` is exactly one read-only query within `budget` and return it re-serialised, or why not."""
    rejected = _precheck(sql, max_length)
    if rejected is not None:
        return rejected
    limits = budget if budget is not None else Budget()
    try:
        if dialect.lower() in _POSTGRES_NAMES:
            return _check_postgres(sql, limits)
        return _check_sqlglot(sql, dialect_family(dialect), limits)
    except RecursionError:
        return _too_deep(limits)
    except Exception as exc:  # noqa: BLE001 - fail closed: a parser bug must reject, never pass or crash
        return _reject(f"the query could not be checked ({type(exc).__name__} in the SQL parser)")


def _reject(
    reason: str,
    *,
    kind: str = UNSAFE,
    normalized: str = "",
    position: int | None = None,
    tables: tuple[str, ...] = (),
    columns: tuple[str, ...] = (),
    measures: Measures | None = None,
) -> GuardVerdict:
    return GuardVerdict(
        ok=False,
        statement=None,
        normalized=normalized,
        reason=reason,
        position=position,
        tables=tables,
        columns=columns,
        kind=kind,
        measures=measures,
    )


def _too_deep(budget: Budget) -> GuardVerdict:
    return _reject(
        f"query too complex to plan safely: nested too deeply to check (limit {budget.max_depth:,} levels; "
        "the profile's preflight.max_depth)",
        kind=LIMIT,
    )


def _precheck(sql: str, max_length: int) -> GuardVerdict | None:
    """Reject what needs no parser: size, emptiness, NUL and invisible or control characters."""
    if len(sql) > max_length:
        return _reject(
            f"query is {len(sql):,} characters long, over the limit of {max_length:,} "
            "(a fixed limit of the service, not a profile setting)",
            kind=LIMIT,
        )
    if not sql.strip():
        return _reject("empty query", kind=SQL)
    nul = sql.find("\x00")
    if nul >= 0:
        return _reject(f"query contains a NUL byte at offset {nul}", position=nul)
    control = _ASCII_CONTROL.search(sql)
    if control is not None:
        return _reject(
            f"query contains control character U+{ord(control.group()):04X} at offset {control.start()}",
            position=control.start(),
        )
    if not sql.isascii():
        for match in _NON_ASCII.finditer(sql):
            char = match.group()
            if unicodedata.category(char) in _SUSPICIOUS_CATEGORIES:
                name = unicodedata.name(char, "unnamed character")
                return _reject(
                    f"query contains invisible or non-ASCII whitespace U+{ord(char):04X} ({name}) "
                    f"at offset {match.start()}; use plain spaces, or an escape inside literals",
                    position=match.start(),
                )
    return None


# --- PostgreSQL (pglast) ---------------------------------------------------------------------------

# pglast builds its Python tree recursively in C, about 400 bytes of stack per nesting level: a
# 100 kB `SELECT 1 + 1 + ...` overflows an 8 MB thread stack and kills the process (no exception).
# Parse on a thread with a big stack, and never hand pglast more tokens than that stack can hold.
_PG_PARSER_STACK_BYTES: Final = 128 * 1024 * 1024
_PG_MAX_TOKENS: Final = 200_000
# Nesting cannot exceed the length, so this short a query needs under 2 MB of any thread's stack
# (glibc threads get 8 MB); parse it in place and spare the ~0.5 ms of starting a thread.
_PG_IN_PLACE_LENGTH: Final = 4_096
_PG_STACK_LOCK: Final = threading.Lock()


def _pg_parse(sql: str) -> tuple[pg.RawStmt, ...]:
    """Run `pglast.parse_sql` where its recursion cannot overflow the stack; raise what it raises."""
    if len(sql) <= _PG_IN_PLACE_LENGTH:
        return pglast.parse_sql(sql)
    if len(sql) > _PG_MAX_TOKENS and len(pglast.parser.scan(sql)) > _PG_MAX_TOKENS:
        raise RecursionError("too many tokens to parse safely")
    return _on_big_stack(lambda: pglast.parse_sql(sql))


def _on_big_stack(call: Callable[[], T], recursion_limit: int | None = None) -> T:
    """Run `call` on a thread with a big stack (and, if given, a raised recursion limit); raise what it raises."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed back to the calling thread
            outcome.append(exc)

    if recursion_limit is None:
        _start_big_stack_thread(run).join()
    else:
        # The recursion limit is process-wide: deep checks take turns, and the limit is raised only for
        # as long as one runs. Other threads never recurse this deep (untrusted trees are only walked here).
        with _DEEP_LOCK:
            previous_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(previous_limit, recursion_limit))
            try:
                _start_big_stack_thread(run).join()
            finally:
                sys.setrecursionlimit(previous_limit)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _start_big_stack_thread(target: Callable[[], None]) -> threading.Thread:
    with _PG_STACK_LOCK:  # threading.stack_size() is process-wide: set it only around our start()
        previous = threading.stack_size(_PG_PARSER_STACK_BYTES)
        try:
            worker = threading.Thread(target=target, name="sql-guard", daemon=True)
            worker.start()
        finally:
            threading.stack_size(previous)
    return worker


# pglast's printers and sqlglot's parser recurse a few Python frames per level of the tree (measured:
# about 6 for `a + b + ...`): a tree this shallow is handled in place under the default limit of 1,000.
_FRAMES_PER_LEVEL: Final = 10
# sqlglot's recursive descent goes through about 25 functions per parenthesis or subquery level.
_GLOT_PARSE_FRAMES_PER_LEVEL: Final = 40
_IN_PLACE_DEPTH: Final = 60
_DEEP_LOCK: Final = threading.Lock()


def _deep(call: Callable[[], T], depth: int) -> T:
    """Run a recursive function over a tree `depth` levels deep without hitting the recursion limit."""
    if depth <= _IN_PLACE_DEPTH:
        return call()
    return _on_big_stack(call, recursion_limit=depth * _FRAMES_PER_LEVEL + 2_000)


def _check_postgres(sql: str, budget: Budget) -> GuardVerdict:
    try:
        raw_statements = _pg_parse(sql)
    except PgParseError as exc:
        message = str(exc.args[0]) if exc.args else str(exc)
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        return _reject(f"syntax error: {message}", kind=SQL, position=location)
    if not raw_statements:
        return _reject("no SQL statement found (only comments or semicolons)", kind=SQL)
    if len(raw_statements) > 1:
        kinds = ", ".join(_pg_kind(raw.stmt) for raw in raw_statements)
        depth = max(_pg_depth(raw) for raw in raw_statements)
        return _reject(
            f"exactly one statement is allowed, found {len(raw_statements)} ({kinds})",
            normalized=_pg_serialise(raw_statements, depth) if depth <= budget.max_depth else "",
            position=raw_statements[1].stmt_location,
        )
    statement_node = raw_statements[0].stmt
    if statement_node is None:
        return _reject("no SQL statement found", kind=SQL)
    tables, columns = _pg_references(statement_node)
    measures = measure_postgres(statement_node)
    if measures.depth > budget.max_depth:
        return _reject(
            over_budget(measures, budget) or "", kind=LIMIT, tables=tables, columns=columns, measures=measures
        )
    normalized = _pg_serialise(raw_statements, measures.depth)
    problem = _pg_problem(statement_node)
    if problem is not None:
        kind = SQL if problem == _BIND_PARAMETERS else UNSAFE
        return _reject(
            problem, kind=kind, normalized=normalized, tables=tables, columns=columns, measures=measures
        )
    too_big = over_budget(measures, budget)
    if too_big is not None:
        return _reject(
            too_big, kind=LIMIT, normalized=normalized, tables=tables, columns=columns, measures=measures
        )
    statement = normalized
    # The serialised text is what the server will parse: parse it again; it must be the same tree.
    try:
        again = _pg_parse(statement) if statement else ()
    except (PgParseError, RecursionError):
        again = ()
    if len(again) != 1 or not _pg_same_tree(again[0].stmt, statement_node):
        return _reject("the query could not be re-serialised faithfully", normalized=normalized)
    return GuardVerdict(
        ok=True,
        statement=statement,
        normalized=normalized,
        tables=tables,
        columns=columns,
        measures=measures,
        reach=postgres_reach(again[0].stmt),
    )


def _pg_serialise(raw_statements: tuple[pg.RawStmt, ...], depth: int) -> str:
    """Serialise parsed statements canonically (no comments, upper-case keywords), or "" if impossible."""
    if not raw_statements:
        return ""
    try:
        return _deep(lambda: RawStream()(raw_statements), depth)
    except Exception:  # noqa: BLE001 - pglast's printers raise assorted errors on odd trees
        return ""


def _pg_depth(root: pg.Node) -> int:
    """Return the depth of a pglast tree (iteratively)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, pg.Node):
            deepest = max(deepest, level)
            for attribute in item:
                value = getattr(item, attribute, None)
                if isinstance(value, pg.Node | tuple | list):
                    stack.append((value, level + 1))
        elif isinstance(item, tuple | list):
            stack.extend((value, level) for value in item)
    return deepest


# Where a node was in the text, and how it was spelled: a re-serialised query has the same tree at other
# offsets, and pglast writes some calls in another form than the text's (TRIM(x) as pg_catalog.btrim(x),
# EXTRACT … FROM as a call): the same function with the same arguments. pglast declares, per node class, the
# fields its own comparison ignores for this (``location``, ``rexpr_list_start``, ``funcformat``,
# ``row_format`` …): those are skipped.
def _ignored(node_class: type[pg.Node]) -> frozenset[str]:
    ignored: frozenset[str] = getattr(node_class, "_ATTRS_TO_IGNORE_IN_COMPARISON", frozenset())
    return frozenset(ignored) | {"location"}


_PG_POSITIONS: Final = {
    cls: _ignored(cls) for cls in vars(pg).values() if isinstance(cls, type) and issubclass(cls, pg.Node)
}


def _pg_same_tree(first: Any, second: Any) -> bool:
    """Tell whether two pglast trees are equal but for source positions (iteratively)."""
    stack: list[tuple[Any, Any]] = [(first, second)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, pg.Node):
            if type(a) is not type(b):
                return False
            positions = _PG_POSITIONS.get(type(a), frozenset())
            for attribute in a:
                if attribute not in positions:
                    stack.append((getattr(a, attribute, None), getattr(b, attribute, None)))
        elif isinstance(a, tuple | list):
            if not isinstance(b, tuple | list) or len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
        elif a != b or type(a) is not type(b):
            return False
    return True


def _pg_kind(node: pg.Node | None) -> str:
    name = type(node).__name__
    return name.removesuffix("Stmt").upper() if name.endswith("Stmt") else name


def pg_walk(root: pg.Node) -> Iterator[pg.Node]:
    """Yield every node of a pglast tree (iteratively: deep trees must not overflow the stack)."""
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, pg.Node):
            yield item
            for attribute in item:
                value = getattr(item, attribute, None)
                if isinstance(value, pg.Node | tuple | list):
                    stack.append(value)
        elif isinstance(item, tuple | list):
            stack.extend(item)


class _Scope:
    """A marker on the walk's stack: the FROM names of a SELECT become visible, or stop being."""

    __slots__ = ("enter", "names")

    def __init__(self, names: tuple[str, ...], enter: bool) -> None:
        self.names = names
        self.enter = enter


def _pg_problem(root: pg.Node | None) -> str | None:
    """Return why a parsed PostgreSQL statement is not a safe read-only query, or None."""
    if not isinstance(root, pg.SelectStmt):
        kind = type(root).__name__
        return _PG_STATEMENT_REASONS.get(
            kind,
            "only one read-only query (SELECT, WITH ... SELECT, VALUES, TABLE) is allowed, "
            f"not {_pg_kind(root)}",
        )
    visible: dict[str, int] = {}  # range-table names in scope here → how many SELECTs bring them
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, _Scope):
            for name in item.names:
                visible[name] = visible.get(name, 0) + (1 if item.enter else -1)
            continue
        if isinstance(item, tuple | list):
            stack.extend(item)
            continue
        if not isinstance(item, pg.Node):
            continue
        problem = (
            _pg_column_problem(item, visible) if isinstance(item, pg.ColumnRef) else _pg_node_problem(item)
        )
        if problem is not None:
            return problem
        children = [
            value
            for attribute in item
            if attribute != "withClause"
            and isinstance(value := getattr(item, attribute, None), pg.Node | tuple | list)
        ]
        if isinstance(item, pg.SelectStmt):
            # The FROM names are visible in the rest of this SELECT and its subqueries, not in its CTEs.
            names = _pg_range_names(item.fromClause)
            stack.append(_Scope(names, enter=False))
            stack.extend(children)
            stack.append(_Scope(names, enter=True))
            if item.withClause is not None:
                stack.append(item.withClause)
        else:
            stack.extend(children)
    return None


def _pg_range_names(from_clause: Any) -> tuple[str, ...]:
    """Return the names a FROM clause makes visible as qualifiers (aliases; else relation/function names)."""
    names: list[str] = []
    stack = list(from_clause or ())
    while stack:
        item = stack.pop()
        alias = getattr(item, "alias", None)
        aliasname = alias.aliasname if isinstance(alias, pg.Alias) else None
        if isinstance(item, pg.JoinExpr):
            # Names inside an aliased join stay visible in its own ON clause; outside, PostgreSQL refuses them.
            names.extend([aliasname] if aliasname else [])
            stack.extend(side for side in (item.larg, item.rarg) if side is not None)
        elif aliasname:
            names.append(aliasname)  # an alias hides the relation's own name
        elif isinstance(item, pg.RangeTableSample):
            stack.append(item.relation)
        elif isinstance(item, pg.RangeVar) and item.relname:
            names.append(item.relname)
        elif isinstance(item, pg.RangeFunction) and len(item.functions or ()) == 1:
            call = (item.functions or ((None,),))[0][0]
            if isinstance(call, pg.FuncCall) and call.funcname:
                name = _pg_string(call.funcname[-1])
                if name:
                    names.append(name)
    return tuple(names)


def _pg_column_problem(node: pg.ColumnRef, visible: dict[str, int]) -> str | None:
    """Check the names of `a.b.c` that PostgreSQL may read as a function call (attribute notation).

    A name qualified by a range-table entry of the query (`lo.lo_revenue`, `s.t.col`) is a column:
    only what follows the column (a composite's field, or f(column) when no such field exists) can be
    a call. An unqualified name is always a column; `x.f` where x is no range-table entry is x's field f,
    or f(x), and is checked.
    """
    names = [_pg_string(field) for field in node.fields or ()]
    if len(names) <= 1:
        return None
    start = 1
    for position in range(min(3, len(names) - 1)):
        name = names[position]
        if name is not None and visible.get(name, 0) > 0:
            start = position + 2  # the qualifier, then the column, then fields
            break
    for name in names[start:]:
        if name is not None and is_denied_function(name, "postgresql"):
            return _denied_reason(name) + " (called with attribute notation)"
    return None


def _pg_node_problem(node: pg.Node) -> str | None:
    write = _PG_WRITE_NODES.get(type(node))
    if write is not None:
        return f"data-modifying {write} inside the query (e.g. in a WITH clause) is not allowed"
    if isinstance(node, pg.IntoClause):
        return "SELECT ... INTO creates a table and is not allowed"
    if isinstance(node, pg.LockingClause):
        return "row-locking clauses (FOR UPDATE / FOR SHARE / ...) are not allowed"
    if isinstance(node, pg.ParamRef):
        return _BIND_PARAMETERS
    if isinstance(node, pg.FuncCall):
        name = _pg_string(node.funcname[-1]) if node.funcname else None
        if name is not None and is_denied_function(name, "postgresql"):
            return _denied_reason(name)
    elif isinstance(node, pg.RangeTableSample):
        # The sampling method is a function too (looked up with an `internal` argument).
        name = _pg_string((node.method or (None,))[-1])
        if name is not None and is_denied_function(name, "postgresql"):
            return _denied_reason(name) + " (as a TABLESAMPLE method)"
    elif isinstance(node, pg.A_Indirection):
        for item in node.indirection or ():
            name = _pg_string(item)
            if name is not None and is_denied_function(name, "postgresql"):
                return _denied_reason(name) + " (called with attribute notation)"
    elif type(node).__name__.endswith("Stmt") and not isinstance(node, pg.SelectStmt):
        return f"{_pg_kind(node)} inside the query is not allowed"
    return None


_BIND_PARAMETERS: Final = "bind parameters ($1, ...) cannot be planned here; inline the values"


def _pg_string(node: object) -> str | None:
    return node.sval if isinstance(node, pg.String) and node.sval is not None else None


def _pg_references(root: pg.Node | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Collect table and column references in source order (CTE names are not tables)."""
    if root is None:
        return (), ()
    nodes = list(pg_walk(root))
    cte_names = {node.ctename for node in nodes if isinstance(node, pg.CommonTableExpr)}
    found_tables: list[tuple[int, str]] = []
    found_columns: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, pg.RangeVar) and node.relname:
            parts = [part for part in (node.catalogname, node.schemaname, node.relname) if part]
            if len(parts) == 1 and node.relname in cte_names:
                continue
            found_tables.append((node.location or 0, ".".join(parts)))
        elif isinstance(node, pg.ColumnRef):
            names = [_pg_string(field) for field in node.fields or ()]
            if names and all(name is not None for name in names):
                found_columns.append((node.location or 0, ".".join(n for n in names if n)))
    return _ordered_unique(found_tables), _ordered_unique(found_columns)


def _ordered_unique(found: list[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for _, name in sorted(found, key=lambda item: item[0])))


def _denied_reason(name: str) -> str:
    return (
        f"function {name}() is not allowed in a preflight query "
        "(it sleeps, locks, writes, reads files or reaches other servers)"
    )


# --- other dialects (sqlglot) ----------------------------------------------------------------------


def _check_sqlglot(sql: str, dialect: str, budget: Budget) -> GuardVerdict:
    read = sqlglot_dialect(dialect)
    tokens_problem = _glot_token_problem(sql, read, dialect)
    try:
        parsed = _glot_parse(sql, read, budget)
    except GlotParseError as exc:
        return _reject(
            f"syntax error: {_glot_error_message(exc)}", kind=SQL, position=_glot_position(sql, exc)
        )
    except SqlglotError as exc:
        return _reject(f"syntax error: {str(exc).splitlines()[0] if str(exc) else exc!r}", kind=SQL)
    statements = [tree for tree in parsed if tree is not None and not isinstance(tree, exp.Semicolon)]
    if not statements:
        return _reject("no SQL statement found (only comments or semicolons)", kind=SQL)
    if len(statements) > 1:
        kinds = ", ".join(tree.key.upper() for tree in statements)
        depth = max(_glot_depth(tree) for tree in statements)
        return _reject(
            f"exactly one statement is allowed, found {len(statements)} ({kinds})",
            normalized=_glot_serialise_all(statements, read, depth) if depth <= budget.max_depth else "",
        )
    tree = statements[0]
    if isinstance(tree, exp.Condition) and not isinstance(tree, exp.Query):
        # an expression, not a statement: a misspelt keyword (SELEC …) or a bare name
        first = sql.strip().split(None, 1)[0][:40] if sql.strip() else ""
        return _reject(
            f"syntax error: {first!r} does not start a statement (a query starts with SELECT, WITH or VALUES)",
            kind=SQL,
            position=max(0, sql.find(first)),
        )
    tables, columns = _glot_references(tree)
    measures = measure_sqlglot(tree, dialect)
    if measures.depth > budget.max_depth:
        return _reject(
            over_budget(measures, budget) or "", kind=LIMIT, tables=tables, columns=columns, measures=measures
        )
    normalized = _glot_serialise(tree, read, measures.depth)
    problem = tokens_problem or _glot_problem(tree, dialect)
    if problem is not None:
        return _reject(problem, normalized=normalized, tables=tables, columns=columns, measures=measures)
    too_big = over_budget(measures, budget)
    if too_big is not None:
        return _reject(
            too_big, kind=LIMIT, normalized=normalized, tables=tables, columns=columns, measures=measures
        )
    statement = normalized
    if not statement:
        return _reject(
            "the query uses syntax that cannot be re-serialised for this database",
            tables=tables,
            columns=columns,
            measures=measures,
        )
    # The serialised text is what the server will parse: parse it again and check that, too.
    try:
        again = [t for t in _glot_parse(statement, read, budget) if t is not None]
    except (SqlglotError, RecursionError):
        again = []
    if (
        len(again) != 1
        or _glot_token_problem(statement, read, dialect) is not None
        or _glot_problem(again[0], dialect) is not None
        or _glot_serialise(again[0], read, measures.depth) != statement
    ):
        return _reject("the query could not be re-serialised faithfully", normalized=normalized)
    reach = None
    if dialect in ("mysql", "mariadb"):
        # Names as the server will read them: from the text sent, not the input.
        reach = mysql_reach(again[0], sqlglot.tokenize(statement, read=read))
    return GuardVerdict(
        ok=True,
        statement=statement,
        normalized=normalized,
        tables=tables,
        columns=columns,
        measures=measures,
        reach=reach,
    )


def _glot_parse(sql: str, read: _GlotDialect, budget: Budget) -> list[exp.Expr | None]:
    """Parse with sqlglot (recursive descent); a query nested deeper than the default limit allows is
    parsed again on a big stack, up to the budget's depth."""
    try:
        return sqlglot.parse(sql, read=read)
    except RecursionError:
        return _on_big_stack(
            lambda: sqlglot.parse(sql, read=read),
            recursion_limit=budget.max_depth * _GLOT_PARSE_FRAMES_PER_LEVEL,
        )


def _glot_depth(root: exp.Expr) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node.iter_expressions())
    return deepest


def _glot_serialise(tree: exp.Expr, read: _GlotDialect, depth: int) -> str:
    """Serialise without comments (MySQL executes `/*! ... */`); "" when the dialect cannot say it."""
    try:
        return _deep(
            lambda: tree.sql(dialect=read, comments=False, unsupported_level=ErrorLevel.RAISE), depth
        )
    except Exception:  # noqa: BLE001 - generators raise assorted errors on trees they cannot write
        return ""


def _glot_serialise_all(trees: Iterable[exp.Expr], read: _GlotDialect, depth: int) -> str:
    parts = [_glot_serialise(tree, read, depth) for tree in trees]
    return "" if not all(parts) else "; ".join(parts)


def _words(name: str) -> str:
    """A class name as words: ``GenerateSeries`` → "generate series"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()


def _glot_error_message(exc: GlotParseError) -> str:
    if exc.errors:
        first = exc.errors[0]
        # sqlglot sometimes embeds a token's repr; keep only its text.
        description = _TOKEN_REPR.sub(r"'\1'", str(first.get("description") or "invalid SQL"))
        description = _CLASS_REPR.sub(lambda m: _words(m.group(1)), description)  # <class '…Mul'>: "mul"
        highlight = first.get("highlight")
        return f"{description} near {highlight!r}" if highlight else description
    return str(exc).splitlines()[0] if str(exc) else "invalid SQL"


def _glot_position(sql: str, exc: GlotParseError) -> int | None:
    """Turn sqlglot's 1-based line and end column of the offending token into a character offset."""
    if not exc.errors:
        return None
    first = exc.errors[0]
    line, col = first.get("line"), first.get("col")
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    lines = sql.split("\n")
    if not 1 <= line <= len(lines):
        return None
    start_of_line = sum(len(text) + 1 for text in lines[: line - 1])
    highlight = first.get("highlight")
    width = len(highlight) if isinstance(highlight, str) and highlight else 1
    return max(0, min(len(sql) - 1, start_of_line + col - width))


def _glot_token_problem(sql: str, read: _GlotDialect, dialect: str) -> str | None:
    """Check raw tokens: executable comments and denied names called as functions."""
    try:
        tokens: list[Token] = sqlglot.tokenize(sql, read=read)
    except (SqlglotError, RecursionError):
        return None  # the parser reports the error with a position
    for token in tokens:
        for comment in token.comments:
            if comment.lstrip().upper().startswith(("!", "M!")):
                return "executable comments (/*! ... */) are not allowed"
    for token, following in itertools.pairwise(tokens):
        # Checked on tokens too, because a dialect may map a name to a typed expression.
        if following.token_type == TokenType.L_PAREN and is_denied_function(token.text, dialect):
            return _denied_reason(token.text)
    return None


def _glot_problem(tree: exp.Expr, dialect: str) -> str | None:
    """Return why a parsed sqlglot statement is not a safe read-only query, or None."""
    root = tree
    while isinstance(root, _GLOT_WRAPPERS) and isinstance(root.this, exp.Expr):
        root = root.this
    if not isinstance(root, _GLOT_QUERY_ROOTS):
        if isinstance(root, _glot_classes("Describe")):
            return _PG_STATEMENT_REASONS["ExplainStmt"]
        if isinstance(root, exp.Command):
            command = root.name.upper()
            if command in ("EXPLAIN", "ANALYZE", "ANALYSE", "DESCRIBE", "DESC"):
                return _PG_STATEMENT_REASONS["ExplainStmt"]
            return f"{command or 'this command'} is not allowed; only one read-only query is"
        return (
            f"only one read-only query (SELECT, WITH ... SELECT, VALUES) is allowed, not {root.key.upper()}"
        )
    for node in tree.walk():
        problem = _glot_node_problem(node, dialect)
        if problem is not None:
            return problem
    rules = _DIALECT_RULES.get(dialect)
    return rules(tree) if rules is not None else None


def _glot_node_problem(node: exp.Expr, dialect: str) -> str | None:
    if isinstance(node, _GLOT_FORBIDDEN):
        if isinstance(node, exp.Command):
            return f"unrecognised command {node.name.upper()!r} inside the query is not allowed"
        return f"{node.key.upper()} inside the query is not allowed; only read-only queries are"
    if isinstance(node, exp.Into):
        return "SELECT ... INTO (a table, variables, OUTFILE or DUMPFILE) is not allowed"
    if isinstance(node, exp.Lock):
        return "row-locking clauses (FOR UPDATE / LOCK IN SHARE MODE / ...) are not allowed"
    if isinstance(node, exp.Hint):
        return "optimizer hints are not allowed (they can change session variables)"
    if isinstance(node, exp.PropertyEQ) and (
        dialect in ("mysql", "mariadb") or isinstance(node.this, _GLOT_VARIABLES)
    ):
        return "variable assignment (:=) is not allowed"
    if isinstance(node, exp.Select) and node.args.get("settings"):
        return "a SETTINGS clause is not allowed"
    if isinstance(node, exp.Func):
        for name in _glot_function_names(node):
            if is_denied_function(name, dialect):
                return _denied_reason(name)
    return None


def _glot_function_names(node: exp.Func) -> set[str]:
    """Return the names a function node is known by: as written, or its known SQL names."""
    if isinstance(node, exp.Anonymous) or isinstance(node.args.get("this"), str):
        return {node.name.lower()}
    return {name.lower() for name in node.sql_names()}


def _glot_references(tree: exp.Expr) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cte_names = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function, not a table
        parts = [part.name for part in table.parts]
        if len(parts) == 1 and parts[0] in cte_names:
            continue
        tables.append(".".join(parts))
    columns = [
        ".".join(part.name for part in column.parts)
        for column in tree.find_all(exp.Column)
        if not isinstance(column.this, exp.Star)
    ]
    return tuple(dict.fromkeys(tables)), tuple(dict.fromkeys(columns))
