"""Sample rows of a profile's tables: read only where reading runs nothing, bounded in time, size and number.

Reading a view runs its query, and the functions it calls, with whatever effects they have; a foreign table
reaches another server (or, with file_fdw's ``program``, runs a command); a MariaDB CONNECT or FEDERATED
table reads files or other servers. So rows are read only from:

- base tables, confirmed against the live catalog at read time (a snapshot may be stale, and SQLAlchemy's
  reflection calls a foreign table a table): PostgreSQL ``relkind`` r/p, MySQL/MariaDB ``BASE TABLE`` with a
  storage engine that keeps its own data, SQLite ``sqlite_master`` tables that are not virtual, ClickHouse
  tables of a MergeTree or local Log/Memory engine (never URL, S3, MySQL, Distributed, …; dictionaries are not
  read), DuckDB tables;
- views (and materialised views) the profile allow-lists (``preflight: {sample_views: [...]}``);
- and, of those, what a relation policy check does not refuse (:data:`RelationCheck`, called once per table
  set: e.g. tables with row-level security policies, whose expressions run on every read).

Each read runs in the same read-only, time-boxed, rolled-back and reset session as a preflight EXPLAIN
(:mod:`dbmeta_app.db.session`), on the profile's preflight pool, inside one slot of its concurrency bound.
Values are cut on the server (the first characters of their text, a byte count for binary values), so a
table of 100 MB documents costs a few hundred bytes, on the server too: PostgreSQL text is cut with ``left()``,
which fetches and decompresses only the prefix of a TOASTed value (pglz; an lz4 value stored larger than
:data:`SAMPLE_STORED_MAX` is shown as its size), and a value of any other type stored larger than
:data:`SAMPLE_STORED_MAX` (``pg_column_size``, which reads no data) is shown as its size, never converted to
text; a value of a type that is not a flat built-in scalar (arrays, jsonb, composite, range, the database's own
types: their text is not bounded by their size) is converted only when stored uncompressed in at most
:data:`SAMPLE_NESTED_STORED_MAX` bytes. Generated columns the database computes on every read (MariaDB/MySQL and SQLite ``VIRTUAL``, PostgreSQL
18 virtual, every DuckDB generated column, ClickHouse ``ALIAS``) are not read (:data:`GENERATED`). DuckDB reads
in this process: its built-ins are called by their system-catalog names, a database that redefines one is not
read at all, an allow-listed view passes the preflight's reach check first, and every DuckDB connection has a
memory limit (``dbmeta_app.db.engines.DUCKDB_MEMORY_LIMIT``: a huge value fails the read, it is not loaded). All the reads of one call share one deadline
(``SamplePolicy.budget_ms`` plus ``table_ms`` per table): tables not reached in time are reported, not read.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from dbmeta_app.db.admission import Admission
from dbmeta_app.db.session import SessionRefused, read_only_session
from dbmeta_app.dialects import dialect_family
from dbmeta_app.errors import BusyError
from dbmeta_app.schema.introspect import clickhouse, duckdb
from dbmeta_app.schema.models import Table
from dbmeta_app.scrub import scrub

__all__ = [
    "DEADLINE_NOTE",
    "FAILED_NOTE",
    "GENERATED",
    "REFUSED_NOTE",
    "RETRY_NOTES",
    "SAMPLE_BUDGET_MS",
    "SAMPLE_STORED_MAX",
    "SAMPLE_TABLE_MS",
    "SAMPLE_VALUE_MAX",
    "TIMEOUT_NOTE",
    "TOO_LARGE_NOTE",
    "RelationCheck",
    "SamplePolicy",
    "Samples",
    "read_samples",
    "sample_rows",
    "sampleable",
]

log = logging.getLogger(__name__)

SAMPLE_VALUE_MAX: Final = 60
SAMPLE_TIMEOUT_MS: Final = 2_000
#: One deadline for all the sample reads of one call (one snapshot read): what is not read by then is not read.
#: It grows with the tables to read (a read takes 5–15 ms on a local server: a warehouse of 3,000 tables is read
#: in about 40 s of its 85), so only tables that make the reads wait (locked, slow) lose theirs.
SAMPLE_BUDGET_MS: Final = 10_000
SAMPLE_TABLE_MS: Final = 25
#: PostgreSQL: a value stored in more bytes than this (compressed, as ``pg_column_size`` says), or stored
#: compressed at all, is not turned into text on the server, except text/varchar cut by ``left()`` (which
#: decompresses only the prefix).
SAMPLE_STORED_MAX: Final = 8_192
#: PostgreSQL: a value of any other type than a flat built-in scalar (arrays, jsonb, composite, range, domain,
#: a type of the database's) is turned into text only when stored uncompressed in at most this many bytes. Its
#: text is not bounded by its size: a numeric holds 16,383 decimal places in 8 bytes, so a 1.9 KB compressed
#: array of them is 327 MB of text, built whole by the output function before any cut.
SAMPLE_NESTED_STORED_MAX: Final = 256
#: PostgreSQL built-in scalar types whose text is at most a few times their stored size (numeric: one value's
#: text is at most ~150 KB): a value of these is turned into text when stored in at most SAMPLE_STORED_MAX.
_PG_FLAT_TYPES: Final = (
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "money",
    "oid",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "bpchar",
    "char",
    "name",
    "json",
    "xml",
    "bit",
    "varbit",
    "point",
    "lseg",
    "box",
    "line",
    "path",
    "polygon",
    "circle",
    "tsvector",
    "tsquery",
    "pg_lsn",
)
_PG_FLAT_TYPE: Final = re.compile(
    r"(boolean|smallint|integer|bigint|real|double precision|numeric(\(\d+(,\s*\d+)?\))?|money|oid|date|"
    r"(time|timestamp)(\(\d\))?( with(out)? time zone)?|interval.*|uuid|inet|cidr|macaddr8?|"
    r"(character|bit|bit varying)(\(\d+\))?|\"char\"|name|json|xml|point|lseg|box|line|path|polygon|circle|"
    r"tsvector|tsquery|pg_lsn)"
)
#: What a sample shows for a generated column the database would compute to read it.
GENERATED: Final = "<generated>"
#: What the sample reads of a call (budget) left unread.
DEADLINE_NOTE: Final = "not sampled: the sample reads ran out of their time budget"
#: A read that hit its own timeout (a table locked by its owner, a slow one): read again at the next refresh.
TIMEOUT_NOTE: Final = "not sampled: the read timed out (a lock, or a slow table)"
#: A read that failed otherwise (a privilege, a broken table): the service log says why.
FAILED_NOTE: Final = "not sampled: the read failed (the service log says why)"
#: A read that ran out of the memory the service allows itself for the database (a huge value): not retried.
TOO_LARGE_NOTE: Final = "not sampled: a value is too large to read within the service's memory bound"
#: A table the routine policy does not let the service read (what reading it would run): the reason follows.
REFUSED_NOTE: Final = "not sampled: refused: "
#: The notes of tables whose samples a later read may get (a snapshot holding one is read again at its refresh).
RETRY_NOTES: Final = frozenset({DEADLINE_NOTE, TIMEOUT_NOTE})
# SQLSTATEs of a statement cut by its timeout: query_canceled (statement_timeout), lock_not_available
_TIMED_OUT: Final = ("57014", "55P03")
_PG_TEXT_TYPE: Final = re.compile(r"(text|varchar|character varying)(\(\d+\))?")

#: Given a connection (in a read-only session) and the tables about to be read, return those whose rows must
#: not be read, each with the reason (e.g. row-level security policies, virtual generated columns).
RelationCheck = Callable[[Connection, Sequence[Table]], Mapping[str, str]]

# Storage engines that keep their own data: anything else (CONNECT, FEDERATED, SPIDER, ...) reads files or
# other servers when read.
_MYSQL_LOCAL_ENGINES: Final = frozenset(
    {
        "innodb",
        "myisam",
        "aria",
        "memory",
        "heap",
        "archive",
        "columnstore",
        "rocksdb",
        "tokudb",
        "mrg_myisam",
    }
)
# DuckDB types whose text is no bigger than a few times their stored value (VARCHAR and JSON: bounded by the
# connection's memory_limit, measured; an ENUM whose whole type name was read, uncut: labels of at most
# duckdb.TYPE_NAME_MAX characters). Any other type is not converted to text by the sample read: the text of a
# LIST, STRUCT, MAP, UNION or ARRAY (its keys, its elements, an ENUM's labels, a blob's escapes, for every
# element) is built outside memory_limit (audit B #1: a 536 KB file, 1.4 GB).
_DUCKDB_FLAT_TYPE: Final = re.compile(
    r"(boolean|tinyint|smallint|integer|bigint|hugeint|utinyint|usmallint|uinteger|ubigint|uhugeint|float|"
    r"double|decimal\(\d+,\s*\d+\)|date|time|time with time zone|time_ns|timestamp|timestamp with time zone|"
    r"timestamp_s|timestamp_ms|timestamp_ns|interval|uuid|varchar|json|enum\(.*\))",
    re.IGNORECASE | re.DOTALL,
)
_MYSQL_BINARY_TYPES: Final = (
    "blob",
    "tinyblob",
    "mediumblob",
    "longblob",
    "binary",
    "varbinary",
    "bit",
    "geometry",
)


@dataclass(frozen=True, slots=True)
class SamplePolicy:
    """How a profile's sample rows may be read."""

    timeout_ms: int = SAMPLE_TIMEOUT_MS
    allowed_views: tuple[str, ...] = ()
    admission: Admission | None = None
    retry_after: int = 1
    relation_check: RelationCheck | None = None
    #: one deadline for every read of a call (the catalog check included), in milliseconds: budget_ms, plus
    #: table_ms for each table to read
    budget_ms: int = SAMPLE_BUDGET_MS
    table_ms: int = SAMPLE_TABLE_MS


