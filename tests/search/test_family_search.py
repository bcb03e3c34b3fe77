"""A search hit on a date-sharded family names a real shard and carries the family."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.search.documents import build_groups
from dbmeta_app.search.keyword import KeywordIndex
from dbmeta_app.search.retrieval import RetrievalWeights, Signals
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
    assert hits[0].tables == ("day._20230118",) and hits[1].tables == ("gh.repos",)
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


def _busy() -> Snapshot:
    """A day family among tables whose words match a request better than the family's own do."""
    shards = [
        Table(schema="day", name=f"_202301{d}", columns=(Column("id", "int"), Column("repo_name", "text")))
        for d in (17, 18, 19)
    ]
    others = [
        Table(schema="gh", name=name, columns=(Column("repo_name", "text"), Column("language", "text")))
        for name in ("languages", "sample_repos", "sample_commits", "sample_files", "licenses")
    ]
    return Snapshot.build("p", "postgresql", [*shards, *others])


# the family is sixth of six on its words
_BUSY_SCORES = {"gh.languages": 0.9, "gh.sample_repos": 0.8, "gh.sample_commits": 0.7, "gh.sample_files": 0.6}
_BUSY_SCORES |= {"gh.licenses": 0.5, "day._YYYYMMDD": 0.1}
_DATED = "languages with at least 5 pull request events on January 18, 2023"


def _busy_search(weights: RetrievalWeights | None = None) -> TableSearch:
    index = _Index(_BUSY_SCORES)
    return TableSearch(_busy(), _Encoder(), index, columns=False, weights=weights)  # type: ignore[arg-type]


def test_the_family_a_request_s_date_names_makes_the_top_k_though_its_words_rank_it_last() -> None:
    search, text = _busy_search(), _DATED
    hits = search.search(text, 3)
    ranked = [h.name for h in search.search(text, 6)]  # the family is sixth of six on its words
    assert ranked[-1] == "day._20230118"
    assert [h.name for h in hits] == [*ranked[:2], "day._20230118"]  # it takes the last place
    assert hits[-1].score < hits[-2].score
    # undated, or a date no shard holds: the ranking alone
    assert "day._YYYYMMDD" not in {h.family for h in search.search("languages with many pull requests", 3)}
    assert "day._YYYYMMDD" not in {h.family for h in search.search("languages on March 3, 2021", 3)}
    # a top 1 stays the best table
    assert [h.name for h in search.search(text, 1)] == ranked[:1]


def test_a_date_does_not_pull_in_a_family_the_request_s_words_are_not_about() -> None:
    # the family ranks 6th of 6: within the default 3 x top_k of a top 2
    assert "day._YYYYMMDD" in {h.family for h in _busy_search().search(_DATED, 2)}
    # within 1 x top_k only: the 6th of 6 is out of reach of a top 2, not of a top 6
    narrow = _busy_search(RetrievalWeights(dated_reach=1))
    assert "day._YYYYMMDD" not in {h.family for h in narrow.search(_DATED, 2)}
    assert "day._YYYYMMDD" in {h.family for h in narrow.search(_DATED, 6)}


def test_the_keyword_fallback_gives_the_dated_family_its_place_too() -> None:
    index = KeywordIndex.build(_busy())
    hits = index.search("repo languages on January 18, 2023", 3)
    assert "day._20230118" in [h.name for h in hits]


def _events_client(tmp_path: Path) -> TestClient:
    """A SQLite warehouse of 15 day shards (events_20230110 … events_20230124) and users, keyword search."""
    db = tmp_path / "web.db"
    with sqlite3.connect(db) as conn:
        for day in range(10, 25):
            conn.execute(f"CREATE TABLE events_202301{day} (event_name TEXT, user_id INTEGER)")
        conn.execute("CREATE TABLE users (user_id INTEGER PRIMARY KEY, name TEXT)")
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{db}",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
    )
    return TestClient(create_app(settings))


def test_a_request_for_a_period_longer_than_the_calendar_is_answered(tmp_path: Path) -> None:
    """ "the last 99999 years" reached back past the first day of the calendar: a 500 on search and schema."""
    text = "event names in the last 99999 years"
    with _events_client(tmp_path) as client:
        r = client.post("/v1/tables/search", json={"query": text, "top_k": 3})
        assert r.status_code == 200, r.text
        assert r.json()["tables"][0]["shards"] == [f"events_202301{day}" for day in range(10, 25)]
        r = client.post("/v1/prompt-items/schema", json={"user_request": text, "top_k": 3})
        assert r.status_code == 200, r.text
        assert "events_20230110 through events_20230124 (15 consecutive shards)" in r.json()["text"]
        digits = "event names in the last " + "9" * 5000 + " days"  # past int()'s 4,300-digit limit
        for path, body in (
            ("/v1/tables/search", {"query": digits}),
            ("/v1/prompt-items/schema", {"user_request": digits}),
        ):
            r = client.post(path, json=body)
            assert r.status_code == 200, r.text


@pytest.mark.parametrize("max_tokens", [None, 115])
def test_the_schema_item_names_every_shard_the_request_needs(tmp_path: Path, max_tokens: int | None) -> None:
    """The search answered three shards; the schema item told the LLM one (and, cut to a budget, not
    even that the table is one of a family)."""
    text = "event names between January 12, 2023 and January 14, 2023"
    body: dict[str, Any] = {"user_request": text, "top_k": 3}
    if max_tokens:
        body["max_tokens"] = max_tokens
    with _events_client(tmp_path) as client:
        item = client.post("/v1/prompt-items/schema", json=body).json()
    shards = ["events_20230112", "events_20230113", "events_20230114"]
    assert item["metadata"]["tables"][:3] == shards
    assert item["text"].count("table family events_YYYYMMDD: 15 shards") == 1
    assert "-- shards for this request: " + ", ".join(shards) in item["text"]
    assert item["text"].count("# events_") == 1  # the family is written once, as its newest shard
    if max_tokens:
        budget = item["metadata"]["budget"]
        assert budget["truncated"] and budget["estimated_tokens"] <= max_tokens
        assert set(shards) <= set(budget["tables"])


def test_a_family_asked_for_by_the_name_the_search_answered_is_a_known_table(tmp_path: Path) -> None:
    """The search answers "family": "events_YYYYMMDD"; asking the schema of that name said "unknown table"."""
    with _events_client(tmp_path) as client:
        family = client.post("/v1/tables/search", json={"query": "event names", "top_k": 1}).json()
        assert family["tables"][0]["family"] == "events_YYYYMMDD"
        for name in ("events_YYYYMMDD", "main.events_YYYYMMDD", "EVENTS_yyyymmdd"):
            item = client.post("/v1/prompt-items/schema", json={"tables": [name, "users"]}).json()
            assert item["metadata"]["tables"] == ["events_20230124", "users"], (name, item["metadata"])
            assert "unknown_tables" not in item["metadata"]
            assert item["text"].startswith("-- table family events_YYYYMMDD: 15 shards")
