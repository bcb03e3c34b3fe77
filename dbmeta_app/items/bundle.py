"""Everything for one request in one call: schema, query examples, instructions and the SQL dialect.

The parts are fetched concurrently; each item's metadata says where it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from dbmeta_app.config import Settings
from dbmeta_app.examples.instructions import get_instructions, render_dialect, render_instructions
from dbmeta_app.examples.query_examples import (
    ExampleCheck,
    QueryExample,
    check_examples,
    examples_version,
    get_query_examples,
    rank_examples,
)
from dbmeta_app.items.db_struct import get_schema_prompt_item
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.runtime import Runtime
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.schema.store import load_snapshot
from dbmeta_app.search.runtime import SMALL_SCHEMA, search_tables

ITEM_TYPES = ("db_struct", "query_examples", "instructions", "sql_dialect")


def prompt_budget(settings: Settings, max_tokens: int | None, ranked: bool) -> int | None:
    """The token budget of a schema rendering: the one asked (0: none), else ``PROMPT_MAX_TOKENS`` when
    the tables are ranked for a request (a full schema or named tables are whole unless a budget is asked).
    """
    if max_tokens is not None:
        return max_tokens or None
    return (settings.prompt_max_tokens or None) if ranked else None


async def schema_item(
    runtime: Runtime,
    rt: ProfileRuntime,
    user_request: str | None,
    top_k: int,
    with_examples: bool = False,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The db_struct item: the tables a request needs (the full schema without a request), within a budget."""
    if not user_request:
        return await get_schema_prompt_item(
            runtime.settings,
            runtime.cache,
            rt,
            with_examples=with_examples,
            max_tokens=prompt_budget(runtime.settings, max_tokens, False),
        )
    loaded, result = await search_tables(runtime, rt, user_request, top_k)
    snapshot = loaded[0]
    # a family hit stands for the shards the request's dates need: the renderer names them all
    named = [(name, h.score) for h in result.hits for name in h.tables]
    names: list[str] | None = [name for name, _ in named]
    extra: dict[str, Any] = {"degraded": result.degraded, "search_ms": result.elapsed_ms}
    if result.reason:
        extra["degraded_reason"] = result.reason
    if not names and len(snapshot.tables) <= SMALL_SCHEMA:
        names = None  # nothing matched and the schema is small: the whole of it beats nothing
        extra["no_match"] = True
    budget = prompt_budget(runtime.settings, max_tokens, True)
    return await get_schema_prompt_item(
        runtime.settings,
        runtime.cache,
        rt,
        tables=names,
        scores=dict(named),
        with_examples=with_examples,
        extra_metadata=extra,
        # sample rows live in another snapshot variant: only reuse the one search loaded when it fits
        loaded=None if with_examples else loaded,
        max_tokens=budget,
        user_request=user_request,
    )


def _local_checks(
    runtime: Runtime, version: str, snapshot: Snapshot, examples: list[QueryExample]
) -> dict[str, ExampleCheck]:
    """Check examples in process (memoised per version) when the example index does not hold them."""
    memo = runtime.example_checks
    checks = memo.get(version)
    if checks is None:
        checks = check_examples(examples, snapshot)
        if len(memo) > 64:
            memo.clear()
        memo[version] = checks
    return checks


async def examples_item(
    runtime: Runtime, rt: ProfileRuntime, user_request: str | None, top_k: int
) -> dict[str, Any]:
    """The query_examples item: the examples closest to the request that still fit the schema.

    They come from the profile's example collection (hybrid search over examples checked at index time);
    while it cannot answer (being built, Milvus down) they are ranked by BM25 in process, flagged degraded.
    """
    examples = await get_query_examples(runtime.settings, runtime.cache, rt)
    snapshot, _ = await load_snapshot(runtime.settings, runtime.cache, rt)
    search = runtime.search
    version = examples_version(snapshot, examples)  # hashed once per request
    # The verdicts the example index was built with for this schema, else checked here (memoised).
    checks = (search.indexed_checks(rt, version) if search else None) or _local_checks(
        runtime, version, snapshot, examples
    )
    usable = [e for e in examples if checks[e.id].ok]
    stale = {i: c.reason for i, c in sorted(checks.items()) if not c.ok}
    metadata: dict[str, Any] = {"profile": rt.name, "retrieval": "milvus" if search else "keyword"}
    found: list[tuple[str, float]] | str | None = None
    if search is not None and usable and user_request:
        # examples that stopped fitting since the index was built may come back: ask for that many more
        found = await search.find_examples(rt, version, user_request, top_k + len(stale))
    if isinstance(found, list):
        by_id = {e.id: e for e in usable}
        chosen = [(by_id[i], round(score, 6)) for i, score in found if i in by_id][:top_k]
    elif user_request:
        chosen = rank_examples(usable, user_request, top_k)
        if isinstance(found, str):
            metadata.update(retrieval="keyword", degraded=True, degraded_reason=found)
    else:
        chosen = [(e, 0.0) for e in usable[:top_k]]
    text = "\n\n".join(f"-- {e.request}\n{e.response}" for e, _ in chosen)
    metadata.update(
        example_ids=[e.id for e, _ in chosen],
        scores={e.id: s for e, s in chosen},
        stale_examples=list(stale),
        stale_reasons=stale,
        total_examples=len(examples),
    )
    metadata.setdefault("degraded", False)
    return {
        "type": "query_examples",
        "text": text,
        "score": chosen[0][1] if chosen else None,
        "metadata": metadata,
    }


async def instructions_item(runtime: Runtime, rt: ProfileRuntime) -> dict[str, Any]:
    """The instructions item (file reads are small; they run in a thread)."""
    import anyio

    instructions = await anyio.to_thread.run_sync(get_instructions, runtime.settings, rt)
    return {
        "type": "instructions",
        "text": render_instructions(instructions),
        "score": None,
        "metadata": {"profile": rt.name, "count": len(instructions)},
    }


async def dialect_item(rt: ProfileRuntime) -> dict[str, Any]:
    return {
        "type": "sql_dialect",
        "text": render_dialect(rt.dialect),
        "score": None,
        "metadata": {"profile": rt.name, "dialect": rt.dialect},
    }


async def get_prompt_items(
    runtime: Runtime,
    rt: ProfileRuntime,
    user_request: str | None,
    items: list[str],
    schema_top_k: int,
    examples_top_k: int,
    max_tokens: int | None = None,
    with_examples: bool = False,
) -> dict[str, Any]:
    """Build the requested prompt items concurrently, in the order asked (``max_tokens``: the schema's budget,
    ``with_examples``: sample rows in the schema item)."""
    jobs: dict[str, Awaitable[dict[str, Any]]] = {}
    for kind in dict.fromkeys(items):
        if kind == "db_struct":
            jobs[kind] = schema_item(
                runtime, rt, user_request, schema_top_k, with_examples=with_examples, max_tokens=max_tokens
            )
        elif kind == "query_examples":
            jobs[kind] = examples_item(runtime, rt, user_request, examples_top_k)
        elif kind == "instructions":
            jobs[kind] = instructions_item(runtime, rt)
        elif kind == "sql_dialect":
            jobs[kind] = dialect_item(rt)
    results = await asyncio.gather(*jobs.values())
    snapshot, _ = await load_snapshot(runtime.settings, runtime.cache, rt)
    return {"prompt_items": list(results), "schema_version": snapshot.schema_version, "profile": rt.name}