Rows = tuple[tuple[str | None, ...], ...]


@dataclass(frozen=True, slots=True)
class Samples:
    """What :func:`read_samples` read: rows by table key, and the tables it had no time left to read."""

    rows: dict[str, Rows]
    unsampled: dict[str, str]


def sample_rows(
    engine: Engine, tables: Iterable[Table], limit: int, policy: SamplePolicy | None = None
) -> dict[str, Rows]:
    """Read up to ``limit`` rows of each table the policy allows (values cut); a table that fails is skipped.

    Raises :class:`~dbmeta_app.errors.BusyError` when the profile's concurrency bound has no slot in time.
    """
    return read_samples(engine, tables, limit, policy).rows


def read_samples(
    engine: Engine, tables: Iterable[Table], limit: int, policy: SamplePolicy | None = None
) -> Samples:
    """:func:`sample_rows`, saying which tables were not read because the call's time budget ran out."""
    rules = policy or SamplePolicy()
    candidates = [
        t for t in tables if t.columns and (t.kind == "table" or _allowed_view(t, rules.allowed_views))
    ]
    budget_ms = max(0, rules.budget_ms) + max(0, rules.table_ms) * len(candidates)
    deadline = time.monotonic() + budget_ms / 1000
    if not candidates or limit <= 0:
        return Samples({}, {})
    with _slot(rules):
        left_ms = _left_ms(deadline, rules)
        if left_ms <= 0:
            return Samples({}, dict.fromkeys((t.key for t in candidates), DEADLINE_NOTE))
        refused: dict[str, str] = {}
        try:
            readable = _readable(engine, candidates, rules, left_ms, refused)
        except (SQLAlchemyError, SessionRefused, PoolTimeoutError) as exc:
            if time.monotonic() >= deadline:
                log.warning("No sample rows: the time budget ran out reading the catalog")
                return Samples({}, dict.fromkeys((t.key for t in candidates), DEADLINE_NOTE))
            log.warning(
                "No sample rows: the catalog could not be read (%s: %s)", type(exc).__name__, _why(exc)
            )
            return Samples({}, dict.fromkeys((t.key for t in candidates), FAILED_NOTE))
    out: dict[str, Rows] = {}
    unsampled: dict[str, str] = {key: REFUSED_NOTE + why for key, why in refused.items()}
    for table, columns in readable:
        left_ms = _left_ms(deadline, rules)
        if left_ms <= 0:
            unsampled[table.key] = DEADLINE_NOTE
            continue
        with _slot(rules):
            rows = _read(engine, table, limit, left_ms, columns)
        if not isinstance(rows, str):
            out[table.key] = rows
        else:
            unsampled[table.key] = DEADLINE_NOTE if time.monotonic() >= deadline else rows
    if unsampled:
        log.warning(
            "Sample rows of %d table(s) not read (budget %d ms): %s",
            len(unsampled),
            budget_ms,
            ", ".join(sorted(unsampled)[:10]),
        )
    return Samples(out, unsampled)


