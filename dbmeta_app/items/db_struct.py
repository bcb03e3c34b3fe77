"""The schema prompt item: the profile's full snapshot (schema/store.py) → (optionally) filter → render.

A filtered result is never cached — it is cut from the cached full snapshot in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.schema.fit import Fitted, render_within
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.schema.printable import visible
from dbmeta_app.schema.render import render_schema, rendered_tables, resolve_table_names
from dbmeta_app.schema.store import SnapshotMemo, load_snapshot, stale_reason
from dbmeta_app.search.columns import column_relevance

#: Past this many columns in the selected tables, ranking and fitting them runs off the event loop.
_FIT_INLINE_MAX_COLUMNS = 500


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
    max_tokens: int | None = None,
    user_request: str | None = None,
) -> dict[str, Any]:
    """Build the db_struct prompt item: full schema, or the given tables (best first) with their scores.

    ``loaded`` is the (snapshot, cache status) the caller already has, so it is not looked up twice;
    ``verify_database`` is passed to ``load_snapshot``. With ``max_tokens`` (0: no limit) the text is cut
    to that many estimated tokens, columns ranked by their relevance to ``user_request`` (see
    ``schema.fit``), and ``metadata.budget`` says what each table shows and omits.
    """
    snapshot, status = loaded or await load_snapshot(
        settings, cache, rt, with_examples, verify_database=verify_database
    )
    budget: dict[str, Any] | None = None
    if max_tokens:
        keys, unknown = (
            (list(snapshot.tables), [])
            if tables is None
            else resolve_table_names(snapshot, tables, rt.memo.name_index(snapshot))
        )

        written = rendered_tables(snapshot, keys)  # a year of day shards is written as one table

        def fit() -> Fitted:
            relevance = column_relevance(snapshot, written, user_request) if user_request else None
            return render_within(snapshot, keys, max_tokens, relevance, with_examples)

        columns = sum(len(snapshot.tables[k].columns) for k in written)
        # wide tables take tens of milliseconds to rank and fit: not on the event loop
        fitted = fit() if columns <= _FIT_INLINE_MAX_COLUMNS else await anyio.to_thread.run_sync(fit)
        text, keys = fitted.text, [t.key for t in fitted.tables]
        budget = fitted.metadata(max_tokens)
    else:
        text, keys, unknown = filter_and_render(rt.memo, snapshot, tables, with_examples)
    metadata: dict[str, Any] = {
        "profile": rt.name,
        "dialect": snapshot.dialect,
        "tables": keys,
        "schema_version": snapshot.schema_version,
        "cache": status,
        "stale_reason": stale_reason(rt, status),
        "filtered": tables is not None,
        "total_tables": len(snapshot.tables),
    }
    if scores is not None:
        metadata["scores"] = {k: round(scores[k], 6) for k in keys if k in scores}
    if unknown:
        metadata["unknown_tables"] = unknown
    if budget is not None:
        metadata["budget"] = budget
    if with_examples:
        # a note names the views and routines that refused a read: database text, escaped like the prompt's
        unsampled = {k: visible(note) for k in keys if (note := snapshot.tables[k].sample_note) is not None}
        if unsampled:
            # degraded, not failed: the schema is whole, these tables' sample rows are missing
            metadata["samples_degraded"] = True
            metadata["unsampled_tables"] = unsampled
    if extra_metadata:
        metadata.update(extra_metadata)
    top = max((scores[k] for k in keys if k in scores), default=None) if scores else None
    return {"type": "db_struct", "text": text, "score": top, "metadata": metadata}
