"""POST /v1/prompt-items: every item for a request in one call, in the order asked."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.config import Settings
from dbmeta_app.main import create_app


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_all_items_by_default_each_saying_where_it_came_from(client: TestClient) -> None:
    r = client.post("/v1/prompt-items", json={"user_request": "average order value per customer segment"})
    assert r.status_code == 200
    body = r.json()
    assert [i["type"] for i in body["prompt_items"]] == [
        "db_struct",
        "query_examples",
        "instructions",
        "sql_dialect",
    ]
    schema, examples, instructions, dialect = body["prompt_items"]
    assert body["profile"] == "default" and body["schema_version"] == schema["metadata"]["schema_version"]
    assert "customers" in schema["metadata"]["tables"] and schema["metadata"]["cache"] in {"hit", "miss"}
    assert examples["metadata"]["example_ids"][0] == "average-order-value-by-segment"
    assert examples["text"].startswith("-- Average order value per customer segment\nSELECT")
    assert instructions["metadata"]["count"] >= 5 and instructions["text"].startswith("1. ")
    assert dialect["metadata"]["dialect"] == "sqlite" and "strftime" in dialect["text"]


def test_only_the_items_asked_for_in_that_order(client: TestClient) -> None:
    body = client.post(
        "/v1/prompt-items", json={"user_request": "x", "items": ["sql_dialect", "instructions"]}
    ).json()
    assert [i["type"] for i in body["prompt_items"]] == ["sql_dialect", "instructions"]


@pytest.mark.parametrize(
    "body",
    [
        {"items": ["nope"]},
        {"items": []},
        {"schema_top_k": 0},
        {"examples_top_k": -1},
        {"top_k": 0},
        {"top_k": -3},
    ],
)
def test_bad_requests_are_422(client: TestClient, body: Any) -> None:
    assert client.post("/v1/prompt-items", json=body).status_code == 422


def test_unknown_profile_is_404(client: TestClient) -> None:
    assert client.post("/v1/prompt-items", json={"profile": "nope"}).status_code == 404


def test_examples_that_no_longer_fit_the_schema_are_flagged_and_left_out(client: TestClient) -> None:
    before = client.post(
        "/v1/prompt-items", json={"user_request": "tickets", "items": ["query_examples"]}
    ).json()
    assert before["prompt_items"][0]["metadata"]["stale_examples"] == []
    url = client.app.state.runtime.profile(None).profile.database_url.get_secret_value()  # type: ignore[attr-defined]
    with sqlite3.connect(Path(url.split(":///", 1)[1])) as conn:
        conn.execute("ALTER TABLE ticket_events RENAME TO ticket_history")
    client.app.state.runtime.cache.memory.clear()  # type: ignore[attr-defined]  # forget the old snapshot
    after = client.post(
        "/v1/prompt-items", json={"user_request": "ticket events history", "items": ["query_examples"]}
    ).json()["prompt_items"][0]
    stale = after["metadata"]["stale_examples"]
    assert stale and all(i not in after["metadata"]["example_ids"] for i in stale)
    assert "ticket_events" not in after["text"]


def test_the_schema_item_of_the_bundle_keeps_to_the_token_budget(client: TestClient) -> None:
    body = client.post(
        "/v1/prompt-items",
        json={"user_request": "open support tickets by priority", "items": ["db_struct"], "max_tokens": 150},
    ).json()
    budget = body["prompt_items"][0]["metadata"]["budget"]
    assert budget["truncated"] is True and budget["estimated_tokens"] <= 150


def test_a_curated_file_broken_after_start_up_is_a_503_config_error_never_a_500(
    make_settings: Any, tmp_path: Path
) -> None:
    # A bad file stops start-up (tests/test_startup_errors.py); one edited into a bad state while the service
    # runs is read again when used: the answer names it, and a configuration error is not a server fault.
    examples = tmp_path / "examples.yml"
    examples.write_text("examples: []\n")
    profiles = tmp_path / "profiles.yml"
    profiles.write_text(
        f"profiles:\n  m:\n    database_url: sqlite:///{tmp_path / 'm.db'}\n    examples_file: {examples}\n"
    )
    settings = make_settings(profiles_file=profiles, default_profile="m")
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/prompt-items", json={"user_request": "widgets"}).status_code == 200
        examples.write_text("examples: [ {id: 1, request: x\n")
        r = client.post("/v1/prompt-items", json={"user_request": "widgets"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "config_error" and f"examples file {str(examples)!r}" in body["detail"], body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/prompt-items", {"user_request": "orders", "profle": "nope"}),
        ("/v1/prompt-items/schema", {"user_request": "orders", "profle": "nope"}),
        ("/v1/tables/search", {"query": "orders", "profle": "nope"}),
        ("/v1/preflight", {"sql": "SELECT 1", "profle": "nope"}),
    ],
)
def test_a_misspelt_field_is_a_422_naming_it_never_an_answer_from_the_default_profile(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [["body", "profle"]]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/prompt-items", {"user_request": "orders", "top_k": "5"}, "top_k"),
        ("/v1/prompt-items", {"user_request": "orders", "examples_top_k": True}, "examples_top_k"),
        ("/v1/prompt-items", {"user_request": "orders", "with_examples": "yes"}, "with_examples"),
        ("/v1/prompt-items/schema", {"user_request": "orders", "top_k": True}, "top_k"),
        ("/v1/prompt-items/schema", {"user_request": "orders", "max_tokens": "800"}, "max_tokens"),
        ("/v1/prompt-items/schema", {"user_request": "orders", "with_examples": 1}, "with_examples"),
        ("/v1/tables/search", {"query": "orders", "top_k": 5.5}, "top_k"),
        ("/v1/tables/search", {"query": "orders", "top_k": "5"}, "top_k"),
    ],
)
def test_a_number_or_flag_of_the_wrong_json_type_is_a_422_never_coerced(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    # "5" or true for top_k is a client bug: answering as if 5 (or 1) was asked would hide it.
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert [d["loc"][:2] for d in response.json()["detail"]] == [["body", field]]


def test_an_integral_json_number_is_an_integer_as_json_schema_says(client: TestClient) -> None:
    answer = client.post("/v1/tables/search", json={"query": "orders of customers", "top_k": 2.0})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["tables"]) == 2


def test_the_bundle_takes_top_k_and_with_examples_as_the_schema_route_does(client: TestClient) -> None:
    def schema(body: dict[str, Any]) -> dict[str, Any]:
        answer = client.post("/v1/prompt-items", json={**body, "items": ["db_struct"]})
        assert answer.status_code == 200, answer.text
        return answer.json()["prompt_items"][0]

    assert len(schema({"user_request": "orders of customers", "top_k": 2})["metadata"]["tables"]) == 2
    plain = schema({"user_request": "orders of customers", "top_k": 2})
    sampled = schema({"user_request": "orders of customers", "top_k": 2, "with_examples": True})
    assert "sample rows" in sampled["text"] and "sample rows" not in plain["text"]
    assert sampled["metadata"]["tables"] == plain["metadata"]["tables"]