def _left_ms(deadline: float, rules: SamplePolicy) -> int:
    """A read's timeout: its own limit, or what is left of the call's budget when that is less."""
    return min(rules.timeout_ms, int((deadline - time.monotonic()) * 1000))


def sampleable(engine: Engine, tables: Iterable[Table], policy: SamplePolicy | None = None) -> list[Table]:
    """Return the tables whose rows :func:`sample_rows` would read."""
    rules = policy or SamplePolicy()
    candidates = [
        t for t in tables if t.columns and (t.kind == "table" or _allowed_view(t, rules.allowed_views))
    ]
    return [t for t, _ in _readable(engine, candidates, rules, rules.timeout_ms, {})] if candidates else []


class _Slot:
    """A slot of the profile's concurrency bound for the length of a with-block (none: no bound)."""

    def __init__(self, rules: SamplePolicy) -> None:
        self.rules = rules
        self.held = False

    def __enter__(self) -> None:
        admission = self.rules.admission
        if admission is None:
            return
        if not admission.enter_blocking():
            raise BusyError(
                "busy: the profile's database work is at its bound (preflight.concurrency); "
                f"sample rows not read, retry in {self.rules.retry_after} s",
                retry_after=self.rules.retry_after,
            )
        self.held = True

    def __exit__(self, *_: object) -> None:
        if self.held and self.rules.admission is not None:
            self.rules.admission.release()


