"""Bulk reflection of a database into a Snapshot: catalog queries where they are faster, SQLAlchemy otherwise.

Every path reads the whole schema in a fixed number of queries (never one per table):
PostgreSQL and MySQL/MariaDB read their catalogs directly, ClickHouse and DuckDB through their modules in
:mod:`dbmeta_app.schema.introspect`; any other dialect (SQLite, Trino included)
goes through SQLAlchemy 2's bulk ``Inspector.get_multi_*`` API, one call per schema. SQLite is read with
its own pragmas (``pragma_table_xinfo``, ``pragma_foreign_key_list``), the snapshot SQLAlchemy would give:
SQLAlchemy's SQLite dialect runs regexes over the CREATE TABLE text that backtrack on hostile text (a
comment before a generated column: 28 s), and asking SQLite a view's columns expands the view, so views
whose expansion is over :data:`SQLITE_VIEW_MAX_RELATIONS` are not asked (``schema/sqlite_views.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import NoSuchTableError
from sqlglot import exp as glot_exp

import dbmeta_app.schema.sqlite_views as sqlite_views
from dbmeta_app.dialects import dialect_family
from dbmeta_app.schema.fingerprint import fingerprint_digest, schema_fingerprint
from dbmeta_app.schema.introspect import clickhouse, duckdb
from dbmeta_app.schema.models import COMMENT_MAX, Column, ForeignKey, Table, cut_comments, qualified_name

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = {
    "postgresql": {"pg_catalog", "information_schema", "pg_toast"},
    "mysql": {"mysql", "information_schema", "performance_schema", "sys"},
    "mariadb": {"mysql", "information_schema", "performance_schema", "sys"},
}

_PG_TYPE_ABBREV = (
    ("character varying", "varchar"),
    ("timestamp without time zone", "timestamp"),
    ("timestamp with time zone", "timestamptz"),
    ("time without time zone", "time"),
    ("time with time zone", "timetz"),
    ("double precision", "double"),
    ("character", "char"),
)


def short_type(type_name: str) -> str:
    """Shorten verbose catalog type names (``character varying(20)`` → ``varchar(20)``)."""
    lowered = type_name.strip()
    for long, short in _PG_TYPE_ABBREV:
        if lowered.startswith(long):
            return short + lowered[len(long) :]
    return lowered


def _schema_filter(schema: str, dialect: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include:
        return schema in include
    if schema in exclude or schema in SYSTEM_SCHEMAS.get(dialect, set()):
        return False
    return not (schema.startswith("pg_temp_") or schema.startswith("pg_toast_temp_"))


# --------------------------------------------------------------------------- PostgreSQL

# Comments are read cut (one character more than kept, so a cut one is marked): the database is untrusted,
# and a 24 MB comment would otherwise be held, cached and ranked by every process.
_COMMENT_READ = COMMENT_MAX + 1

_PG_SCHEMA_WHERE = """
    n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
    AND (cardinality(CAST(:include AS text[])) = 0 OR n.nspname = ANY(CAST(:include AS text[])))
    AND NOT (n.nspname = ANY(CAST(:exclude AS text[])))
    AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
"""

# The catalog lists every relation to anyone: what the role cannot read is not shown (a query the LLM writes
# over it could only fail). A table is shown with the columns the role may select (column grants).
_PG_READABLE = "pg_catalog.has_any_column_privilege(c.oid, 'SELECT')"

# Partitions and inheritance children are one logical table with their parent: querying the parent
# reads them all, so only the parent is shown.
_PG_NOT_CHILD = "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)"

_PG_TABLES = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind, pg_catalog."left"(d.description, {_COMMENT_READ})
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_description d
  ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition AND {_PG_NOT_CHILD} AND {_PG_SCHEMA_WHERE}
  AND {_PG_READABLE}
"""

_PG_COLUMNS = f"""
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
  pg_catalog."left"(d.description, {_COMMENT_READ})
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_description d
  ON d.objoid = a.attrelid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition AND {_PG_NOT_CHILD} AND {_PG_SCHEMA_WHERE}
  AND pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT')
ORDER BY a.attrelid, a.attnum
"""


