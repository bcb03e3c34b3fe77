"""The Python facade (dbmeta_app/facade.py): the runbook's names, each a thin call over ``open_runtime``."""

from __future__ import annotations

import asyncio

from dbmeta_app import facade
from dbmeta_app.config import Settings
from dbmeta_app.runtime import open_runtime


async def test_each_call_opens_and_closes_its_own_runtime(settings: Settings) -> None:
    text = await facade.generate_schema_prompt(settings, tables=["orders", "customers"])
    assert text.startswith("# orders") and "# customers" in text and "# products" not in text
    full = await facade.generate_schema_prompt(settings)
    assert full.count("\n# ") + 1 >= 20
    hits = await facade.search_relevant_tables("orders by customer", settings, top_k=3)
    assert 0 < len(hits) <= 3 and all(isinstance(h.score, float) for h in hits)
    verdict = await facade.query_preflight("DELETE FROM orders", settings)
    assert verdict["ok"] is False and verdict["error_kind"] == "unsafe"
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running behind the calls


async def test_calls_share_an_open_runtime_and_its_cache(settings: Settings) -> None:
    async with open_runtime(settings) as runtime:
        first = await facade.get_schema_prompt_item(runtime=runtime, tables=["orders"])
        again = await facade.get_schema_prompt_item(runtime=runtime, tables=["orders"])
        assert first["metadata"]["cache"] == "miss" and again["metadata"]["cache"] == "hit"
        assert first["metadata"]["tables"] == ["orders"]
        assert facade.get_cache(runtime) is runtime.cache
        examples = await facade.get_query_examples(runtime=runtime)
        assert examples and all(e.request and e.response for e in examples)
        ok = await facade.query_preflight("SELECT count(*) FROM orders", runtime=runtime)
        assert ok["ok"] is True and ok["profile"] == runtime.profile(None).name