def _slot(rules: SamplePolicy) -> _Slot:
    return _Slot(rules)


def _allowed_view(table: Table, allowed: Sequence[str]) -> bool:
    return table.kind in ("view", "materialized_view") and (table.key in allowed or table.name in allowed)


def _why(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else ""
    return scrub(text)


def _readable(
    engine: Engine, candidates: list[Table], rules: SamplePolicy, timeout_ms: int, refusals: dict[str, str]
) -> list[tuple[Table, _Columns]]:
    """Keep the candidates the live catalog confirms and the relation check does not refuse.

    Each comes with what the live catalog says of its columns (:class:`_Columns`); what the relation check
    refused is put in ``refusals`` (table key → why).
    """
    with read_only_session(engine, timeout_ms) as session:
        kinds = _live_kinds(session.conn, candidates)
        confirmed = [
            t
            for t in candidates
            if kinds.get(t.key) == "table"
            or (kinds.get(t.key) == "view" and _allowed_view(t, rules.allowed_views))
        ]
        refused = (
            dict(rules.relation_check(session.conn, confirmed)) if rules.relation_check and confirmed else {}
        )
        columns = _live_columns(session.conn, confirmed) if confirmed else {}
    confirmed_keys = {t.key for t in confirmed}
    for table in candidates:
        if table.key in refused:
            refusals[table.key] = refused[table.key]
            log.info("No sample rows for %s: %s", table.key, refused[table.key])
        elif table.key not in confirmed_keys:
            log.info(
                "No sample rows for %s: not a base table with local data (%s)",
                table.key,
                kinds.get(table.key),
            )
    return [(t, columns.get(t.key, _Columns())) for t in confirmed if t.key not in refused]


@dataclass(frozen=True, slots=True)
class _Columns:
    """What the live catalog says of a table's columns, for reading them."""

    #: generated columns the database computes on every read: not read
    generated: frozenset[str] = frozenset()
    #: PostgreSQL: the columns that are text or varchar now (cut with left(), which reads only a prefix);
    #: None where the dialect is not asked (the snapshot's type names are used)
    text: frozenset[str] | None = None
    #: PostgreSQL: the columns whose type is now a flat built-in scalar (_PG_FLAT_TYPES); None: not asked
    flat: frozenset[str] | None = None


#: (schema, table, column) of the columns computed on every read, per dialect that lists them in one query:
#: ClickHouse ALIAS (MATERIALIZED is stored), MySQL/MariaDB VIRTUAL generated columns.
_MYSQL_VIRTUAL = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA IN :schemas AND EXTRA LIKE '%VIRTUAL%'"
)
_GENERATED_COLUMNS_SQL: Final = {
    "clickhouse": "SELECT database, table, name FROM system.columns "
    "WHERE database IN :schemas AND default_kind = 'ALIAS'",
    "mysql": _MYSQL_VIRTUAL,
    "mariadb": _MYSQL_VIRTUAL,
}


