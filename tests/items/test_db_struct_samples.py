"""The schema item says which tables' sample rows a time budget left unread: degraded, not failed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from dbmeta_app.items.db_struct import get_schema_prompt_item
from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.schema.store import SnapshotMemo

DEADLINE_NOTE = "not sampled: the sample reads ran out of their time budget"


def _item(snapshot: Snapshot, tables: list[str] | None, with_examples: bool) -> dict[str, Any]:
    rt: Any = SimpleNamespace(name="p", memo=SnapshotMemo())
    settings: Any = SimpleNamespace()
    return asyncio.run(
        get_schema_prompt_item(
            settings,
            None,
            rt,
            tables=tables,
            with_examples=with_examples,
            loaded=(snapshot, "miss"),
        )
    )


def test_unsampled_tables_are_named_in_the_metadata() -> None:
    read = Table("s", "read", columns=(Column("id", "int"),), sample_rows=(("1",),))
    late = Table("s", "late", columns=(Column("id", "int"),), sample_note=DEADLINE_NOTE)
    snapshot = Snapshot.build("p", "postgresql", [read, late])
    item = _item(snapshot, ["s.read", "s.late"], True)
    assert item["metadata"]["samples_degraded"] is True
    assert item["metadata"]["unsampled_tables"] == {"s.late": DEADLINE_NOTE}
    assert "# s.late" in item["text"] and "sample rows (CSV):" in item["text"]
    only_read = _item(snapshot, ["s.read"], True)["metadata"]
    assert "unsampled_tables" not in only_read and "samples_degraded" not in only_read
    assert "unsampled_tables" not in _item(snapshot, None, False)["metadata"]
