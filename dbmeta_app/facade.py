"""The Python names of the runbook, for people who embed dbmeta in their own Python process.

A thin facade over ``open_runtime`` (docs/ARCHITECTURE.md): each call uses the ``runtime`` it is given, or
opens one from ``settings`` (the environment when None) for that call alone and closes it. It holds no
engine, cache or state of its own; a caller making many calls opens the runtime once and passes it::

    async with open_runtime(settings) as runtime:
        text = await generate_schema_prompt(runtime=runtime, tables=["orders"])
        verdict = await query_preflight("SELECT 1", runtime=runtime)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings, get_settings
from dbmeta_app.examples.query_examples import QueryExample
from dbmeta_app.examples.query_examples import get_query_examples as _examples
from dbmeta_app.items.db_struct import get_schema_prompt_item as _schema_item
from dbmeta_app.items.preflight import preflight
from dbmeta_app.runtime import Runtime, open_runtime
from dbmeta_app.search.hits import TableHit
from dbmeta_app.search.runtime import search_tables

__all__ = [
    "generate_schema_prompt",
    "get_cache",
    "get_query_examples",
    "get_schema_prompt_item",
    "query_preflight",
    "search_relevant_tables",
]

T = TypeVar("T")


async def _call(
    settings: Settings | None, runtime: Runtime | None, work: Callable[[Runtime], Awaitable[T]]
) -> T:
    if runtime is not None:
        return await work(runtime)
    async with open_runtime(settings or get_settings()) as opened:
        return await work(opened)


async def get_schema_prompt_item(
    settings: Settings | None = None,
    *,
    profile: str | None = None,
    tables: Sequence[str] | None = None,
    with_examples: bool = False,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """The db_struct prompt item of a profile: the full schema, or the named tables."""

    async def work(rt: Runtime) -> dict[str, Any]:
        return await _schema_item(
            rt.settings, rt.cache, rt.profile(profile), tables=tables, with_examples=with_examples
        )

    return await _call(settings, runtime, work)


async def generate_schema_prompt(settings: Settings | None = None, **options: Any) -> str:
    """The schema prompt text of a profile: the text of its db_struct item (same ``options``)."""
    return str((await get_schema_prompt_item(settings, **options))["text"])


async def search_relevant_tables(
    query: str,
    settings: Settings | None = None,
    *,
    profile: str | None = None,
    top_k: int = 10,
    runtime: Runtime | None = None,
) -> list[TableHit]:
    """The tables a request needs, best first (names are the snapshot's keys)."""

    async def work(rt: Runtime) -> list[TableHit]:
        _, result = await search_tables(rt, rt.profile(profile), query, top_k)
        return result.hits

    return await _call(settings, runtime, work)


async def query_preflight(
    sql: str, settings: Settings | None = None, *, profile: str | None = None, runtime: Runtime | None = None
) -> dict[str, Any]:
    """The preflight verdict of one SQL text (the answer of ``POST /v1/preflight``)."""

    async def work(rt: Runtime) -> dict[str, Any]:
        answer: dict[str, Any] = orjson.loads(
            await preflight(rt.settings, rt.cache, rt.profile(profile), sql)
        )
        return answer

    return await _call(settings, runtime, work)


async def get_query_examples(
    settings: Settings | None = None, *, profile: str | None = None, runtime: Runtime | None = None
) -> list[QueryExample]:
    """A profile's curated query examples (every pack merged)."""

    async def work(rt: Runtime) -> list[QueryExample]:
        return await _examples(rt.settings, rt.cache, rt.profile(profile))

    return await _call(settings, runtime, work)


def get_cache(runtime: Runtime) -> RedisCache:
    """The cache of an open runtime (there is no process-wide one)."""
    return runtime.cache