def _live_columns(conn: Connection, tables: list[Table]) -> dict[str, _Columns]:
    """Ask the catalog which columns of these tables are computed on read, and (PostgreSQL) which are text."""
    dialect = dialect_family(conn.dialect.name)
    schemas = sorted({t.schema for t in tables if t.schema is not None})
    generated: dict[str, set[str]] = {}
    if dialect == "duckdb":
        # every generated column of DuckDB is computed on read (VIRTUAL is the only kind)
        rows = conn.exec_driver_sql(
            "SELECT schema_name, table_name, column_name FROM system.main.duckdb_columns() "
            "WHERE is_generated AND database_name = system.main.current_database()"
        )
        for schema, name, column in rows:
            generated.setdefault(f"{schema}.{name}", set()).add(column)
        return {key: _Columns(generated=frozenset(cols)) for key, cols in generated.items()}
    if dialect == "sqlite":
        # PRAGMA table_xinfo: hidden 2 is a VIRTUAL generated column (computed on read), 3 a STORED one (read
        # from the record like any column); asked of tables only (a view's would prepare the view)
        for table in tables:
            if table.kind != "table":
                continue
            prefix = "" if table.schema is None else '"' + table.schema.replace('"', '""') + '".'
            pragma = f'PRAGMA {prefix}table_xinfo("{table.name.replace(chr(34), chr(34) * 2)}")'
            for row in conn.exec_driver_sql(pragma):
                if int(row[6] or 0) == 2:
                    generated.setdefault(table.key, set()).add(str(row[1]))
        return {key: _Columns(generated=frozenset(cols)) for key, cols in generated.items()}
    if dialect in _GENERATED_COLUMNS_SQL:
        rows = conn.execute(
            sa.text(_GENERATED_COLUMNS_SQL[dialect]).bindparams(sa.bindparam("schemas", expanding=True)),
            {"schemas": schemas or [""]},
        )
        for schema, name, column in rows:
            generated.setdefault(f"{schema}.{name}", set()).add(column)
        return {key: _Columns(generated=frozenset(cols)) for key, cols in generated.items()}
    if dialect != "postgresql":
        return {}
    # attgenerated 'v' (virtual generated columns) exists from PostgreSQL 18
    virtual = "a.attgenerated = 'v'" if (conn.dialect.server_version_info or (0,)) >= (18,) else "false"
    flat_types = ", ".join(f"'pg_catalog.{name}'::regtype" for name in _PG_FLAT_TYPES)
    rows = conn.execute(
        sa.text(
            f"SELECT n.nspname, c.relname, a.attname, {virtual}, "
            "a.atttypid IN ('pg_catalog.text'::regtype, 'pg_catalog.varchar'::regtype), "
            f"a.atttypid IN ({flat_types}) "
            "FROM pg_catalog.pg_attribute a "
            "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ANY(CAST(:schemas AS text[])) AND c.relname = ANY(CAST(:names AS text[])) "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"schemas": schemas, "names": sorted({t.name for t in tables})},
    )
    text: dict[str, set[str]] = {}
    flat: dict[str, set[str]] = {}
    for schema, name, column, is_virtual, is_text, is_flat in rows:
        key = f"{schema}.{name}"
        if is_virtual:
            generated.setdefault(key, set()).add(column)
        elif is_text:
            text.setdefault(key, set()).add(column)
        elif is_flat:
            flat.setdefault(key, set()).add(column)
    return {
        t.key: _Columns(
            frozenset(generated.get(t.key, ())),
            frozenset(text.get(t.key, ())),
            frozenset(flat.get(t.key, ())),
        )
        for t in tables
    }


