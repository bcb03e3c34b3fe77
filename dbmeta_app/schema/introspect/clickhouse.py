"""ClickHouse (a server through clickhouse-connect, or chDB in process): catalog reads from ``system``.

One query reads the whole schema (``system.tables``, ``system.columns``, the DDL of materialized views) and
its fingerprint; the fingerprint check runs the same catalog read on the server and returns only its hash.
Both are filtered on the databases the profile describes (by default all but ``system`` and
``INFORMATION_SCHEMA``).
Tables carry their :class:`~dbmeta_app.schema.models.Layout` (engine, sorting, primary, partition and
sampling keys; where a materialized view writes). Types are shown as ClickHouse writes them
(``LowCardinality(String)``, ``Nullable(UInt64)``, ``Array(…)``, ``Map(…)``, named ``Tuple(…)``): they are what
a query must handle (``arrayJoin``, ``m['key']``, ``t.field``). ``Nested`` columns come as their flattened
``name.field`` arrays, as queries use them. ClickHouse declares no foreign keys and its primary key is not
unique, so tables have neither ``primary_key`` columns nor foreign keys. The inner tables of materialized
views (``.inner.…``, ``.inner_id.…``) are left out: a query reads the view.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

import orjson
import sqlglot
from sqlalchemy.engine import Connection
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from dbmeta_app.schema.models import Column, Layout, Table

SYSTEM_DATABASES: Final = ("system", "INFORMATION_SCHEMA", "information_schema")
_NULLABLE: Final = ("Nullable(", "LowCardinality(Nullable(")
_KINDS: Final = {"View": "view", "MaterializedView": "materialized_view", "Dictionary": "dictionary"}


def quote_literal(value: str) -> str:
    """Quote a string as a ClickHouse literal (backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def database_filter(column: str, include: Sequence[str], exclude: Sequence[str]) -> str:
    """A WHERE condition on a database-name column: the included databases, or all but system and excluded."""
    if include:
        return f"{column} IN ({', '.join(quote_literal(d) for d in include)})"
    names = [*SYSTEM_DATABASES, *exclude]
    return f"{column} NOT IN ({', '.join(quote_literal(d) for d in names)})"


def _inner(name: str) -> bool:
    return name.startswith((".inner.", ".inner_id.", ".tmp"))


def _unquote(name: str) -> str:
    return ".".join(part.strip('`"') for part in re.findall(r"`[^`]+`|\"[^\"]+\"|[^.]+", name))


def _catalog_query(include: Sequence[str], exclude: Sequence[str]) -> str:
    """One statement: the tables, the columns (grouped per table) and the materialized views' DDL, each as one
    JSON array, and the fingerprint: order-independent sums of per-row hashes, computed in the same pass.

    One string per part, not one row per column: a row-by-row result costs the drivers (chDB's above all) far
    more in Python than the catalog read costs the server. :func:`fingerprint` runs the same read and asks for
    the hash alone.
    """
    where = database_filter("database", include, exclude)
    return (
        "SELECT tt.1 AS t, cc.1 AS c, m, concat(toString(tt.2), ':', toString(cc.2), ':', toString(cityHash64(m))) AS fp "
        "FROM (SELECT "
        "(SELECT (toJSONString(groupArray(r)), sum(cityHash64(r))) FROM (SELECT (database, name, engine, comment, "
        "sorting_key, primary_key, partition_key, sampling_key) AS r "
        f"FROM system.tables WHERE {where} AND NOT is_temporary)) AS tt, "
        "(SELECT (toJSONString(groupArray(r)), sum(cityHash64(r))) FROM (SELECT (database, table, "
        "arraySort(groupArray((position, name, type, comment)))) AS r "
        f"FROM system.columns WHERE {where} GROUP BY database, table)) AS cc, "
        "(SELECT toJSONString(arraySort(groupArray((database, name, create_table_query)))) FROM system.tables "
        f"WHERE {where} AND engine = 'MaterializedView') AS m)"
    )


def read(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> tuple[list[Table], str]:
    """Read every table, view, materialized view and dictionary of the described databases, and the catalog's
    fingerprint, in one query."""
    tables_json, columns_json, views_json, raw = conn.exec_driver_sql(_catalog_query(include, exclude)).one()
    columns = {
        (database, table): tuple(
            Column(name, type_name, type_name.startswith(_NULLABLE), False, None, comment or None)
            for _, name, type_name, comment in cols
        )
        for database, table, cols in orjson.loads(columns_json)
    }
    targets = {
        (database, name): materialized_view_target(create)
        for database, name, create in orjson.loads(views_json)
    }
    out = []
    for database, name, engine, comment, sorting, primary, partition, sampling in orjson.loads(tables_json):
        if _inner(name):
            continue
        layout = Layout(
            engine=engine,
            sorting_key=sorting or None,
            primary_key=primary if primary and primary != sorting else None,
            partition_key=partition or None,
            sampling_key=sampling or None,
            target=targets.get((database, name)),
        )
        out.append(
            Table(
                schema=database,
                name=name,
                kind=_KINDS.get(engine, "table"),
                columns=columns.get((database, name), ()),
                comment=comment or None,
                layout=layout,
            )
        )
    return out, str(raw)


def reflect(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    """Read every table, view, materialized view and dictionary of the described databases (one query)."""
    return read(conn, include, exclude)[0]


def fingerprint(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> str:
    """The hash of what :func:`read` reads, computed on the server (only a number comes back)."""
    value = conn.exec_driver_sql(f"SELECT fp FROM ({_catalog_query(include, exclude)})").scalar()
    return str(value)


#: Engines whose rows live in the database itself; any other (URL, S3, File, MySQL, Kafka, Distributed, Buffer…)
#: reads files, URLs or other servers when read.
LOCAL_ENGINES: Final = frozenset({"Memory", "Log", "TinyLog", "StripeLog", "Null", "Set", "Join"})


def is_local_engine(engine: str) -> bool:
    """Tell whether a table engine keeps its rows in the database (reading it reaches nothing else).

    A MergeTree's parts may still be on a disk that is not local (``SETTINGS disk = disk(type = web, …)``, an S3
    storage policy): see :func:`local_storage_policies`."""
    return engine.endswith("MergeTree") or engine in LOCAL_ENGINES


#: (policy, disk, disk type) of every storage policy: a table's ``storage_policy`` names one.
STORAGE_POLICIES_SQL: Final = (
    "SELECT p.policy_name, d.name, toString(d.type) FROM system.storage_policies AS p "
    "ARRAY JOIN p.disks AS disk INNER JOIN system.disks AS d ON d.name = disk"
)


def local_storage_policies(rows: Sequence[Sequence[object]]) -> set[str]:
    """The storage policies whose every disk is a local one (type ``Local``), from :data:`STORAGE_POLICIES_SQL`
    rows. A web, S3, Azure or HDFS disk (object storage), a cache or an encrypted disk over one, reads the network;
    a policy naming a disk the catalog does not list is not local either."""
    local: set[str] = set()
    remote: set[str] = set()
    for policy, _disk, kind in rows:
        (local if str(kind) == "Local" else remote).add(str(policy))
    return local - remote


def materialized_view_target(create_table_query: str) -> str | None:
    """The table a materialized view writes to (``TO db.table``), read from its DDL by tokens (quoted names
    respected), or None when it keeps an inner table or the DDL cannot be read. For display only: the reach check
    takes the target from the catalog (``system.tables.target_table``)."""
    tokens = ddl_tokens(create_table_query)
    if tokens is None:
        return None
    for i in top_level(tokens):
        token = tokens[i]
        if token.token_type == TokenType.ALIAS or token.text.upper() == "ENGINE":
            return None  # the query (or the inner table's engine) starts: no TO before it
        if i > 3 and token.text.upper() == "TO" and i + 1 < len(tokens):
            parts = [tokens[i + 1].text]
            if i + 3 < len(tokens) and tokens[i + 2].token_type == TokenType.DOT:
                parts.append(tokens[i + 3].text)
            return ".".join(parts)
    return None


def ddl_tokens(create_table_query: str) -> list[Token] | None:
    """A DDL text's ClickHouse tokens (string literals and quoted names kept whole), or None if it cannot be read."""
    try:
        return sqlglot.tokenize(create_table_query, read="clickhouse")
    except (SqlglotError, RecursionError, ValueError):
        return None


def top_level(tokens: list[Token]) -> Iterator[int]:
    """The indexes of the tokens outside every parenthesis (clause keywords of a CREATE statement)."""
    depth = 0
    for i, token in enumerate(tokens):
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0:
            yield i


def live_kinds(conn: Connection, keys: set[str], databases: Sequence[str]) -> dict[str, str]:
    """What each table is now: "table" (local data, readable), "view", or its engine.

    A table is "table" only when reading it reaches nothing outside the database: a local engine, on local disks,
    and column expressions (ALIAS, DEFAULT: computed on read, dictionaries folded) that the preflight's reach check
    admits (:func:`dbmeta_app.preflight.dialects.clickhouse.reach_problem`)."""
    rows = conn.exec_driver_sql(
        "SELECT database, name, engine, storage_policy FROM system.tables "
        f"WHERE {database_filter('database', databases, ())}"
    )
    out = {}
    policies: dict[str, str] = {}
    for database, name, engine, policy in rows:
        key = f"{database}.{name}"
        if key not in keys:
            continue
        engine = str(engine)
        if is_local_engine(engine):
            out[key] = "table"
            if policy:
                policies[key] = str(policy)
        elif engine in ("View", "MaterializedView"):
            out[key] = "view"
        else:
            out[key] = f"{engine} table"
    if policies:
        allowed = local_storage_policies(list(conn.exec_driver_sql(STORAGE_POLICIES_SQL)))
        for key, policy in policies.items():
            if policy not in allowed:
                out[key] = f"table on a disk that is not local ({policy})"
    return out
