"""Query example packs merge in layers and fail clearly; instructions and dialect items render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.errors import ConfigError
from dbmeta_app.examples.instructions import get_instructions, render_dialect, render_instructions
from dbmeta_app.examples.query_examples import example_layers, get_query_examples, load_examples
from dbmeta_app.profiles import open_profile


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _layers(root: Path) -> None:
    _write(
        root / "base" / "a.yml",
        """
examples:
  - {id: top-customers, request: Top customers by revenue, response: "SELECT 1", tables: [customers]}
  - {id: revenue, request: Revenue per month, response: "SELECT 2"}
  - {id: legacy, request: Old report, response: "SELECT 3"}
""",
    )
    _write(
        root / "clients" / "acme" / "c.yml",
        """
examples:
  - {id: revenue, request: Revenue per month (ACME fiscal calendar), response: "SELECT 22"}
""",
    )
    _write(root / "envs" / "prod" / "e.yml", "examples:\n  - {id: legacy, hidden: true}\n")
    _write(
        root / "profiles" / "default" / "p.yml",
        """
examples:
  - {id: churn, request: Churned customers, response: "SELECT 4", tags: [customers]}
""",
    )


def test_layers_merge_base_client_env_profile_with_replace_and_hide(
    make_settings: Any, tmp_path: Path
) -> None:
    root = tmp_path / "examples"
    _layers(root)
    settings = make_settings(examples_dir=root, client="acme", env="prod")
    rt = open_profile(settings.profile(None))
    paths = example_layers(settings, rt)
    assert [p.parent.name for p in paths[:4]] == ["base", "acme", "prod", "default"]
    assert paths[-1].name == "examples.yml"  # the sample profile's own file comes last
    merged = {e.id: e for e in load_examples(paths[:4])}
    assert set(merged) == {"top-customers", "revenue", "churn"}
    assert merged["revenue"].response == "SELECT 22" and merged["revenue"].source == "c.yml"
    assert merged["top-customers"].tables == ("customers",)
    rt.dispose()


def test_other_clients_and_envs_do_not_see_those_layers(make_settings: Any, tmp_path: Path) -> None:
    root = tmp_path / "examples"
    _layers(root)
    settings = make_settings(examples_dir=root, client="globex", env="staging")
    rt = open_profile(settings.profile(None))
    merged = {e.id: e for e in load_examples(example_layers(settings, rt)[:2])}
    assert merged["revenue"].response == "SELECT 2" and "legacy" in merged
    rt.dispose()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("examples:\n  - {id: a, request: x}\n", "entry 1 (id 'a'): needs both 'request' and 'response'"),
        ("examples:\n  - {request: x, response: y}\n", "entry 1: id: Field required"),
        ("examples:\n  - {id: a, request: x, response: y, colour: red}\n", "colour"),
        (
            "examples:\n  - {id: a, request: x, response: y}\n  - {id: a, request: z, response: w}\n",
            "appears twice",
        ),
        ("examples: [unclosed\n", "invalid YAML"),
        ("rows: []\n", "examples file"),
    ],
)
def test_invalid_packs_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "bad.yml", text)
    with pytest.raises(ConfigError) as err:
        load_examples([path])
    assert message in str(err.value) and "bad.yml" in str(err.value)


async def test_the_sample_profiles_examples_are_loaded_and_cached(make_settings: Any) -> None:
    settings = make_settings()
    cache = RedisCache(settings)
    rt = open_profile(settings.profile(None))
    first = await get_query_examples(settings, cache, rt)
    assert len(first) >= 25 and all(e.request and e.response for e in first)
    again = await get_query_examples(settings, cache, rt)
    assert again == first and cache.stats.of("examples").memory_hits == 1
    rt.dispose()


def test_instructions_combine_all_and_profile_lists(make_settings: Any, tmp_path: Path) -> None:
    shared = _write(
        tmp_path / "i.yml",
        "all: [Be concise., 'Use  only   known tables.']\nprofiles:\n  default: [Money is USD.]\n  other: [Nope.]\n",
    )
    settings = make_settings(instructions_file=shared)
    rt = open_profile(settings.profile(None))
    got = get_instructions(settings, rt)
    assert got[:3] == ["Be concise.", "Use only known tables.", "Money is USD."]
    assert "Nope." not in got and len(got) > 3  # the sample profile's own file adds more
    assert render_instructions(got[:2]) == "1. Be concise.\n2. Use only known tables."
    rt.dispose()


def test_a_bad_instructions_file_is_a_clear_error(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings(instructions_file=_write(tmp_path / "i.yml", "all: 5\n"))
    rt = open_profile(settings.profile(None))
    with pytest.raises(ConfigError) as err:
        get_instructions(settings, rt)
    assert "i.yml" in str(err.value) and "all" in str(err.value)
    rt.dispose()


def test_dialect_items_name_the_quoting_and_date_functions() -> None:
    assert "double quotes" in render_dialect("postgresql") and "date_trunc" in render_dialect("postgresql")
    assert "backticks" in render_dialect("mariadb") and "MySQL / MariaDB" in render_dialect("mariadb")
    # every ClickHouse driver gets the ClickHouse notes
    for name in ("chdb", "clickhousedb"):
        assert "SQL dialect: ClickHouse." in render_dialect(name) and "sorting key" in render_dialect(name)
    assert "SQL dialect: DuckDB." in render_dialect("duckdb")
    assert "strftime" in render_dialect("sqlite")
    assert render_dialect("oracle").startswith("SQL dialect: oracle.")


def _fit_snapshot() -> Any:
    from dbmeta_app.schema.models import Column, Snapshot, Table

    def table(name: str, *cols: str) -> Table:
        return Table(name=name, schema=None, columns=tuple(Column(name=c, type="INTEGER") for c in cols))

    tables = [
        table("tickets", "ticket_id", "assigned_to", "status"),
        table("employees", "employee_id", "name"),
        table("events_20230101", "event_id"),
        table("events_20230102", "event_id"),
    ]
    return Snapshot.build("p", "sqlite", tables)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        # an output alias that is also a table name, table aliases, a CTE and its columns
        (
            "WITH load(agent, n) AS (SELECT assigned_to, COUNT(*) FROM tickets GROUP BY 1) "
            "SELECT e.name AS agent_name, l.n AS tickets FROM load l JOIN employees e ON e.employee_id = l.agent "
            "ORDER BY tickets DESC",
            None,
        ),
        ("SELECT x.total FROM (SELECT COUNT(*) AS total FROM tickets) x", None),
        ("SELECT t.priority FROM tickets t", "unknown columns: priority"),
        (
            "SELECT status FROM tickets JOIN agents ON agents.id = tickets.assigned_to",
            "unknown tables: agents",
        ),
        ("DELETE FROM tickets", "refused by the guard"),
        ("SELECT event_id FROM events_20230102", None),
        # a family's name answers a request for its schema, but no table of the database has it
        ("SELECT event_id FROM events_YYYYMMDD", "unknown tables: events_YYYYMMDD"),
    ],
)
def test_example_sql_is_checked_against_the_snapshot_tables_and_columns(sql: str, reason: str | None) -> None:
    from dbmeta_app.examples.query_examples import QueryExample, check_examples

    example = QueryExample(id="e", request="r", response=sql)
    check = check_examples([example], _fit_snapshot())["e"]
    assert check.ok is (reason is None)
    if reason is not None:
        assert check.reason is not None and check.reason.startswith(reason)
