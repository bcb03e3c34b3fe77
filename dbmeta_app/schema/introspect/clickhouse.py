"""ClickHouse (a server through clickhouse-connect, or chDB in process): catalog reads from ``system``.

Two queries read the whole schema (``system.tables``, ``system.columns``), one the fingerprint; every one is
filtered on the databases the profile describes (by default all but ``system`` and ``INFORMATION_SCHEMA``).
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
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from sqlalchemy.engine import Connection

from dbmeta_app.schema.models import Column, Layout, Table

SYSTEM_DATABASES: Final = ("system", "INFORMATION_SCHEMA", "information_schema")
_KINDS: Final = {"View": "view", "MaterializedView": "materialized_view", "Dictionary": "dictionary"}
_TO: Final = re.compile(r"\bTO\s+((?:`[^`]+`|\"[^\"]+\"|[\w$]+)(?:\.(?:`[^`]+`|\"[^\"]+\"|[\w$]+))?)\s", re.I)


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


def reflect(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> list[Table]:
    """Read every table, view, materialized view and dictionary of the described databases (two queries)."""
    tables = conn.exec_driver_sql(
        "SELECT database, name, engine, comment, sorting_key, primary_key, partition_key, sampling_key, "
        "create_table_query FROM system.tables "
        f"WHERE {database_filter('database', include, exclude)} AND NOT is_temporary"
    ).fetchall()
    columns: dict[tuple[str, str], list[Column]] = defaultdict(list)
    for database, table, name, type_name, comment in conn.exec_driver_sql(
        "SELECT database, table, name, type, comment FROM system.columns "
        f"WHERE {database_filter('database', include, exclude)} ORDER BY database, table, position"
    ):
        columns[(str(database), str(table))].append(
            Column(
                name=str(name),
                type=str(type_name),
                nullable=str(type_name).startswith(("Nullable(", "LowCardinality(Nullable(")),
                comment=str(comment) or None,
            )
        )
    out = []
    for database, name, engine, comment, sorting, primary, partition, sampling, create in tables:
        name, engine = str(name), str(engine)
        if _inner(name):
            continue
        kind = _KINDS.get(engine, "table")
        target = None
        if kind == "materialized_view":
            found = _TO.search(str(create).split(" AS ", 1)[0] + " ")
            target = _unquote(found.group(1)) if found else None
        layout = Layout(
            engine=engine,
            sorting_key=str(sorting) or None,
            primary_key=str(primary) if primary and primary != sorting else None,
            partition_key=str(partition) or None,
            sampling_key=str(sampling) or None,
            target=target,
        )
        out.append(
            Table(
                schema=str(database),
                name=name,
                kind=kind,
                columns=tuple(columns.get((str(database), name), ())),
                comment=str(comment) or None,
                layout=layout,
            )
        )
    return out


def fingerprint(conn: Connection, include: Sequence[str], exclude: Sequence[str]) -> str:
    """Hash the described databases' table definitions (columns, types, comments, keys: all in the DDL)."""
    row = conn.exec_driver_sql(
        "SELECT count(), sum(cityHash64(database, name, create_table_query, comment)) FROM system.tables "
        f"WHERE {database_filter('database', include, exclude)} AND NOT is_temporary"
    ).one()
    return f"{row[0]}:{row[1]}"


#: Engines whose rows live in the database itself; any other (URL, S3, MySQL, Kafka, Distributed, …) reads
#: files, URLs or other servers when read.
LOCAL_ENGINES: Final = frozenset({"Memory", "Log", "TinyLog", "StripeLog"})


def live_kinds(conn: Connection, keys: set[str], databases: Sequence[str]) -> dict[str, str]:
    """What each table is now: "table" (local data, readable), "view", or its engine."""
    rows = conn.exec_driver_sql(
        f"SELECT database, name, engine FROM system.tables WHERE {database_filter('database', databases, ())}"
    )
    out = {}
    for database, name, engine in rows:
        key = f"{database}.{name}"
        if key not in keys:
            continue
        engine = str(engine)
        if engine.endswith("MergeTree") or engine in LOCAL_ENGINES:
            out[key] = "table"
        elif engine in ("View", "MaterializedView"):
            out[key] = "view"
        else:
            out[key] = f"{engine} table"
    return out
