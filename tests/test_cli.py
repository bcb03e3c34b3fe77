"""The ``dbmeta`` command line against the bundled sample warehouse, a real model and Milvus Lite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from dbmeta_app import __version__
from dbmeta_app.cli import app
from dbmeta_app.config import get_settings
from tests.conftest import free_port

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


# ---- the small things: version, unknown tables, --json, exits, one line on failure ----------------------


@pytest.fixture
def keyword(run: CliRunner, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI on keyword search (no model, no Milvus)."""
    monkeypatch.setenv("SEARCH_BACKEND", "keyword")
    get_settings.cache_clear()
    return run


def _one_line_error(result: Result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), result.stderr
    return lines[0]


def test_version_prints_the_package_version(run: CliRunner) -> None:
    result = run.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"dbmeta {__version__}"


def test_unknown_tables_are_named_and_exit_non_zero_with_the_known_ones_printed(keyword: CliRunner) -> None:
    none = keyword.invoke(app, ["schema", "-t", "nosuch"])
    assert none.exit_code == 1 and none.stdout == ""
    assert "unknown tables" in none.stderr and "nosuch" in none.stderr
    mixed = keyword.invoke(app, ["schema", "-t", "nosuch", "-t", "orders"])
    assert mixed.exit_code == 1 and "# orders" in mixed.stdout and "nosuch" in mixed.stderr
    assert "nosuch" not in mixed.stdout
    as_json = keyword.invoke(app, ["schema", "-t", "nosuch", "-t", "orders", "--json"])
    meta = json.loads(as_json.stdout)["metadata"]
    assert as_json.exit_code == 1 and meta["tables"] == ["orders"] and meta["unknown_tables"] == ["nosuch"]
    known = keyword.invoke(app, ["schema", "-t", "orders"])
    assert known.exit_code == 0 and "# orders" in known.stdout


def test_search_json_has_the_http_answer_shape(keyword: CliRunner) -> None:
    result = keyword.invoke(app, ["search", "open support tickets by priority", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["profile"] == "default" and answer["degraded"] is False
    assert answer["tables"][0]["name"] == "tickets" and len(answer["tables"]) == 3
    assert set(answer["tables"][0]) == {"name", "score"}


def test_cache_stats_without_a_server_says_whose_counters_they_are(keyword: CliRunner) -> None:
    result = keyword.invoke(app, ["cache", "stats", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["backend"] == "memory"
    assert "no server runs on this DATA_DIR" in result.stderr


def test_a_database_that_is_down_is_one_line_and_exit_2_without_the_password(
    keyword: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:s3cret@127.0.0.1:{free_port()}/db")
    get_settings.cache_clear()
    for command in (["schema"], ["preflight", "SELECT 1"], ["search", "orders"]):
        result = keyword.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "upstream_unavailable" in _one_line_error(result) and "s3cret" not in result.output


def test_interrupt_and_unexpected_failures_are_one_line(
    keyword: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dbmeta_app.cli._run", interrupted)
    result = keyword.invoke(app, ["schema"])
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"

    def broken(*_: Any) -> None:
        raise RuntimeError("something odd")

    monkeypatch.setattr("dbmeta_app.cli._run", broken)
    result = keyword.invoke(app, ["schema"])
    assert result.exit_code == 2 and "RuntimeError: something odd" in _one_line_error(result)


def test_milvus_unreachable_makes_search_degraded_exit_1_and_index_fail_in_one_line(
    run: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MILVUS_URI", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    found = run.invoke(app, ["search", "open support tickets by priority", "-k", "3"])
    # the keyword ranking still answers, but never silently: it says so and exits 1
    assert found.exit_code == 1, found.output
    assert found.stdout.splitlines()[0].endswith("tickets")
    assert "degraded" in found.stderr and "Traceback" not in found.output
    built = run.invoke(app, ["index"])
    assert built.exit_code == 2 and "unavailable" in _one_line_error(built)


def test_the_progress_bar_says_nothing_to_embed_when_nothing_changed(run: CliRunner) -> None:
    first = run.invoke(app, ["index"])
    again = run.invoke(app, ["index"])
    assert again.exit_code == 0 and "default: nothing to embed" in again.stderr and "0/?" not in again.output
    assert first.exit_code == 0 and "embedding default" in first.stderr
    assert "nothing to embed" not in first.stderr
    as_json = run.invoke(app, ["index", "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["tables"]["embedded"] == 0 and report["tables"]["unchanged"] == 24
    assert report["examples"]["embedded"] == 0 and report["examples_error"] is None


def test_schema_and_search_print_no_control_characters_of_the_database(
    keyword: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    db = tmp_path / "hostile.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            'CREATE TABLE "orders\x1b[2K\rfake_table" (id INTEGER PRIMARY KEY, "note\x1b]0;t\x07" TEXT)'
        )
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    get_settings.cache_clear()
    schema = keyword.invoke(app, ["schema"])
    assert schema.exit_code == 0, schema.output
    assert '# "orders\\x1b[2K\\x0dfake_table"' in schema.stdout
    found = keyword.invoke(app, ["search", "orders fake table", "-k", "2"])
    assert found.exit_code == 0, found.output
    assert "orders\\x1b[2K\\x0dfake_table" in found.stdout
    for result in (schema, found):
        assert not any(c in result.output for c in ("\x1b", "\r", "\x07")), repr(result.output)


def test_search_says_which_shards_of_a_family_the_request_needs(
    keyword: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    db = tmp_path / "web.db"
    with sqlite3.connect(db) as conn:
        for day in range(10, 25):
            conn.execute(f"CREATE TABLE events_202301{day} (event_name TEXT)")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    get_settings.cache_clear()
    found = keyword.invoke(app, ["search", "events from January 12, 2023 to January 13, 2023", "-k", "2"])
    assert found.exit_code == 0, found.output
    assert found.stdout.splitlines()[0].endswith(
        "events_20230112  (one shard of the date-sharded family events_YYYYMMDD; "
        "the request's dates need events_20230112, events_20230113)"
    ), found.stdout


def test_schema_says_on_stderr_that_an_included_schema_does_not_exist(
    run: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    (tmp_path / "p.yml").write_text(
        f"profiles:\n  m:\n    database_url: sqlite:///{tmp_path / 'm.db'}\n    include_schemas: [Main]\n"
    )
    monkeypatch.setenv("PROFILES_FILE", str(tmp_path / "p.yml"))
    monkeypatch.setenv("DEFAULT_PROFILE", "m")
    get_settings.cache_clear()
    result = run.invoke(app, ["schema"])
    assert result.exit_code == 1, (
        result.output
    )  # the schema asked for is not served: partial, like unknown tables
    assert (
        "profile 'm': include_schemas names 'Main', which the database does not have (did you mean 'main'?)"
        in result.stderr
    ), result.output


def test_a_one_line_message_keeps_the_names_of_the_settings_it_names(
    run: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the scrubber masks secret values, never the setting a message tells the reader to set
    monkeypatch.setenv("ADMIN_TOKEN", "changeme")
    get_settings.cache_clear()
    result = run.invoke(app, ["schema"])
    assert result.exit_code == 2, result.output
    assert "ADMIN_TOKEN: Value error, refusing a placeholder token" in result.stderr, result.stderr