def _pg_all_columns_readable(relation: str, attnums: str) -> str:
    """SQL: the role may select every column of ``relation`` numbered in the array ``attnums``."""
    return (
        f"NOT EXISTS (SELECT 1 FROM unnest({attnums}) k(num)"
        f" WHERE NOT pg_catalog.has_column_privilege({relation}, k.num, 'SELECT'))"
    )


_PG_CONSTRAINTS = f"""
SELECT con.conrelid, con.contype, con.conname,
  ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.i),
  fn.nspname, fc.relname,
  ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.i)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'f') AND {_PG_SCHEMA_WHERE}
  -- a foreign key to a partitioned table is cloned for each partition: the partitions fold into the parent
  AND NOT coalesce(fc.relispartition, false)
  -- a key names its columns and its target: shown only when the role may read all of them
  AND {_pg_all_columns_readable("con.conrelid", "con.conkey")}
  AND (con.contype <> 'f' OR (pg_catalog.has_schema_privilege(fn.oid, 'USAGE')
       AND {_pg_all_columns_readable("con.confrelid", "con.confkey")}))
ORDER BY con.conrelid, con.conname
"""

_PG_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "materialized_view"}


def _reflect_postgresql(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    params = {"include": list(include), "exclude": list(exclude)}
    tables: dict[int, dict[str, Any]] = {}
    for oid, schema, name, relkind, comment in conn.execute(sa.text(_PG_TABLES), params):
        tables[oid] = {"schema": schema, "name": name, "kind": _PG_KINDS[relkind], "comment": comment}
    columns: dict[int, list[tuple[str, str, bool, str | None]]] = defaultdict(list)
    for relid, col, type_name, notnull, comment in conn.execute(sa.text(_PG_COLUMNS), params):
        columns[relid].append((col, short_type(type_name), not notnull, comment))
    pks: dict[int, tuple[str, ...]] = {}
    fks: dict[int, list[ForeignKey]] = defaultdict(list)
    for relid, contype, conname, cols, ref_schema, ref_table, ref_cols in conn.execute(
        sa.text(_PG_CONSTRAINTS), params
    ):
        if contype == "p":
            pks[relid] = tuple(cols)
        else:
            fks[relid].append(
                ForeignKey(
                    columns=tuple(cols),
                    ref_table=qualified_name(ref_schema, ref_table),
                    ref_columns=tuple(ref_cols),
                    name=conname,
                )
            )
    out = []
    for oid, info in tables.items():
        pk = pks.get(oid, ())
        pk_set = set(pk)
        cols = tuple(
            Column(name=c, type=t, nullable=nullable, primary_key=c in pk_set, comment=comment)
            for c, t, nullable, comment in columns.get(oid, ())
        )
        out.append(
            Table(
                schema=info["schema"],
                name=info["name"],
                kind=info["kind"],
                columns=cols,
                primary_key=pk,
                foreign_keys=tuple(fks.get(oid, ())),
                comment=info["comment"] or None,
            )
        )
    return out


# --------------------------------------------------------------------------- MySQL / MariaDB

_MY_SCHEMA_WHERE = """
    {alias}.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
"""


def _reflect_mysql(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    def where(alias: str) -> str:
        return _MY_SCHEMA_WHERE.format(alias=alias)

    tables: dict[tuple[str, str], dict[str, Any]] = {}
    for schema, name, ttype, comment in conn.execute(
        sa.text(
            "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_TYPE, "
            f"LEFT(t.TABLE_COMMENT, {_COMMENT_READ}) "
            f"FROM information_schema.TABLES t WHERE {where('t')}"
        )
    ):
        if not _schema_filter(schema, "mysql", include, exclude):
            continue
        kind = "view" if ttype == "VIEW" else "table"
        # MySQL puts a placeholder comment on views.
        text = comment if comment and comment != "VIEW" else None
        tables[(schema, name)] = {"kind": kind, "comment": text}
    columns: dict[tuple[str, str], list[tuple[str, str, bool, str | None]]] = defaultdict(list)
    # information_schema lists only the columns the user has a privilege on, KEY_COLUMN_USAGE every key of a
    # table it may see: a key is shown only when every column it names (both ends) is one the user may see
    visible: set[tuple[str, str, str]] = set()
    for schema, name, col, ctype, nullable, comment in conn.execute(
        sa.text(
            "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, "
            f"LEFT(c.COLUMN_COMMENT, {_COMMENT_READ}) "
            f"FROM information_schema.COLUMNS c WHERE {where('c')} "
            "ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
        )
    ):
        visible.add((schema, name, col))
        if (schema, name) in tables:
            columns[(schema, name)].append((col, str(ctype), nullable == "YES", comment or None))
    pks: dict[tuple[str, str], list[str]] = defaultdict(list)
    fk_parts: dict[tuple[str, str, str], list[tuple[str, str, str, str]]] = defaultdict(list)
    for schema, name, cname, col, ref_schema, ref_table, ref_col in conn.execute(
        sa.text(
            "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, "
            "k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME "
            f"FROM information_schema.KEY_COLUMN_USAGE k WHERE {where('k')} "
            "AND (k.CONSTRAINT_NAME = 'PRIMARY' OR k.REFERENCED_TABLE_NAME IS NOT NULL) "
            "ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        )
    ):
        if (schema, name) not in tables:
            continue
        if cname == "PRIMARY":
            pks[(schema, name)].append(col)
        else:
            fk_parts[(schema, name, cname)].append((col, ref_schema, ref_table, ref_col))
    fks: dict[tuple[str, str], list[ForeignKey]] = defaultdict(list)
    for (schema, name, cname), parts in fk_parts.items():
        if not all((schema, name, p[0]) in visible and (p[1], p[2], p[3]) in visible for p in parts):
            continue
        fks[(schema, name)].append(
            ForeignKey(
                columns=tuple(p[0] for p in parts),
                ref_table=qualified_name(parts[0][1], parts[0][2]),
                ref_columns=tuple(p[3] for p in parts),
                name=cname,
            )
        )
    out = []
    for (schema, name), info in tables.items():
        pk = tuple(pks.get((schema, name), ()))
        if not all((schema, name, c) in visible for c in pk):
            pk = ()
        cols = tuple(
            Column(name=c, type=t, nullable=n, primary_key=c in pk, comment=cm)
            for c, t, n, cm in columns.get((schema, name), ())
        )
        out.append(
            Table(
                schema=schema,
                name=name,
                kind=info["kind"],
                columns=cols,
                primary_key=pk,
                foreign_keys=tuple(fks.get((schema, name), ())),
                comment=info["comment"],
            )
        )
    return out


# --------------------------------------------------------------------------- generic (SQLAlchemy)


def _type_text(type_: Any, dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - an exotic type must not fail the whole reflection
        return type(type_).__name__


def _reflect_generic(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    insp: Inspector = sa.inspect(conn)
    dialect = conn.dialect.name
    schemas = [s for s in insp.get_schema_names() if _schema_filter(s, dialect, include, exclude)]
    default_schema = insp.default_schema_name
    out: list[Table] = []
    for schema in schemas:
        # SQLite's main schema keeps bare names; everything else is qualified.
        key_schema = None if dialect == "sqlite" and schema == (default_schema or "main") else schema
        kind = sa.engine.reflection.ObjectKind.ANY
        arg_schema = None if schema == default_schema else schema
        columns = insp.get_multi_columns(schema=arg_schema, kind=kind)
        pks = insp.get_multi_pk_constraint(schema=arg_schema, kind=kind)
        fks = insp.get_multi_foreign_keys(schema=arg_schema, kind=kind)
        try:
            comments = insp.get_multi_table_comment(schema=arg_schema, kind=kind)
        except NotImplementedError:
            comments = {}
        views = set(insp.get_view_names(schema=arg_schema))
        for (_, name), cols in columns.items():
            pk_info: Any = pks.get((arg_schema, name)) or {}
            pk_cols = tuple(pk_info.get("constrained_columns") or ())
            fk_list = []
            for fk in fks.get((arg_schema, name), ()):
                ref_schema = fk.get("referred_schema")
                if ref_schema is None or ref_schema == default_schema:
                    ref_schema = key_schema if dialect == "sqlite" else (ref_schema or schema)
                fk_list.append(
                    ForeignKey(
                        columns=tuple(fk["constrained_columns"]),
                        ref_table=qualified_name(ref_schema, fk["referred_table"]),
                        ref_columns=tuple(fk["referred_columns"]),
                        name=fk.get("name"),
                    )
                )
            comment_info: Any = comments.get((arg_schema, name)) or {}
            comment = comment_info.get("text")
            out.append(
                Table(
                    schema=key_schema,
                    name=name,
                    kind="view" if name in views else "table",
                    columns=tuple(
                        Column(
                            name=c["name"],
                            type=_type_text(c["type"], conn.dialect),
                            nullable=bool(c.get("nullable", True)),
                            primary_key=c["name"] in pk_cols,
                            comment=c.get("comment") or None,
                        )
                        for c in cols
                    ),
                    primary_key=pk_cols,
                    foreign_keys=tuple(fk_list),
                    comment=comment or None,
                )
            )
    return out


# --------------------------------------------------------------------------- SQLite

#: A view SQLite would expand to more relations than this is not asked for its columns (the preflight's
#: default planned-relations bound: 3 x preflight.max_relations); nor are views past
#: SQLITE_VIEW_RELATIONS_TOTAL in one reflection. Their columns come from their own select list, unexpanded.
SQLITE_VIEW_MAX_RELATIONS = 6_000
SQLITE_VIEW_RELATIONS_TOTAL = 30_000

_SQLITE_OBJECTS = (
    "SELECT type, name FROM {schema}.sqlite_master WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY type, name"
)
_SQLITE_VIEWS = (
    "SELECT name, CASE WHEN length(sql) <= ? THEN sql END FROM {schema}.sqlite_master WHERE type = 'view'"
)
# Tables, and the views given (a JSON array of names): their columns, as SQLite declared them.
_SQLITE_COLUMNS = (
    'SELECT m.name, p.name, p.type, p."notnull", p.pk, p.hidden '
    "FROM {schema}.sqlite_master AS m JOIN pragma_table_xinfo(m.name, ?) AS p "
    "WHERE (m.type = 'table' AND m.name NOT LIKE 'sqlite~_%' ESCAPE '~') "
    "OR (m.type = 'view' AND m.name IN (SELECT value FROM json_each(?)))"
)
_SQLITE_FOREIGN_KEYS = (
    'SELECT m.name, f.id, f."table", f."from", f."to" '
    "FROM {schema}.sqlite_master AS m JOIN pragma_foreign_key_list(m.name, ?) AS f "
    "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite~_%' ESCAPE '~'"
)
_SQLITE_FK_NAMES_MAX_CHARS = 100_000


def _sqlite_type(declared: str, hidden: int, dialect: sa.Dialect) -> str:
    """The type text SQLAlchemy's SQLite dialect reflects for a declared type (its affinity rules)."""
    type_ = declared.upper()
    if hidden in (2, 3):  # SQLite reports a generated column's type as "INTEGER GENERATED ALWAYS"
        type_ = type_.replace("GENERATED", "").replace("ALWAYS", "").strip()
    resolve = getattr(dialect, "_resolve_type_affinity", None)
    if resolve is None:  # pragma: no cover - SQLAlchemy's SQLite dialect always has it
        return type_
    return _type_text(resolve(type_), dialect)


def _sqlite_fk_names(sql: str | None) -> list[tuple[str | None, tuple[str, ...]]]:
    """Table-level FOREIGN KEY clauses in text order: (constraint name, columns); [] when not parsed."""
    if not sql or len(sql) > _SQLITE_FK_NAMES_MAX_CHARS or "foreign" not in sql.lower():
        return []
    tree = sqlite_views.parse_view(sql)
    if tree is None:
        return []
    out: list[tuple[str | None, tuple[str, ...]]] = []
    for fk in tree.find_all(glot_exp.ForeignKey):
        parent = fk.parent
        name = parent.name if isinstance(parent, glot_exp.Constraint) else None
        out.append((name or None, tuple(e.name for e in fk.expressions)))
    return out


def _sqlite_view_columns(sql: str | None) -> list[str]:
    """A view's column names from its own definition (its column list, or its first select list), unexpanded."""
    tree = sqlite_views.parse_view(sql) if sql else None
    if not isinstance(tree, glot_exp.Create):
        return []
    target = tree.this
    if isinstance(target, glot_exp.Schema) and target.expressions:
        return [e.name for e in target.expressions]
    query = tree.expression
    while isinstance(query, glot_exp.SetOperation):
        query = query.this
    if not isinstance(query, glot_exp.Select) or any(isinstance(e, glot_exp.Star) for e in query.expressions):
        return []
    return [e.alias_or_name or e.sql(dialect="sqlite") for e in query.expressions]


def _reflect_sqlite(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    dialect = conn.dialect
    schemas = [
        str(row[1])
        for row in conn.exec_driver_sql("PRAGMA database_list")
        if row[1] != "temp" and _schema_filter(str(row[1]), "sqlite", include, exclude)
    ]
    out: list[Table] = []
    for schema in schemas:
        quoted = dialect.identifier_preparer.quote_identifier(schema)
        key_schema = None if schema == "main" else schema
        objects = conn.exec_driver_sql(_SQLITE_OBJECTS.format(schema=quoted)).fetchall()
        definitions = {
            str(name): sql
            for name, sql in conn.exec_driver_sql(
                _SQLITE_VIEWS.format(schema=quoted), (sqlite_views.MAX_DEFINITION_CHARS,)
            )
        }
        by_lower = {name.lower(): sql for name, sql in definitions.items()}
        sizes = sqlite_views.expansion_sizes(by_lower, sqlite_views.ReadsMemo())
        asked: list[str] = []
        spent = 0
        unexpanded: dict[str, str] = {}
        for name in sorted(definitions):
            size = sizes.get(name.lower())
            if (
                size is not None
                and size <= SQLITE_VIEW_MAX_RELATIONS
                and spent + size <= SQLITE_VIEW_RELATIONS_TOTAL
            ):
                asked.append(name)
                spent += size
            else:
                why = (
                    "its definition is beyond what the service parses"
                    if size is None
                    else f"SQLite would expand it to {size:,} relations"
                    if size > SQLITE_VIEW_MAX_RELATIONS
                    else "the views of this database expand to too many relations in all"
                )
                unexpanded[name] = f"(columns of this view not expanded: {why})"
        columns: dict[str, list[tuple[str, str, bool, int]]] = defaultdict(list)
        for table, col, declared, notnull, pk, hidden in conn.exec_driver_sql(
            _SQLITE_COLUMNS.format(schema=quoted), (schema, json.dumps(asked))
        ):
            if hidden == 1:  # a virtual table's hidden column
                continue
            columns[table].append((col, _sqlite_type(str(declared or ""), hidden, dialect), not notnull, pk))
        pks = {
            table.lower(): tuple(c[0] for c in sorted((c for c in cols if c[3] > 0), key=lambda c: c[3]))
            for table, cols in columns.items()
        }
        fk_rows: dict[str, dict[int, list[tuple[str, str, str | None]]]] = defaultdict(dict)
        for table, fk_id, ref_table, col, ref_col in conn.exec_driver_sql(
            _SQLITE_FOREIGN_KEYS.format(schema=quoted), (schema,)
        ):
            fk_rows[table].setdefault(fk_id, []).append((ref_table, col, ref_col))
        table_sql: dict[str, str | None] = {}
        if fk_rows:
            table_sql = dict(
                conn.exec_driver_sql(
                    f"SELECT name, CASE WHEN length(sql) <= ? THEN sql END FROM {quoted}.sqlite_master "
                    "WHERE type = 'table'",
                    (_SQLITE_FK_NAMES_MAX_CHARS,),
                ).fetchall()
            )
        for kind, name in objects:
            name = str(name)
            fks = _sqlite_foreign_keys(fk_rows.get(name, {}), pks, key_schema, table_sql.get(name))
            if kind == "view" and name in unexpanded:
                cols = tuple(
                    Column(name=c, type="", nullable=True, primary_key=False)
                    for c in _sqlite_view_columns(definitions[name])
                )
                comment: str | None = unexpanded[name]
            else:
                pk_cols = pks.get(name.lower(), ())
                cols = tuple(
                    Column(name=c, type=t, nullable=nullable, primary_key=c in pk_cols)
                    for c, t, nullable, _ in columns.get(name, ())
                )
                comment = None
            out.append(
                Table(
                    schema=key_schema,
                    name=name,
                    kind="view" if kind == "view" else "table",
                    columns=cols,
                    primary_key=pks.get(name.lower(), ()) if kind == "table" else (),
                    foreign_keys=fks,
                    comment=comment,
                )
            )
    return out


def _sqlite_foreign_keys(
    rows: dict[int, list[tuple[str, str, str | None]]],
    pks: dict[str, tuple[str, ...]],
    key_schema: str | None,
    table_sql: str | None,
) -> tuple[ForeignKey, ...]:
    """Foreign keys as SQLAlchemy orders and names them: the table-level clauses in text order, then the rest."""
    found: list[ForeignKey] = []
    for parts in rows.values():
        ref_table = parts[0][0]
        cols = tuple(p[1] for p in parts)
        ref_cols = tuple(p[2] for p in parts if p[2])
        if not ref_cols:  # no referred columns written: the referred table's primary key
            ref_cols = pks.get(ref_table.lower(), ())
        found.append(
            ForeignKey(columns=cols, ref_table=qualified_name(key_schema, ref_table), ref_columns=ref_cols)
        )
    first: list[ForeignKey] = []
    for name, cols in _sqlite_fk_names(table_sql):
        for fk in found:
            if fk.columns == cols and fk not in first:
                first.append(dataclasses.replace(fk, name=name))
                found.remove(fk)
                break
    return tuple(first + found)


# --------------------------------------------------------------------------- entry point

_REFLECTORS = {
    "postgresql": _reflect_postgresql,
    "mysql": _reflect_mysql,
    "mariadb": _reflect_mysql,
    "clickhouse": clickhouse.reflect,
    "duckdb": duckdb.reflect,
    "sqlite": _reflect_sqlite,
}


def reflect_with_fingerprint(
    engine: Engine, include_schemas: Sequence[str] = (), exclude_schemas: Sequence[str] = ()
) -> tuple[list[Table], str]:
    """Read the schema and its fingerprint ("" when the dialect has none), as consistently as the dialect allows.

    ClickHouse reads both in one query. Elsewhere the fingerprint is read first: a change made while the
    schema is read shows up as drift at the next check.
    """
    if dialect_family(engine.dialect.name) == "clickhouse":
        with engine.connect() as conn:
            tables, raw = clickhouse.read(conn, list(include_schemas), list(exclude_schemas))
        return [cut_comments(t) for t in tables], fingerprint_digest(raw)
    fingerprint = schema_fingerprint(engine, include_schemas, exclude_schemas) or ""
    return reflect_tables(engine, include_schemas, exclude_schemas), fingerprint


def reflect_tables(
    engine: Engine, include_schemas: Sequence[str] = (), exclude_schemas: Sequence[str] = ()
) -> list[Table]:
    """Read every table and view of every non-system schema, in bulk."""
    reflector = _REFLECTORS.get(dialect_family(engine.dialect.name), _reflect_generic)
    with engine.connect() as conn:
        try:
            tables = reflector(conn, list(include_schemas), list(exclude_schemas))
        except NoSuchTableError:  # a table dropped while reading: read again once
            tables = reflector(conn, list(include_schemas), list(exclude_schemas))
    # every dialect's comments end up cut to the same length (in SQL above where the dialect allows it)
    return [cut_comments(t) for t in tables]
