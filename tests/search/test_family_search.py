"""A search hit on a date-sharded family names a real shard and carries the family."""

from __future__ import annotations

from typing import Any

import numpy as np

from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.search.documents import build_groups
from dbmeta_app.search.keyword import KeywordIndex
from dbmeta_app.search.retrieval import Signals
from dbmeta_app.search.service import TableSearch


class _Index:
    """Stands in for TableIndex: returns fixed signals keyed by logical table."""

    def __init__(self, tables: dict[str, float]) -> None:
        self.tables = tables

    def signals(self, *_: Any, **__: Any) -> Signals:
        return Signals(tables=self.tables)


class _Encoder:
    model_id = "fake"

    def encode(self, texts: Any) -> Any:
        return np.zeros((len(texts), 4), dtype=np.float32)


def _snapshot() -> Snapshot:
    shards = [Table(schema="day", name=f"_202301{d}", columns=(Column("id", "int"),)) for d in (17, 18, 19)]
    return Snapshot.build(
        "p", "postgresql", [*shards, Table(schema="gh", name="repos", columns=(Column("id", "int"),))]
    )


def _search(tables: dict[str, float]) -> TableSearch:
    return TableSearch(_snapshot(), _Encoder(), _Index(tables), columns=False)  # type: ignore[arg-type]


def test_a_family_is_indexed_once() -> None:
    keys = [g.key for g in build_groups(_snapshot(), "m") if g.kind == "table"]
    assert sorted(keys) == ["day._YYYYMMDD", "gh.repos"]


def test_a_dated_request_gets_the_shard_it_needs() -> None:
    hits = _search({"day._YYYYMMDD": 0.9, "gh.repos": 0.5}).search("pull requests on January 18, 2023", 5)
    assert hits[0].name == "day._20230118"
    assert hits[0].family == "day._YYYYMMDD" and hits[0].shards == ("day._20230118",)
    assert hits[0].to_json()["shards"] == ["day._20230118"]
    assert [h.name for h in hits[1:]] == ["gh.repos"]
    assert "family" not in hits[1].to_json()


def test_an_undated_request_gets_the_newest_shard() -> None:
    hits = _search({"day._YYYYMMDD": 0.9}).search("pull requests per repository", 5)
    assert hits[0].name == "day._20230119" and hits[0].shards == ()


def test_the_keyword_fallback_ranks_a_family_once_and_names_the_shards_a_request_needs() -> None:
    shards = [
        Table(schema="web", name=f"events_202301{d}", columns=(Column("event_name", "text"),))
        for d in range(10, 25)
    ]
    other = Table(
        schema="web", name="users", columns=(Column("user_id", "int"), Column("event_count", "int"))
    )
    index = KeywordIndex.build(Snapshot.build("p", "postgresql", [*shards, other]))
    hits = index.search("events on January 18, 2023", 5)
    # fifteen shards would have filled the top 5: the family takes one place, the rest stay for other tables
    assert [h.name for h in hits] == ["web.events_20230118", "web.users"]
    assert hits[0].family == "web.events_YYYYMMDD" and hits[0].shards == ("web.events_20230118",)
    assert index.search("event names", 5)[0].name == "web.events_20230124"  # undated: the newest shard
