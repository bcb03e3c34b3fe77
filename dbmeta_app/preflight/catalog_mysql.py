"""Read what the routine policy needs from a MySQL/MariaDB server: stored functions, UDFs and views.

Blocking; every function takes a connection inside the caller's transaction. The cached part
(``load_catalog``) is valid while the definitions fingerprint (a SHA-256 over information_schema's
routines and view definitions) stays the same; the live part (``read_live``) is two queries run in the
EXPLAIN's own transaction. A statement that fails here does not end a MySQL transaction, so an
optional source (mysql.func, information_schema.KEYWORDS) that cannot be read is simply skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
import sqlglot
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmeta_app.preflight import view_memo
from dbmeta_app.preflight.budget import glot_view_outputs, measure_sqlglot, settle_view_outputs
from dbmeta_app.preflight.guard import MySQLFamily
from dbmeta_app.preflight.mysql_builtins import BUILTINS_QUOTED, BUILTINS_UNQUOTED
from dbmeta_app.preflight.reach import mysql_calls, mysql_reach
from dbmeta_app.preflight.routines import MyCatalog, MyLive, MyView
from dbmeta_app.preflight.view_memo import VIEW_WORK_SECONDS, ViewMemo, WorkClock, too_big_to_parse

__all__ = ["load_catalog", "read_generated", "read_live"]

log = logging.getLogger(__name__)

# What the planner may run: the stored routines (each by name, kind and times) and the views (each by its
# definition). Each row is a SHA-256 of its fields, length-prefixed so that no two rows read alike, and the
# fingerprint hashes the sorted row digests: a sum of CRC32s let an owner write a harmful view whose CRC32 is
# the old one's (CRC32 is affine), and any sum of hashes yields to a generalised birthday over many rows.
_DEFINITION_DIGESTS: Final = sa.text(
    """
SELECT SHA2(CONCAT('r', CHAR_LENGTH(ROUTINE_SCHEMA), ':', ROUTINE_SCHEMA, CHAR_LENGTH(ROUTINE_NAME), ':',
                   ROUTINE_NAME, ':', ROUTINE_TYPE, ':', COALESCE(CREATED, ''), ':', COALESCE(LAST_ALTERED, '')),
            256)
FROM information_schema.ROUTINES
UNION ALL
SELECT SHA2(CONCAT('v', CHAR_LENGTH(TABLE_SCHEMA), ':', TABLE_SCHEMA, CHAR_LENGTH(TABLE_NAME), ':', TABLE_NAME,
                   ':', COALESCE(VIEW_DEFINITION, '')), 256)
FROM information_schema.VIEWS
"""
)
_DATABASE: Final = sa.text("SELECT DATABASE()")
_VIEWS: Final = sa.text(
    "SELECT TABLE_SCHEMA, TABLE_NAME, CHAR_LENGTH(VIEW_DEFINITION), "
    "CASE WHEN CHAR_LENGTH(VIEW_DEFINITION) <= :max_chars THEN VIEW_DEFINITION END "
    "FROM information_schema.VIEWS ORDER BY TABLE_SCHEMA <=> DATABASE() DESC"
)
#: What parsing and measuring view definitions found, shared by the process (keyed by digest of schema, name and
#: definition), and the lock that keeps two catalog reads from changing it at once.
_MEMO: Final = ViewMemo()
_MEMO_LOCK: Final = threading.Lock()


#: Tables looked up by one statement (a UNION ALL branch each); more are read in further statements.
_GENERATED_TABLES_PER_READ: Final = 200


def read_generated(
    conn: Connection, tables: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[str, str | None]]]:
    """The VIRTUAL generated columns of these (schema, table) pairs, read live in the caller's transaction: per
    table, (column, expression; None when longer than a view definition may be). MariaDB computes them for a row
    it reads while planning (a "const table"), so they are measured like a view's definition. Each table is
    looked up by schema and name, in a UNION ALL branch of its own: an equality information_schema answers by
    opening that table only (an OR of them scans every database of the server)."""
    pairs = list(dict.fromkeys(tables))
    out: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    branch = (
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, CASE WHEN CHAR_LENGTH(GENERATION_EXPRESSION) "
        "<= :max_chars THEN GENERATION_EXPRESSION END FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :s{i} AND "
        "TABLE_NAME = :t{i} AND EXTRA LIKE 'VIRTUAL%' AND GENERATION_EXPRESSION IS NOT NULL"
    )
    for start in range(0, len(pairs), _GENERATED_TABLES_PER_READ):
        chunk = pairs[start : start + _GENERATED_TABLES_PER_READ]
        params: dict[str, Any] = {"max_chars": view_memo.VIEW_DEFINITION_MAX}
        for i, (schema, table) in enumerate(chunk):
            params[f"s{i}"], params[f"t{i}"] = schema, table
        union = " UNION ALL ".join(branch.format(i=i) for i in range(len(chunk)))
        for schema, table, column, _, expression in conn.execute(
            sa.text(f"SELECT * FROM ({union}) AS g ORDER BY 1, 2, 4"), params
        ):
            out.setdefault((str(schema), str(table)), []).append(
                (str(column), None if expression is None else str(expression))
            )
    return out


def read_live(conn: Connection) -> MyLive:
    """Read the definitions fingerprint and the current database in the caller's transaction (two queries)."""
    digests = sorted(str(digest) for digest in conn.execute(_DEFINITION_DIGESTS).scalars())
    fingerprint = hashlib.sha256("".join(digests).encode()).hexdigest()[:32]
    return MyLive(fingerprint=f"{len(digests)}:{fingerprint}", database=conn.execute(_DATABASE).scalar())


