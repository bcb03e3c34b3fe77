"""Load the BirdUnion warehouse (80 BIRD databases, one schema each) into PostgreSQL.

The load is reused when the database already holds the same ``tables.json`` (a fingerprint is
kept in the database comment). Tables are empty: retrieval only needs the catalog.
BIRD's readable column and table names become column and table comments where they say more
than the identifier, as a documented warehouse would have them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.schema.models import Column, ForeignKey, Snapshot, Table

LOADER_VERSION = "1"
TABLES_JSON = Path("/work/shared/bench/birdunion/tables.json")
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE = "birdunion"
DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"

_TYPES = {
    "text": "TEXT",
    "integer": "BIGINT",  # SQLite integers are 64-bit
    "real": "DOUBLE PRECISION",
    "numeric": "NUMERIC",
    "datetime": "TIMESTAMP",
    "date": "DATE",
    "time": "TIME",
    "blob": "BYTEA",
    "boolean": "BOOLEAN",
}
_SYSTEM_SCHEMAS = frozenset({"public", "information_schema"})


def ensure_database(admin_url: str = ADMIN_URL, name: str = DATABASE) -> bool:
    """Create the database unless it exists; tell whether it was created."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if exists:
                return False
            conn.execute(sa.text(f"CREATE DATABASE {_quote(name)}"))
            return True
    finally:
        engine.dispose()


def load_birdunion(engine: Engine, tables_json: Path = TABLES_JSON) -> bool:
    """Load every BIRD database as a schema; tell whether a load happened (False: reused)."""
    raw = tables_json.read_bytes()
    fingerprint = f"birdunion:{LOADER_VERSION}:{hashlib.sha256(raw).hexdigest()[:16]}"
    databases: list[dict[str, Any]] = json.loads(raw)
    with engine.begin() as conn:
        current = conn.execute(
            sa.text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                " WHERE datname = current_database()"
            )
        ).scalar()
        if current == fingerprint:
            return False
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        statements = [f"DROP SCHEMA IF EXISTS {_quote(db['db_id'])} CASCADE" for db in databases]
        statements.extend(s for db in databases for s in _schema_ddl(db))
        statements.append(f"COMMENT ON DATABASE {_quote(database)} IS {_literal(fingerprint)}")
        # The DB-API cursor without parameters: identifiers with "%" are not placeholders there.
        cursor = conn.connection.cursor()
        for statement in statements:
            cursor.execute(statement)
    return True


def load_snapshot(engine: Engine, schemas: Sequence[str] | None = None) -> Snapshot:
    """Reflect the catalog of the given schemas (default: all user schemas) into a Snapshot."""
    inspector = sa.inspect(engine)
    if schemas is None:
        schemas = [
            s for s in inspector.get_schema_names() if s not in _SYSTEM_SCHEMAS and not s.startswith("pg_")
        ]
    tables: list[Table] = []
    for schema in schemas:
        columns = inspector.get_multi_columns(schema=schema)
        pks = inspector.get_multi_pk_constraint(schema=schema)
        fks = inspector.get_multi_foreign_keys(schema=schema)
        comments = inspector.get_multi_table_comment(schema=schema)
        for (_, name), cols in columns.items():
            key = (schema, name)
            pk = tuple(pks[key]["constrained_columns"] if key in pks else ())
            tables.append(
                Table(
                    schema=schema,
                    name=name,
                    columns=tuple(
                        Column(
                            name=c["name"],
                            type=str(c["type"]),
                            nullable=bool(c["nullable"]),
                            primary_key=c["name"] in pk,
                            default=None if c.get("default") is None else str(c["default"]),
                            comment=c.get("comment"),
                        )
                        for c in cols
                    ),
                    primary_key=pk,
                    foreign_keys=tuple(
                        ForeignKey(
                            columns=tuple(fk["constrained_columns"]),
                            ref_table=f"{fk.get('referred_schema') or schema}.{fk['referred_table']}",
                            ref_columns=tuple(fk["referred_columns"]),
                            name=fk.get("name"),
                        )
                        for fk in fks.get(key, ())
                    ),
                    comment=comments[key]["text"] if key in comments else None,
                )
            )
    return Snapshot.build(profile=DATABASE, dialect=engine.dialect.name, tables=tables)


def _schema_ddl(db: dict[str, Any]) -> list[str]:
    schema = db["db_id"]
    names: list[str] = db["table_names_original"]
    readable_tables: list[str] = db["table_names"]
    columns: list[tuple[int, str]] = [(t, c) for t, c in db["column_names_original"]]
    readable: list[str] = [c for _, c in db["column_names"]]
    types: list[str] = db["column_types"]

    pk_of: dict[int, list[int]] = {}
    for entry in db["primary_keys"]:
        ids = entry if isinstance(entry, list) else [entry]
        pk_of[columns[ids[0]][0]] = ids

    def qualified(table: int) -> str:
        return f"{_quote(schema)}.{_quote(names[table])}"

    ddl = [f"CREATE SCHEMA {_quote(schema)}"]
    for t, table in enumerate(names):
        parts = [
            f"{_quote(name)} {_TYPES.get(types[i].lower(), 'TEXT')}"
            for i, (owner, name) in enumerate(columns)
            if owner == t
        ]
        if t in pk_of:
            parts.append(f"PRIMARY KEY ({', '.join(_quote(columns[i][1]) for i in pk_of[t])})")
        ddl.append(f"CREATE TABLE {qualified(t)} ({', '.join(parts)})")
        if _says_more(readable_tables[t], table):
            ddl.append(f"COMMENT ON TABLE {qualified(t)} IS {_literal(readable_tables[t])}")
    for i, (owner, name) in enumerate(columns):
        if owner >= 0 and _says_more(readable[i], name):
            ddl.append(f"COMMENT ON COLUMN {qualified(owner)}.{_quote(name)} IS {_literal(readable[i])}")

    # BIRD lists composite keys pair by pair; group them per (table, referenced table).
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for src, ref in db["foreign_keys"]:
        pair = (src, ref)
        group = pairs[(columns[src][0], columns[ref][0])]
        if pair not in group:
            group.append(pair)
    unique_done: set[tuple[int, ...]] = set()
    for (t, ref_t), group in pairs.items():
        ref_pk = pk_of.get(ref_t, [])
        if len(group) > 1 and sorted(r for _, r in group) == sorted(ref_pk):
            ordered = sorted(group, key=lambda p: ref_pk.index(p[1]))
            fks = [ordered]
        else:
            fks = [[p] for p in group]
        for fk in fks:
            refs = tuple(r for _, r in fk)
            if sorted(refs) != sorted(ref_pk) and refs not in unique_done:
                # PostgreSQL needs a unique target; the tables are empty, so it always holds.
                unique_done.add(refs)
                ddl.append(
                    f"ALTER TABLE {qualified(ref_t)} ADD UNIQUE "
                    f"({', '.join(_quote(columns[r][1]) for r in refs)})"
                )
            ddl.append(
                f"ALTER TABLE {qualified(t)} ADD FOREIGN KEY "
                f"({', '.join(_quote(columns[s][1]) for s, _ in fk)}) REFERENCES {qualified(ref_t)} "
                f"({', '.join(_quote(columns[r][1]) for r in refs)})"
            )
    return ddl


def _says_more(readable: str, identifier: str) -> bool:
    def squash(text: str) -> str:
        return re.sub(r"[^0-9a-z]", "", text.lower())

    return bool(readable.strip()) and squash(readable) != squash(identifier)


def _quote(identifier: str) -> str:
    # Always quote: BIRD names hold spaces, parentheses, %, /, - and mixed case.
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
