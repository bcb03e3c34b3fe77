"""Read what the routine policy needs from a MySQL/MariaDB server: stored functions, UDFs and views.

Blocking; every function takes a connection inside the caller's transaction. The cached part
(``load_catalog``) is valid while the definitions fingerprint (a CRC32 sum over information_schema's
routines and view definitions) stays the same; the live part (``read_live``) is one query run in the
EXPLAIN's own transaction. A statement that fails here does not end a MySQL transaction, so an
optional source (mysql.func, information_schema.KEYWORDS) that cannot be read is simply skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Final

import sqlalchemy as sa
import sqlglot
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmeta_app.preflight.budget import glot_view_outputs, measure_sqlglot, settle_view_outputs
from dbmeta_app.preflight.guard import MySQLFamily
from dbmeta_app.preflight.mysql_builtins import BUILTINS_QUOTED, BUILTINS_UNQUOTED
from dbmeta_app.preflight.reach import mysql_calls, mysql_reach
from dbmeta_app.preflight.routines import MyCatalog, MyLive, MyView

__all__ = ["load_catalog", "read_fingerprint", "read_live"]

log = logging.getLogger(__name__)

_FINGERPRINT_SQL: Final = """
SELECT CONCAT(
  (SELECT COUNT(*) FROM information_schema.ROUTINES), ':',
  (SELECT COALESCE(SUM(CRC32(CONCAT_WS(':', ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, CREATED,
          LAST_ALTERED))), 0) FROM information_schema.ROUTINES), ':',
  (SELECT COUNT(*) FROM information_schema.VIEWS), ':',
  (SELECT COALESCE(SUM(CRC32(CONCAT_WS(':', TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION))), 0)
     FROM information_schema.VIEWS))
"""
_LIVE: Final = sa.text(f"SELECT ({_FINGERPRINT_SQL}), DATABASE()")
_FINGERPRINT: Final = sa.text(_FINGERPRINT_SQL)


def read_fingerprint(conn: Connection) -> str:
    """Return the definitions fingerprint (one query)."""
    return str(conn.execute(_FINGERPRINT).scalar_one())


def read_live(conn: Connection) -> MyLive:
    """Read the fingerprint and the current database in the caller's transaction (one query)."""
    fingerprint, database = conn.execute(_LIVE).one()
    return MyLive(fingerprint=str(fingerprint), database=database)


def _optional_words(conn: Connection, sql: str) -> frozenset[str] | None:
    """Read one column of words, or None when the server has no such table or we may not read it."""
    try:
        return frozenset(str(word) for (word,) in conn.exec_driver_sql(sql))
    except DBAPIError:
        return None


def _view(schema: str, name: str, definition: str | None) -> tuple[MyView, exp.Expr | None]:
    """The view (its constants not measured yet) and its parsed definition (None when it has none)."""
    if not definition:
        return MyView(schema, name, None), None  # SHOW VIEW is missing: information_schema hides the text
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
    views: dict[tuple[str, str], MyView], trees: dict[tuple[str, str], exp.Expr], fold: bool
) -> dict[tuple[str, str], MyView]:
    """The views with what their definitions' constants make the optimiser build and their constant columns.

    Each definition is measured with the constant columns of the views it reads, transitively (by name: ``SELECT
    REPEAT('x', p.n) FROM params p`` over ``params AS SELECT 100000007 AS n`` builds what ``params`` holds).
    """

    def key(schema: str, name: str) -> tuple[str, str]:
        return (schema.lower(), name.lower()) if fold else (schema, name)

    reads = {
        k: [
            r for name in views[k].relations if (r := key(name.schema or views[k].schema, name.name)) in trees
        ]
        for k in trees
    }
    settled = settle_view_outputs(reads, lambda k, seed: glot_view_outputs(trees[k], seed, dialect="mysql"))
    out = dict(views)
    for k, (seed, outputs) in settled.items():
        constant_bytes = measure_sqlglot(trees[k], "mysql", seed).constant_bytes
        out[k] = dataclasses.replace(views[k], constant_bytes=constant_bytes, outputs=tuple(outputs.items()))
    return out


def load_catalog(conn: Connection, fingerprint: str) -> MyCatalog:
    """Read the stored functions, UDFs, built-in names and views (cache them under the fingerprint)."""
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
    views: dict[tuple[str, str], MyView] = {}
    trees: dict[tuple[str, str], exp.Expr] = {}
    for schema, name, definition in conn.exec_driver_sql(
        "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS"
    ):
        view, tree = _view(str(schema), str(name), definition)
        key = (view.schema.lower(), view.name.lower()) if fold else (view.schema, view.name)
        views[key] = view
        if tree is not None:
            trees[key] = tree
    views = _measured(views, trees, fold)
    return MyCatalog(
        fingerprint=fingerprint,
        functions=functions,
        udfs=frozenset(name.lower() for name in udfs) if udfs is not None else None,
        keywords=frozenset(word.upper() for word in keywords),
        builtins=BUILTINS_UNQUOTED | frozenset(f.upper() for f in server_functions or ()),
        builtins_quoted=BUILTINS_QUOTED,
        views=views,
        fold_table_case=fold,
    )