def _live_kinds(conn: Connection, tables: list[Table]) -> dict[str, str]:
    """Ask the catalog what each table is now: "table" (readable), "view", or something else."""
    dialect = dialect_family(conn.dialect.name)
    schemas = sorted({t.schema for t in tables if t.schema is not None})
    wanted = {t.key for t in tables}
    out: dict[str, str] = {}
    if dialect == "clickhouse":
        out = clickhouse.live_kinds(conn, wanted, schemas)
    elif dialect == "duckdb":
        out = duckdb.live_kinds(conn, wanted)
    elif dialect == "postgresql":
        rows = conn.execute(
            sa.text(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ANY(CAST(:schemas AS text[]))"
            ),
            {"schemas": schemas},
        )
        for schema, name, relkind in rows:
            kind = {"r": "table", "p": "table", "v": "view", "m": "view", "f": "foreign table"}.get(
                relkind, relkind
            )
            out[f"{schema}.{name}"] = kind
    elif dialect in ("mysql", "mariadb"):
        rows = conn.execute(
            sa.text(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA IN :schemas"
            ).bindparams(sa.bindparam("schemas", expanding=True)),
            {"schemas": schemas or [""]},
        )
        for schema, name, table_type, engine in rows:
            if table_type == "VIEW":
                kind = "view"
            elif table_type == "BASE TABLE" and str(engine or "").lower() in _MYSQL_LOCAL_ENGINES:
                kind = "table"
            else:
                kind = f"{str(table_type).lower()} ({engine})"
            out[f"{schema}.{name}"] = kind
    elif dialect == "sqlite":
        for schema in [None, *schemas]:
            master = (
                "sqlite_master"
                if schema is None
                else f'"{schema.replace(chr(34), chr(34) * 2)}".sqlite_master'
            )
            for name, kind, sql in conn.exec_driver_sql(f"SELECT name, type, sql FROM {master}"):
                virtual = kind == "table" and str(sql or "").upper().startswith("CREATE VIRTUAL")
                key = name if schema is None else f"{schema}.{name}"
                out[key] = "virtual table" if virtual else str(kind)
    else:
        # No catalog query for this dialect: trust the snapshot's kinds (views only when allow-listed).
        out = {t.key: ("table" if t.kind == "table" else "view") for t in tables}
    return {key: kind for key, kind in out.items() if key in wanted}


