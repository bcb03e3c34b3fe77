"""Load the Spider 2.0-lite development warehouses into PostgreSQL ``i18a_spider2``.

One schema per ``<db>__<dataset>`` (the names in ``tables.json``), every identifier quoted,
descriptions as COMMENTs, tables empty: retrieval only needs the catalog. The load is reused
when the database already holds the same ``tables.json`` (a fingerprint in the database comment).
Each Spider2 database is one warehouse, served as its own profile (``include_schemas``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.birdunion_load import _literal, _quote, ensure_database, load_snapshot

LOADER_VERSION = "1"
TABLES_JSON = Path("/work/shared/bench/spider2dev/tables.json")
DATABASE = "i18a_spider2"
DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"

__all__ = ["DATABASE", "DATABASE_URL", "ensure_database", "load_snapshot", "load_spider2", "warehouses"]


def warehouses(tables_json: Path = TABLES_JSON) -> list[dict[str, Any]]:
    """The warehouses of the file: one dict per Spider2 database (``profile``, ``schemas`` …)."""
    dbs: list[dict[str, Any]] = json.loads(tables_json.read_bytes())["dbs"]
    return dbs


def load_spider2(engine: Engine, tables_json: Path = TABLES_JSON) -> bool:
    """Create every warehouse's schemas and tables; tell whether a load happened (False: reused)."""
    raw = tables_json.read_bytes()
    fingerprint = f"spider2dev:{LOADER_VERSION}:{hashlib.sha256(raw).hexdigest()[:16]}"
    dbs: list[dict[str, Any]] = json.loads(raw)["dbs"]
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
        statements: list[str] = []
        for db in dbs:
            for schema in db["schemas"]:
                statements.extend(_schema_ddl(schema))
        statements.append(f"COMMENT ON DATABASE {_quote(database)} IS {_literal(fingerprint)}")
        cursor = conn.connection.cursor()  # no parameters: "%" in a name is no placeholder
        for statement in statements:
            cursor.execute(statement)
    return True


def _schema_ddl(schema: dict[str, Any]) -> list[str]:
    name = schema["schema"]
    ddl = [f"DROP SCHEMA IF EXISTS {_quote(name)} CASCADE", f"CREATE SCHEMA {_quote(name)}"]
    for table in schema["tables"]:
        qualified = f"{_quote(name)}.{_quote(table['name'])}"
        columns = ", ".join(f"{_quote(c)} {t}" for c, t, _ in table["columns"])
        ddl.append(f"CREATE TABLE {qualified} ({columns})")
        if table.get("description"):
            ddl.append(f"COMMENT ON TABLE {qualified} IS {_literal(table['description'])}")
        for column, _, description in table["columns"]:
            if description:
                ddl.append(f"COMMENT ON COLUMN {qualified}.{_quote(column)} IS {_literal(description)}")
    return ddl


if __name__ == "__main__":
    import time

    ensure_database(name=DATABASE)
    started = time.perf_counter()
    engine = sa.create_engine(DATABASE_URL)
    print("loaded" if load_spider2(engine) else "reused", f"{time.perf_counter() - started:.1f}s")
    engine.dispose()