def _optional_words(conn: Connection, sql: str) -> frozenset[str] | None:
    """Read one column of words, or None when the server has no such table or we may not read it."""
    try:
        return frozenset(str(word) for (word,) in conn.exec_driver_sql(sql))
    except DBAPIError:
        return None


class _OutOfTime(Exception):
    """The view work of one catalog read used up VIEW_WORK_SECONDS."""


def _view(
    schema: str, name: str, definition: str | None, length: int = 0, max_chars: int | None = None
) -> tuple[MyView, exp.Expr | None]:
    """The view (its constants not measured yet) and its parsed definition (None when it has none or it is not
    parsed: over ``max_chars`` characters, then not even fetched, or nested too deep)."""
    max_chars = view_memo.VIEW_DEFINITION_MAX if max_chars is None else max_chars
    if length > max_chars or (definition and len(definition) > max_chars):
        problem = too_big_to_parse(max(length, len(definition or "")), None, max_chars)
        return MyView(schema, name, None, problem=f"{problem}, so what it calls cannot be checked"), None
    if not definition:
        return MyView(schema, name, None), None  # SHOW VIEW is missing: information_schema hides the text
    too_deep = too_big_to_parse(len(definition), definition, max_chars)
    if too_deep:
        return MyView(schema, name, None, problem=f"{too_deep}, so what it calls cannot be checked"), None
    try:
        tree = sqlglot.parse_one(definition, read=MySQLFamily)
        tokens = sqlglot.tokenize(definition, read=MySQLFamily)
    except (SqlglotError, RecursionError):
        # What it reads is unknown, but its calls are still visible in its tokens when they tokenize.
        log.warning("Could not parse the definition of view %s.%s; treating it as unreadable", schema, name)
        return MyView(schema, name, None), None
    reach = mysql_reach(tree, tokens)
    return MyView(schema, name, mysql_calls(tokens), reach.relations), tree


def _measured(
    views: dict[tuple[str, str], MyView],
    definitions: dict[tuple[str, str], str],
    trees: dict[tuple[str, str], exp.Expr],
    digests: dict[tuple[str, str], tuple[int, str]],
    fold: bool,
    memo: ViewMemo,
    clock: WorkClock,
) -> tuple[dict[tuple[str, str], MyView], bool]:
    """The views with what their definitions' constants make the optimiser build and their constant columns,
    and whether every one was measured in time (the rest are refused, saying so, until the next read).

    Each definition is measured with the constant columns of the views it reads, transitively (by name: ``SELECT
    REPEAT('x', p.n) FROM params p`` over ``params AS SELECT 100000007 AS n`` builds what ``params`` holds).
    Outputs and measures are memoised by the definition's digest and the seed, so a re-read parses only what
    changed; parsing and measuring stop when ``clock`` says so.
    """

    def key(schema: str, name: str) -> tuple[str, str]:
        return (schema.lower(), name.lower()) if fold else (schema, name)

    def in_time() -> None:
        # before each unit of work (a view's parse and what is measured on it), never between a parse and its use
        if not clock.allows():
            raise _OutOfTime

    def tree_of(k: tuple[str, str]) -> exp.Expr:
        if k not in trees:
            trees[k] = sqlglot.parse_one(definitions[k], read=MySQLFamily)
        return trees[k]

    def outputs_of(k: tuple[str, str], seed: Mapping[str, Any]) -> dict[str, Any]:
        memo_key = (*digests[k], tuple(sorted(seed.items())))
        if memo_key not in memo.outputs:
            in_time()
            memo.outputs[memo_key] = dict(glot_view_outputs(tree_of(k), seed, dialect="mysql"))
        return memo.outputs[memo_key]

    measurable = [k for k in digests if views[k].functions is not None and not views[k].problem]
    reads = {
        k: [
            r
            for name in views[k].relations
            if (r := key(name.schema or views[k].schema, name.name)) in digests and r in measurable
        ]
        for k in measurable
    }
    out = dict(views)
    late: set[tuple[str, str]] = set()
    try:
        settled = settle_view_outputs(reads, outputs_of)
    except (_OutOfTime, SqlglotError, RecursionError):
        settled = {}
        late = set(measurable)
    for k, (seed, outputs) in settled.items():
        memo_key = (*digests[k], tuple(sorted(seed.items())), ())  # nothing of the catalog on MySQL
        if memo_key not in memo.measured:
            try:
                in_time()
                tree = tree_of(k)
            except (_OutOfTime, SqlglotError, RecursionError):
                late.add(k)
                continue
            memo.measured[memo_key] = measure_sqlglot(tree, "mysql", seed).constant_bytes
        out[k] = dataclasses.replace(
            views[k], constant_bytes=memo.measured[memo_key], outputs=tuple(outputs.items())
        )
    for k in late:
        out[k] = dataclasses.replace(views[k], problem=_late_problem())
    return out, not late