def _value_expression(
    column: Any,
    type_name: str,
    dialect: str,
    *,
    lz4: bool = False,
    text: bool | None = None,
    flat: bool | None = None,
) -> Any:
    """Cut a value on the server: its first characters as text, or its size when binary.

    ``text`` (PostgreSQL) says whether the live column is text/varchar, ``flat`` whether it is a flat built-in
    scalar (``_PG_FLAT_TYPES``); None: judge by ``type_name``.
    """
    lowered = type_name.lower()
    dialect = dialect_family(dialect)
    if dialect == "clickhouse":
        return sa.func.left(sa.func.toString(column), SAMPLE_VALUE_MAX + 1)
    if dialect == "duckdb":
        # built-ins by their name in the system catalog, no operator: a macro of the database may be named
        # left, octet_length or "||" (the database is refused for that too: preflight/dialects/duckdb.shadow_problem, through the relation check)
        system = sa.func.system.main
        if lowered.startswith(("blob", "bytea", "varbinary")):
            return system.concat("<", system.octet_length(column), " bytes>")
        if _DUCKDB_FLAT_TYPE.fullmatch(type_name) and not type_name.endswith("…"):
            return system.left(sa.cast(column, sa.Text), SAMPLE_VALUE_MAX + 1)
        return sa.case((column.is_(None), sa.null()), else_=_duckdb_shape(column, lowered))
    if dialect == "postgresql":
        if lowered.startswith("bytea"):
            # octet_length of bytea reads the TOAST header, not the value
            return sa.literal("<") + sa.cast(sa.func.octet_length(column), sa.Text) + sa.literal(" bytes>")
        stored = sa.func.pg_column_size(column)  # the stored (compressed) size; reads no data
        is_text = bool(_PG_TEXT_TYPE.fullmatch(lowered)) if text is None else text
        if is_text:
            # left() of text fetches and decompresses only the prefix of a pglz TOAST value (measured: a
            # 100 MB value, 1.1 MB stored, peaks the backend at +2 MB, against +290 MB through concat()); an
            # lz4 value is fetched whole before its prefix is decompressed, so a large one is shown as its size.
            cut = sa.func.left(column, SAMPLE_VALUE_MAX + 1)
            if lz4:
                size = (
                    sa.literal("<") + sa.cast(sa.func.octet_length(column), sa.Text) + sa.literal(" bytes>")
                )
                large_lz4 = sa.and_(
                    stored > SAMPLE_STORED_MAX, sa.func.pg_column_compression(column) == "lz4"
                )
                return sa.case((column.is_(None), sa.null()), (large_lz4, size), else_=cut)
            return cut
        # concat(v) calls the type's output function; a CAST to text would call the cast the database defines
        # for a type of its own (CREATE CAST … WITH FUNCTION), whatever that function does. The output
        # function needs the whole value, decompressed: only values stored small enough are converted.
        output = sa.func.left(sa.func.concat(column), SAMPLE_VALUE_MAX + 1)
        big = sa.literal("<") + sa.cast(stored, sa.Text) + sa.literal(" bytes stored>")
        compressed = sa.func.pg_column_compression(column).is_not(None)
        if bool(_PG_FLAT_TYPE.fullmatch(lowered)) if flat is None else flat:
            # a compressed value may be far larger whole (5,000,000 zero bits of varbit are 7 KB stored)
            flat_big = sa.or_(stored > SAMPLE_STORED_MAX, compressed) if lz4 else stored > SAMPLE_STORED_MAX
            return sa.case((column.is_(None), sa.null()), (flat_big, big), else_=output)
        # a nested or foreign type: only a small value stored as is (a compressed one may be far larger whole)
        # (before PostgreSQL 14 and lz4, nothing says a value is compressed: one that fits is short anyway)
        nested_big = (
            sa.or_(stored > SAMPLE_NESTED_STORED_MAX, compressed)
            if lz4
            else stored > SAMPLE_NESTED_STORED_MAX
        )
        return sa.case((column.is_(None), sa.null()), (nested_big, big), else_=output)
    if dialect in ("mysql", "mariadb"):
        if lowered.startswith(_MYSQL_BINARY_TYPES):
            return sa.func.concat("<", sa.func.octet_length(column), " bytes>")
        return sa.func.left(column, SAMPLE_VALUE_MAX + 1)
    if dialect == "sqlite":
        return sa.case(
            (
                sa.func.typeof(column) == "blob",
                sa.literal("<") + sa.func.length(column) + sa.literal(" bytes>"),
            ),
            else_=sa.func.substr(column, 1, SAMPLE_VALUE_MAX + 1),
        )
    return column


