"""open_runtime: the one context that builds and closes a process's state, leaving nothing behind."""

from __future__ import annotations

import asyncio

from dbmeta_app.config import Settings
from dbmeta_app.items.db_struct import get_schema_prompt_item
from dbmeta_app.runtime import open_runtime


async def test_a_served_runtime_closes_its_tasks_and_owns_its_memos(settings: Settings) -> None:
    settings = settings.model_copy(update={"schema_check_interval": 30})
    async with open_runtime(settings, serve=True) as runtime:
        assert {t.get_name() for t in runtime.tasks} == {"dbmeta-drift-watcher", "dbmeta-privileges"}
        rt = runtime.profile(None)
        item = await get_schema_prompt_item(runtime.settings, runtime.cache, rt, tables=["orders"])
        assert item["metadata"]["cache"] == "miss" and rt.memo.latest  # held by this profile's runtime
        tasks = list(runtime.tasks)
    assert all(t.done() for t in tasks)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    async with open_runtime(settings) as again:  # a second runtime starts from nothing
        fresh = again.profile(None)
        assert not fresh.memo.latest and fresh.keyword_index is None and not again.tasks
        item = await get_schema_prompt_item(again.settings, again.cache, fresh, tables=["orders"])
        assert item["metadata"]["cache"] == "miss"