def _late_problem() -> str:
    return (
        f"its definition was not measured yet: the database's view definitions take more than "
        f"{VIEW_WORK_SECONDS:g} s to parse and measure (the service goes on at the next preflight)"
    )


def _views(
    conn: Connection, fold: bool, memo: ViewMemo, view_seconds: float
) -> tuple[dict[tuple[str, str], MyView], bool]:
    """Every view with what its definition calls and reads and its constants, and whether all were read in time.

    A definition over :data:`~dbmeta_app.preflight.view_memo.VIEW_DEFINITION_MAX` characters is measured on the
    server and never sent, one nested too deep is not parsed: such a view is refused, naming it. The rest are
    parsed (memoised in ``memo`` by a digest of the definition) within ``view_seconds``; a view left over is
    refused until the next read, which goes on where this one stopped."""
    max_chars = view_memo.VIEW_DEFINITION_MAX
    clock = WorkClock(view_seconds)
    views: dict[tuple[str, str], MyView] = {}
    definitions: dict[tuple[str, str], str] = {}
    trees: dict[tuple[str, str], exp.Expr] = {}
    digests: dict[tuple[str, str], tuple[int, str]] = {}
    late = False
    # The current database's views first: those are the ones its queries read.
    for schema, name, length, definition in conn.execute(_VIEWS, {"max_chars": max_chars}):
        schema, name = str(schema), str(name)
        key = (schema.lower(), name.lower()) if fold else (schema, name)
        if definition is None or int(length or 0) > max_chars or not definition:
            views[key] = _view(schema, name, definition, int(length or 0), max_chars)[0]
            continue
        digest = (0, hashlib.sha256(f"{schema}\0{name}\0{definition}".encode()).hexdigest())
        digests[key] = digest
        definitions[key] = str(definition)
        cached = memo.facts.get(digest)
        if isinstance(cached, MyView):
            views[key] = cached
        elif not clock.allows():
            views[key] = MyView(schema, name, None, problem=_late_problem())
            late = True
        else:
            view, tree = _view(schema, name, str(definition), int(length or 0), max_chars)
            memo.facts[digest] = view
            views[key] = view
            if tree is not None:
                trees[key] = tree
    memo.prune(set(digests.values()))
    if late:
        log.warning(
            "View definitions: not all parsed in %g s; the rest are refused until the next read", view_seconds
        )
    measured, complete = _measured(views, definitions, trees, digests, fold, memo, clock)
    return measured, complete and not late


def load_catalog(
    conn: Connection, fingerprint: str, memo: ViewMemo | None = None, view_seconds: float = VIEW_WORK_SECONDS
) -> MyCatalog:
    """Read the stored functions, UDFs, built-in names and views (cache them under the fingerprint).

    When some views could not be read within ``view_seconds`` the catalog's fingerprint is marked incomplete (it
    then matches no live fingerprint, so the next check reads the catalog again and goes on with the views left
    over; what was done is kept in ``memo``, by default one shared by the process)."""
    functions = {
        (str(schema), str(name).lower()): f"{schema}.{name}"
        for schema, name in conn.exec_driver_sql(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES "
            "WHERE ROUTINE_TYPE = 'FUNCTION'"
        )
    }
    udfs = _optional_words(conn, "SELECT name FROM mysql.func")
    keywords = _optional_words(conn, "SELECT WORD FROM information_schema.KEYWORDS") or frozenset()
    server_functions = _optional_words(conn, "SELECT FUNCTION FROM information_schema.SQL_FUNCTIONS")
    fold = int(conn.exec_driver_sql("SELECT @@lower_case_table_names").scalar_one() or 0) != 0
    with _MEMO_LOCK:
        views, complete = _views(conn, fold, _MEMO if memo is None else memo, view_seconds)
    return MyCatalog(
        fingerprint=fingerprint if complete else f"{fingerprint}+incomplete",
        functions=functions,
        udfs=frozenset(name.lower() for name in udfs) if udfs is not None else None,
        keywords=frozenset(word.upper() for word in keywords),
        builtins=BUILTINS_UNQUOTED | frozenset(f.upper() for f in server_functions or ()),
        builtins_quoted=BUILTINS_QUOTED,
        views=views,
        fold_table_case=fold,
    )
