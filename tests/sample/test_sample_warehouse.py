"""Consistency checks for the bundled sample warehouse (dbmeta_app/sample)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

SAMPLE = files("dbmeta_app.sample")
MIN_TABLES = 18


def _read_text(name: str) -> str:
    return SAMPLE.joinpath(name).read_text(encoding="utf-8")


def _load_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load(_read_text(name))
    assert isinstance(data, dict), f"{name} must contain a mapping"
    return data


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.executescript(_read_text("warehouse.sql"))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.fixture(scope="module")
def views(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name").fetchall()
    return [str(r[0]) for r in rows]


def _columns(conn: sqlite3.Connection, relation: str) -> dict[str, int]:
    """Column name -> primary-key position (0 when not part of the key)."""
    rows = conn.execute(f"PRAGMA table_info({_quote(relation)})").fetchall()
    return {str(r[1]): int(r[5]) for r in rows}


def _examples() -> list[dict[str, Any]]:
    examples = _load_yaml("examples.yml")["examples"]
    assert isinstance(examples, list)
    return examples


def test_foreign_keys_enabled_and_consistent(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_schema_size(tables: list[str], views: list[str]) -> None:
    assert len(tables) >= MIN_TABLES, tables
    assert len(views) >= 1


def test_every_table_has_primary_key_and_rows(conn: sqlite3.Connection, tables: list[str]) -> None:
    for table in tables:
        pk = [name for name, pos in _columns(conn, table).items() if pos > 0]
        assert pk, f"{table} has no primary key"
        count = conn.execute(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0]
        assert 10 <= count <= 60, f"{table} has {count} rows"


def test_schema_features(conn: sqlite3.Connection, tables: list[str]) -> None:
    composite = [t for t in tables if sum(1 for pos in _columns(conn, t).values() if pos > 0) > 1]
    assert composite, "expected at least one composite primary key"
    self_refs = [
        t for t in tables if any(fk[2] == t for fk in conn.execute(f"PRAGMA foreign_key_list({_quote(t)})"))
    ]
    assert "employees" in self_refs
    all_columns = {c for t in tables for c in _columns(conn, t)}
    assert not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c) for c in all_columns), (
        "expected a quoted column"
    )


def test_descriptions_match_schema(conn: sqlite3.Connection, tables: list[str], views: list[str]) -> None:
    data = _load_yaml("descriptions.yml")
    assert isinstance(data.get("whitelist"), bool)
    described: dict[str, Any] = data["tables"]
    relations = set(tables) | set(views)
    assert set(tables) <= set(described), f"undescribed tables: {set(tables) - set(described)}"
    hidden = 0
    for key, spec in described.items():
        assert key in relations, f"descriptions.yml names unknown table {key!r}"
        assert isinstance(spec.get("description"), str) and spec["description"].strip(), key
        columns = _columns(conn, key)
        for column, cspec in (spec.get("columns") or {}).items():
            assert column in columns, f"descriptions.yml names unknown column {key}.{column}"
            assert isinstance(cspec, dict), f"{key}.{column}"
            assert set(cspec) <= {"description", "examples", "hidden"}, f"{key}.{column}: {set(cspec)}"
            if "examples" in cspec:
                assert all(isinstance(v, str) for v in cspec["examples"]), f"{key}.{column} examples"
            hidden += bool(cspec.get("hidden"))
    assert 1 <= hidden <= 2


def test_examples_are_well_formed(tables: list[str], views: list[str]) -> None:
    examples = _examples()
    assert len(examples) >= 25
    ids = [e["id"] for e in examples]
    assert len(ids) == len(set(ids)), "example ids must be unique"
    relations = set(tables) | set(views)
    for example in examples:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", example["id"]), example["id"]
        assert example["request"].strip() and example["response"].strip()
        assert example["tables"], example["id"]
        unknown = set(example["tables"]) - relations
        assert not unknown, f"{example['id']}: unknown tables {unknown}"


@pytest.mark.parametrize("example", _examples(), ids=lambda e: str(e["id"]))
def test_example_sql_returns_rows(conn: sqlite3.Connection, example: dict[str, Any]) -> None:
    rows = conn.execute(example["response"]).fetchall()
    assert rows, f"{example['id']} returned no rows"


def test_instructions() -> None:
    data = _load_yaml("instructions.yml")
    items = list(data.get("all") or [])
    for profile in (data.get("profiles") or {}).values():
        items.extend(profile)
    assert "default" in data["profiles"]
    assert 6 <= len(items) <= 12
    assert all(isinstance(i, str) and i.strip() for i in items)


@pytest.mark.integration
def test_the_clickhouse_sample_s_dictionary_is_usable_in_a_preflight(tmp_path: Path) -> None:
    # A preflight never loads a dictionary; the bundled sample's own one is loaded when the sample is opened,
    # so what its schema tells the LLM (dictGet on analytics.product_names) plans. A fresh process: chDB's
    # dictionaries are loaded per process.
    pytest.importorskip("chdb_sqlalchemy", reason="chDB is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROFILES_FILE")}
    env.update(
        SAMPLE_WAREHOUSE="clickhouse",
        DATA_DIR=str(tmp_path / "data"),
        REDIS_CACHE_ENABLED="false",
        SEARCH_BACKEND="keyword",
    )
    sql = "SELECT dictGet('analytics.product_names', 'name', toUInt64(1)) AS name"
    done = subprocess.run(
        [sys.executable, "-m", "dbmeta_app", "preflight", sql],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True, done.stdout + done.stderr
