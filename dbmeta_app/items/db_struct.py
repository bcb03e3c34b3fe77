"""The schema prompt item: the profile's full snapshot (schema/store.py) → (optionally) filter → render.

A filtered result is never cached — it is cut from the cached full snapshot in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.schema.render import render_schema, resolve_table_names
from dbmeta_app.schema.store import SnapshotMemo, load_snapshot, stale_reason


def filter_and_render(
    memo: SnapshotMemo, snapshot: Snapshot, tables: Sequence[str] | None, with_samples: bool
) -> tuple[str, list[str], list[str]]:
    """Render the full schema (tables=None) or just the named tables; return (text, keys, unknown names)."""
    if tables is None:
        return memo.render_full(snapshot, with_samples), list(snapshot.tables), []
    keys, unknown = resolve_table_names(snapshot, tables, memo.name_index(snapshot))
    return render_schema(snapshot, keys, with_samples), keys, unknown


async def get_schema_prompt_item(
    settings: Settings,
    cache: RedisCache,
    rt: ProfileRuntime,
    *,
    tables: Sequence[str] | None = None,
    scores: dict[str, float] | None = None,
    with_examples: bool = False,
    extra_metadata: dict[str, Any] | None = None,
    loaded: tuple[Snapshot, str] | None = None,
    verify_database: bool = False,
) -> dict[str, Any]:
    """Build the db_struct prompt item: full schema, or the given tables (best first) with their scores.

    ``loaded`` is the (snapshot, cache status) the caller already has, so it is not looked up twice;
    ``verify_database`` is passed to ``load_snapshot``.
    """
    snapshot, status = loaded or await load_snapshot(
        settings, cache, rt, with_examples, verify_database=verify_database
    )
    text, keys, unknown = filter_and_render(rt.memo, snapshot, tables, with_examples)
    metadata: dict[str, Any] = {
        "profile": rt.name,
        "dialect": snapshot.dialect,
        "tables": keys,
        "schema_version": snapshot.version,
        "cache": status,
        "stale_reason": stale_reason(rt, status),
        "filtered": tables is not None,
        "total_tables": len(snapshot.tables),
    }
    if scores is not None:
        metadata["scores"] = {k: round(scores[k], 6) for k in keys if k in scores}
    if unknown:
        metadata["unknown_tables"] = unknown
    if extra_metadata:
        metadata.update(extra_metadata)
    top = max((scores[k] for k in keys if k in scores), default=None) if scores else None
    return {"type": "db_struct", "text": text, "score": top, "metadata": metadata}
