"""Browsing a profile's schema without a request: its schemas, and its tables at a chosen level of detail.

``names`` costs a few tokens a table, ``summary`` adds the kind, column count and description, ``full``
is the schema text of the tables (what ``db_struct`` shows). Everything comes from the cached snapshot.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from dbmeta_app.items.db_struct import get_schema_prompt_item
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.runtime import Runtime
from dbmeta_app.schema.models import Snapshot, Table
from dbmeta_app.schema.store import load_snapshot

DetailLevel = Literal["names", "summary", "full"]
#: The schema name shown for tables of a database without schemas (SQLite's main schema).
NO_SCHEMA = ""


def schemas_of(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Each schema of the snapshot with how many tables and views it holds, by name."""
    counts: Counter[tuple[str, str]] = Counter(
        (t.schema or NO_SCHEMA, "views" if "view" in t.kind else "tables") for t in snapshot.tables.values()
    )
    names = sorted({schema for schema, _ in counts})
    return [{"name": n, "tables": counts[(n, "tables")], "views": counts[(n, "views")]} for n in names]


def _summary(table: Table) -> dict[str, Any]:
    return {
        "name": table.key,
        "kind": table.kind,
        "columns": len(table.columns),
        "description": table.text,
    }


def select_tables(snapshot: Snapshot, schema: str | None, limit: int) -> tuple[list[Table], int]:
    """The tables of one schema (every schema when None), by name, at most ``limit``; and how many matched."""
    chosen = [
        t for _, t in sorted(snapshot.tables.items()) if schema is None or (t.schema or NO_SCHEMA) == schema
    ]
    return chosen[:limit], len(chosen)


async def list_schemas(runtime: Runtime, rt: ProfileRuntime) -> dict[str, Any]:
    """The profile's schemas with their table counts."""
    snapshot, _ = await load_snapshot(runtime.settings, runtime.cache, rt)
    return {
        "profile": rt.name,
        "dialect": snapshot.dialect,
        "schema_version": snapshot.schema_version,
        "schemas": schemas_of(snapshot),
    }


async def list_tables(
    runtime: Runtime, rt: ProfileRuntime, schema: str | None, detail_level: DetailLevel, limit: int
) -> dict[str, Any]:
    """The tables of a schema (or all) at the given detail level; ``full`` adds their schema text."""
    snapshot, status = await load_snapshot(runtime.settings, runtime.cache, rt)
    tables, total = select_tables(snapshot, schema, limit)
    answer: dict[str, Any] = {
        "profile": rt.name,
        "schema_version": snapshot.schema_version,
        "detail_level": detail_level,
        "total": total,
        "truncated": total > len(tables),
        "tables": [t.key for t in tables] if detail_level == "names" else [_summary(t) for t in tables],
        "text": None,
    }
    if detail_level == "full" and tables:
        item = await get_schema_prompt_item(
            runtime.settings, runtime.cache, rt, tables=[t.key for t in tables], loaded=(snapshot, status)
        )
        answer["text"] = item["text"]
    return answer
