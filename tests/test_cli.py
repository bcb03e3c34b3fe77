"""The ``dbmeta`` command line against the bundled sample warehouse, a real model and Milvus Lite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dbmeta_app.cli import app
from dbmeta_app.config import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_CACHE_ENABLED", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_index_builds_tables_and_examples_then_embeds_nothing_when_nothing_changed(run: CliRunner) -> None:
    first = run.invoke(app, ["index"])
    assert first.exit_code == 0, first.output
    assert "tables: added 24" in first.output and "examples: added 37" in first.output
    again = run.invoke(app, ["index"])
    assert again.exit_code == 0, again.output
    assert "tables: added 0 · updated 0 · removed 0 · unchanged 24 · embedded 0" in again.output
    assert "examples: added 0 · updated 0 · removed 0 · unchanged 37 · embedded 0" in again.output
    hits = run.invoke(app, ["search", "open support tickets by agent", "--top-k", "3"])
    assert hits.exit_code == 0 and hits.stdout.splitlines()[0].endswith("tickets")


def test_preflight_exits_non_zero_on_unsafe_sql_and_an_unknown_profile_is_a_clean_error(
    run: CliRunner,
) -> None:
    ok = run.invoke(app, ["preflight", "SELECT count(*) FROM tickets"])
    assert ok.exit_code == 0 and '"ok": true' in ok.stdout
    unsafe = run.invoke(app, ["preflight", "DELETE FROM tickets"])
    assert unsafe.exit_code == 1 and '"ok": false' in unsafe.stdout
    unknown = run.invoke(app, ["schema", "--profile", "nope"])
    assert unknown.exit_code == 2 and "nope" in unknown.output
