"""DuckDB: catalog reads from ``duckdb_tables()``, ``duckdb_views()``, ``duckdb_columns()``, ``duckdb_constraints()``.

Four queries read the schema of the open database (attached ones and the system and temp catalogs are left
out), filtered on schemas like the other dialects; keys are ``schema.table`` (``main.orders``). Types are
DuckDB's own (``STRUCT(a INTEGER, b VARCHAR)``, ``INTEGER[]``, ``MAP(VARCHAR, INTEGER)``, enums); comments come
from ``COMMENT ON``. Every function is called by its name in the system catalog (``system.main.duckdb_tables()``):
a macro of the database of the same name cannot answer instead. Comments are cut to 2,000 characters and type
names to :data:`TYPE_NAME_MAX` in the queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dbmeta_app.schema.models import COMMENT_MAX, Column, ForeignKey, Table, qualified_name

_SYSTEM_SCHEMAS: Final = ("information_schema", "pg_catalog")
#: Every catalog function and built-in these queries call is named in the system catalog: a macro of the
#: database with the same name (a table macro ``duckdb_tables()``, a scalar ``hash``) would be called instead
#: and could forge the schema and its fingerprint.
_S: Final = "system.main."
#: Type names are cut in the catalog query to this many characters (an ENUM of 200,000 labels is a 5 MB type
#: name, repeated for every column of that type); an ellipsis marks the cut.
TYPE_NAME_MAX: Final = 200
# Comments are read cut to one character more than COMMENT_MAX (cut_comments adds the ellipsis).
_COMMENT_READ: Final = COMMENT_MAX + 1


def _where(include: Sequence[str], exclude: Sequence[str]) -> tuple[str, dict[str, Any]]:
    clause = f"database_name = {_S}current_database() AND NOT internal AND NOT temporary"
    params: dict[str, Any] = {}
    if include:
        clause += " AND schema_name IN :include"
        params["include"] = list(include)
    else:
        clause += " AND schema_name NOT IN :exclude"
        params["exclude"] = [*_SYSTEM_SCHEMAS, *exclude] or [""]
    return clause, params


def _text(sql: str, params: dict[str, Any]) -> sa.TextClause:
    text = sa.text(sql)
    for name in params:
        text = text.bindparams(sa.bindparam(name, expanding=True))
    return text


def reflect(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    """Read every table and view of the open database's described schemas (four queries)."""
    where, params = _where(include, exclude)
    relations: dict[tuple[str, str], dict[str, Any]] = {}
    for schema, name, comment in conn.execute(
        _text(
            f"SELECT schema_name, table_name, {_S}left(comment, {_COMMENT_READ}) FROM {_S}duckdb_tables() "
            f"WHERE {where}",
            params,
        ),
        params,
    ):
        relations[(schema, name)] = {"kind": "table", "comment": comment}
    for schema, name, comment in conn.execute(
        _text(
            f"SELECT schema_name, view_name, {_S}left(comment, {_COMMENT_READ}) FROM {_S}duckdb_views() "
            f"WHERE {where}",
            params,
        ),
        params,
    ):
        relations[(schema, name)] = {"kind": "view", "comment": comment}
    column_where = where.replace(" AND NOT temporary", "")
    columns: dict[tuple[str, str], list[tuple[str, str, bool, str | None]]] = defaultdict(list)
    for schema, table, name, type_name, nullable, comment in conn.execute(
        _text(
            f"SELECT schema_name, table_name, column_name, {_S}left(data_type, {TYPE_NAME_MAX + 1}), is_nullable, "
            f"{_S}left(comment, {_COMMENT_READ}) FROM {_S}duckdb_columns() "
            f"WHERE {column_where} ORDER BY schema_name, table_name, column_index",
            params,
        ),
        params,
    ):
        columns[(schema, table)].append((name, _type_name(str(type_name)), bool(nullable), comment or None))
    pks: dict[tuple[str, str], tuple[str, ...]] = {}
    fks: dict[tuple[str, str], list[ForeignKey]] = defaultdict(list)
    constraint_where = column_where.replace(" AND NOT internal", "")
    for schema, table, ctype, cols, ref_table, ref_cols in conn.execute(
        _text(
            "SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table, "
            f"referenced_column_names FROM {_S}duckdb_constraints() "
            f"WHERE {constraint_where} AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') "
            "ORDER BY schema_name, table_name, constraint_index",
            params,
        ),
        params,
    ):
        if ctype == "PRIMARY KEY":
            pks[(schema, table)] = tuple(cols)
        else:
            fks[(schema, table)].append(
                ForeignKey(
                    columns=tuple(cols),
                    ref_table=qualified_name(schema, str(ref_table)),
                    ref_columns=tuple(ref_cols or ()),
                )
            )
    out = []
    for (schema, name), info in relations.items():
        pk = pks.get((schema, name), ())
        out.append(
            Table(
                schema=schema,
                name=name,
                kind=info["kind"],
                columns=tuple(
                    Column(name=c, type=t, nullable=n and c not in pk, primary_key=c in pk, comment=cm)
                    for c, t, n, cm in columns.get((schema, name), ())
                ),
                primary_key=pk,
                foreign_keys=tuple(fks.get((schema, name), ())),
                comment=info["comment"] or None,
            )
        )
    return out


def fingerprint(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> str:
    """Hash what :func:`reflect` reads (relations, columns, comments, keys) in one query.

    Counts and sums are joined here, not with ``||`` in the query: a macro of the database may be named ``"||"``.
    """
    where, params = _where(include, exclude)
    column_where = where.replace(" AND NOT temporary", "")
    constraint_where = column_where.replace(" AND NOT internal", "")
    parts = (
        ("schema_name, table_name, comment", "duckdb_tables", where),
        ("schema_name, view_name, comment, sql", "duckdb_views", where),
        (
            "schema_name, table_name, column_name, column_index, data_type, is_nullable, comment",
            "duckdb_columns",
            column_where,
        ),
        ("schema_name, table_name, constraint_type, constraint_text", "duckdb_constraints", constraint_where),
    )
    sql = "SELECT " + ", ".join(
        f"(SELECT {_S}count_star() FROM {_S}{catalog}() WHERE {clause}), "
        f"(SELECT {_S}sum({_S}hash({columns})) FROM {_S}{catalog}() WHERE {clause})"
        for columns, catalog, clause in parts
    )
    row = conn.execute(_text(sql, params), params).one()
    return "|".join(f"{row[i]}:{row[i + 1] or 0}" for i in range(0, len(row), 2))


def live_kinds(conn: Connection, keys: set[str]) -> dict[str, str]:
    """What each relation is now: "table" or "view"."""
    out = {}
    for schema, name in conn.exec_driver_sql(
        f"SELECT schema_name, table_name FROM {_S}duckdb_tables() WHERE database_name = {_S}current_database()"
    ):
        out[f"{schema}.{name}"] = "table"
    for schema, name in conn.exec_driver_sql(
        f"SELECT schema_name, view_name FROM {_S}duckdb_views() WHERE database_name = {_S}current_database()"
    ):
        out[f"{schema}.{name}"] = "view"
    return {key: kind for key, kind in out.items() if key in keys}


def _type_name(text: str) -> str:
    """A type name as read (cut to TYPE_NAME_MAX + 1 characters in the query), with an ellipsis when cut."""
    return text if len(text) <= TYPE_NAME_MAX else text[: TYPE_NAME_MAX - 1] + "…"
