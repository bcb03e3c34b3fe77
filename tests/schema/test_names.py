"""A schema that include_schemas or exclude_schemas names and the database lacks is said, with the near miss."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbmeta_app.config import Profile
from dbmeta_app.main import create_app
from dbmeta_app.schema.names import check_schema_names, unknown_schema_names


def test_names_are_matched_exactly_and_a_near_miss_is_named() -> None:
    profile = Profile(
        name="p",
        database_url="postgresql://u@h/db",
        include_schemas=("Sales", "finanse", "sales", "hr"),
        exclude_schemas=("scratch",),
    )
    assert unknown_schema_names(profile, ["sales", "finance", "hr", "public"]) == [
        "include_schemas names 'Sales', which the database does not have (did you mean 'sales'?)",
        "include_schemas names 'finanse', which the database does not have (did you mean 'finance'?)",
        "exclude_schemas names 'scratch', which the database does not have",
    ]


def test_a_sqlite_profile_is_checked_against_its_attached_databases(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    named = Profile(name="p", database_url=f"sqlite:///{tmp_path / 'm.db'}", include_schemas=("Main",))
    assert check_schema_names(named, engine) == [
        "include_schemas names 'Main', which the database does not have (did you mean 'main'?)"
    ]
    plain = Profile(name="p", database_url=f"sqlite:///{tmp_path / 'm.db'}", include_schemas=("main",))
    assert check_schema_names(plain, engine) == []


def _profile_file(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    profiles = tmp_path / "profiles.yml"
    profiles.write_text(
        f"profiles:\n  m:\n    database_url: sqlite:///{tmp_path / 'm.db'}\n    include_schemas: [Main]\n"
    )
    return profiles


def test_readyz_names_the_unknown_schema_of_each_profile(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings(profiles_file=_profile_file(tmp_path), default_profile="m")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while True:
            body = client.get("/readyz").json()
            schemas = body["checks"].get("schemas", {}).get("m", {})
            if schemas.get("checked") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert schemas == {
        "checked": True,
        "warnings": ["include_schemas names 'Main', which the database does not have (did you mean 'main'?)"],
    }, body


def test_the_start_up_log_warns_of_it(
    make_settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(profiles_file=_profile_file(tmp_path), default_profile="m")
    with caplog.at_level("WARNING", logger="dbmeta_app"), TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while "did you mean 'main'?" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (
        "Profile=m: include_schemas names 'Main', which the database does not have (did you mean 'main'?)"
        in (caplog.text)
    )