def _duckdb_shape(column: Any, lowered: str) -> Any:
    """What a DuckDB value that is not converted to text is shown as: a list's or map's size, else its kind
    (``lowered``: its type name, possibly cut). Reads the value's length, never its text."""
    system = sa.func.system.main
    if lowered.endswith("]"):  # LIST (t[]) or ARRAY (t[3]), whatever the element
        return system.concat("<list of ", system.len(column), " elements>")
    if lowered.startswith("map("):
        return system.concat("<map of ", system.cardinality(column), " entries>")
    kind = re.match(r"[a-z_]+", lowered)
    word = kind.group(0) if kind and kind.group(0) in _DUCKDB_KINDS else "value"
    return sa.literal(f"<{word}>")


_DUCKDB_KINDS: Final = frozenset(
    {"struct", "union", "enum", "bit", "varint", "bignum", "geometry", "variant"}
)


def _statement(table: Table, limit: int, dialect: sa.Dialect, live: _Columns | None = None) -> str:
    # SQLAlchemy quotes every identifier and renders LIMIT in the dialect's own syntax (TOP, FETCH FIRST…).
    source = sa.table(table.name, *[sa.column(c.name) for c in table.columns], schema=table.schema)
    # pg_column_compression() exists from PostgreSQL 14, the first with lz4
    lz4 = dialect_family(dialect.name) == "postgresql" and (dialect.server_version_info or (0,)) >= (14,)
    live = live or _Columns()
    values = [
        (
            sa.literal(GENERATED)
            if c.name in live.generated
            else _value_expression(
                source.c[c.name],
                c.type,
                dialect.name,
                lz4=lz4,
                text=None if live.text is None else c.name in live.text,
                flat=None if live.flat is None else c.name in live.flat,
            )
        ).label(f"c{i}")
        for i, c in enumerate(table.columns)
    ]
    statement = sa.select(*values).select_from(source).limit(limit)
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _read(
    engine: Engine, table: Table, limit: int, timeout_ms: int, live: _Columns | None = None
) -> Rows | str:
    """A table's sample rows, or the note saying why they could not be read."""
    try:
        sql = _statement(table, limit, engine.dialect, live)
        with read_only_session(engine, timeout_ms) as session:
            rows = session.run(sql).fetchmany(limit)
    except (SQLAlchemyError, SessionRefused, PoolTimeoutError) as exc:
        log.info("No sample rows for %s: %s: %s", table.key, type(exc).__name__, _why(exc))
        timed_out = (
            getattr(getattr(exc, "orig", None), "sqlstate", None) in _TIMED_OUT
            or "timeout" in str(exc).lower()
        )
        return TIMEOUT_NOTE if timed_out or isinstance(exc, PoolTimeoutError) else FAILED_NOTE
    except MemoryError:
        # a value over the service's memory bound for the database (SQLite's heap cap, db/engines.py)
        log.info("No sample rows for %s: a value is too large to read within the memory bound", table.key)
        return TOO_LARGE_NOTE
    return tuple(tuple(_truncate(v) for v in row) for row in rows)


def _truncate(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= SAMPLE_VALUE_MAX else text[: SAMPLE_VALUE_MAX - 1] + "…"
