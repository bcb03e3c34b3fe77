"""Plan bombs against a real PostgreSQL: refused before the server, or planned within bounds.

Everything here runs on a PRIVATE cluster (initdb under a temp dir, a free port) whose every process is
capped at 1.5 GB of address space, never on the shared server: a bomb that got through would make its
backend fail with "out of memory" instead of taking the machine down. Each case watches the backend's
peak resident memory (VmHWM in /proc) and the postmaster's pid (a crash would restart it).

Bounds asserted: answered within 1.5x the statement timeout (3 s here; with 5 s: at most 3.5 s), backend
peak under 400 MB (measured: at most 126 MB; the issue's 22-link chain took 22 GB), the service's own
RSS back within 100 MB of where it started.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench._faults import PgCluster, pg_tools_available
from dbmeta_app.main import create_app
from dbmeta_app.preflight.explain import run_explain
from tests.preflight.test_budget import cte_chain

pytestmark = pytest.mark.integration

TIMEOUT_MS = 3_000
BACKEND_PEAK_MB = 400
TABLES = 120


def union_all(branches: int) -> str:
    return " UNION ALL ".join(f"SELECT a FROM t{i % TABLES}" for i in range(branches))


def cte_fan(width: int, inner: int) -> str:
    body = "SELECT t0.a FROM " + ", ".join(f"t{i}" for i in range(inner))
    return f"WITH c AS NOT MATERIALIZED ({body}) SELECT count(*) FROM " + ", ".join(
        f"c a{i}" for i in range(width)
    )


def expression_bomb(terms: int, refs: int) -> str:
    expression = " + ".join(f"(a * {i})" for i in range(terms))
    copies = " + ".join("(SELECT x FROM c LIMIT 1)" for _ in range(refs))
    return f"WITH c AS NOT MATERIALIZED (SELECT {expression} AS x FROM t0) SELECT {copies}"


def or_bomb(terms: int, refs: int) -> str:
    condition = " OR ".join(f"a = {i}" for i in range(terms))
    sources = ", ".join(f"c c{i}" for i in range(refs))
    return f"WITH c AS NOT MATERIALIZED (SELECT a FROM t0 WHERE {condition}) SELECT count(*) FROM {sources}"


def wide_join(tables: int) -> str:
    joins = " AND ".join(f"x{i}.id = x{i + 1}.a" for i in range(tables - 1))
    return (
        "SELECT count(*) FROM "
        + ", ".join(f"t{i % TABLES} AS x{i}" for i in range(tables))
        + f" WHERE {joins}"
    )


def nested(levels: int) -> str:
    return "SELECT * FROM " + "(SELECT *, random() AS r FROM " * levels + "t0" + " OFFSET 0) s" * levels


# Each was measured near the edge of the default budget: ok, within the timeout and a few hundred MB.
WITHIN_BUDGET: list[tuple[str, str]] = [
    ("chain_10_links", cte_chain(10)),
    ("union_all_1000", union_all(1000)),
    ("cte_fan_44x44_geqo", cte_fan(44, 44)),
    ("expression_bomb_96k_nodes", expression_bomb(500, 24)),
    ("or_bomb_99k_nodes", or_bomb(1500, 11)),
    ("wide_join_100", wide_join(100)),
    ("nested_63_levels", nested(63)),
    ("wide_joins_19x100", " UNION ALL ".join(wide_join(100) for _ in range(19))),
    # constants folded while planning, just within the default 16 MB
    (
        "folded_constants_15mb",
        "SELECT length(repeat('x', 5000000)), lpad('', 5000000, 'y'), length(repeat('z', 4999900))",
    ),
]
OVER_BUDGET: list[tuple[str, str]] = [
    *((f"chain_{links}_links", cte_chain(links)) for links in (12, 18, 22, 30)),
    ("chain_22_three_refs", cte_chain(22, refs=3)),
    ("union_all_3000", union_all(3000)),
    ("expression_bomb_800k_nodes", expression_bomb(500, 200)),
    ("or_bomb_600k_nodes", or_bomb(1000, 100)),
    ("wide_join_150", wide_join(150)),
    ("nested_200_levels", nested(200)),
    ("folded_repeat_2x250mb", "SELECT length(repeat('x', 250000000)) + length(repeat('y', 250000000))"),
    (
        "folded_nested_encode",
        "SELECT length(" + "encode(convert_to(" * 20 + "'ab'" + ", 'UTF8'), 'hex')" * 20 + ")",
    ),
    # a second audit: 969 MB and 835 MB backends before they were counted
    (
        "folded_jsonpath_5m_items",
        "SELECT jsonb_array_length(jsonb_path_query_array('1', '$"
        + "[0,0,0,0,0,0,0,0,0,0]" * 6
        + "[0,0,0,0,0]'))",
    ),
    ("folded_char_padding_80x10mb", "SELECT " + ", ".join("length('x'::char(10485760))" for _ in range(80))),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    reason = pg_tools_available()
    if reason is not None:
        pytest.skip(f"cannot create a private PostgreSQL cluster: {reason}")
    server = PgCluster()
    try:
        server.init()
        server.start(memory_limit_mb=1536)
        engine = sa.create_engine(server.url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            for i in range(TABLES):
                conn.exec_driver_sql(f"CREATE TABLE t{i} (id int PRIMARY KEY, a int, b text)")
            # 1,800 arms: about 94,000 characters of definition, under the 100,000 the routine policy parses
            conn.exec_driver_sql(
                "CREATE VIEW wide_view AS "
                + " UNION ALL ".join(f"SELECT id, a FROM t{i % TABLES}" for i in range(1800))
            )
        engine.dispose()
        yield server
    finally:
        server.close()


@pytest.fixture
def engine(cluster: PgCluster) -> Iterator[sa.Engine]:
    # One pooled connection: every case runs on the backend whose memory is watched.
    engine = sa.create_engine(
        cluster.url.replace("postgresql://", "postgresql+psycopg://"), pool_size=1, max_overflow=0
    )
    yield engine
    engine.dispose()


def postmaster_pid(cluster: PgCluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


class BackendWatch:
    """Poll a backend's peak resident memory (VmHWM) while a case runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                pass
            self._stop.wait(0.02)

    def __enter__(self) -> BackendWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def _explain_watched(engine: sa.Engine, sql: str) -> tuple[Any, float, float]:
    with engine.connect() as conn:
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    with BackendWatch(pid) as watch:
        started = time.perf_counter()
        # as the service does: one deadline for the whole answer, guard included
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        result = run_explain(engine, sql, timeout_ms=TIMEOUT_MS, deadline=deadline)
        elapsed = time.perf_counter() - started
    return result, elapsed, watch.peak_mb


@pytest.mark.parametrize("sql", [sql for _, sql in OVER_BUDGET], ids=[name for name, _ in OVER_BUDGET])
def test_plan_bombs_are_refused_before_they_reach_the_server(
    cluster: PgCluster, engine: sa.Engine, sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbmeta_app.preflight import explain

    sessions: list[int] = []
    real = explain.read_only_session

    def counted(*args: Any, **kwargs: Any) -> Any:
        sessions.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(explain, "read_only_session", counted)
    before = postmaster_pid(cluster)
    result, _, peak_mb = _explain_watched(engine, sql)
    assert not result.ok and result.error_kind == "limit", result.error
    assert "over the limit" in (result.error or "")
    assert sessions == []  # measured on the parse tree: the server never sees it
    assert peak_mb < BACKEND_PEAK_MB
    assert postmaster_pid(cluster) == before


@pytest.mark.parametrize("sql", [sql for _, sql in WITHIN_BUDGET], ids=[name for name, _ in WITHIN_BUDGET])
def test_the_worst_queries_within_the_budget_plan_within_time_and_memory(
    cluster: PgCluster, engine: sa.Engine, sql: str
) -> None:
    before = postmaster_pid(cluster)
    result, elapsed, peak_mb = _explain_watched(engine, sql)
    assert result.ok or result.error_kind == "timeout", result.error
    assert elapsed < 1.5 * TIMEOUT_MS / 1000
    assert peak_mb < BACKEND_PEAK_MB, peak_mb
    assert postmaster_pid(cluster) == before


def test_the_planner_bounds_are_in_force_and_only_for_the_transaction(cluster: PgCluster) -> None:
    engine = sa.create_engine(
        cluster.url.replace("postgresql://", "postgresql+psycopg://"),
        pool_size=1,
        max_overflow=0,
        connect_args={"options": "-c join_collapse_limit=30 -c geqo=off -c geqo_threshold=40 -c jit=on"},
    )
    try:
        from dbmeta_app.db.session import read_only_session

        names = ("join_collapse_limit", "from_collapse_limit", "geqo", "geqo_threshold", "jit")
        query = "SELECT " + ", ".join(f"current_setting('{n}')" for n in names)
        with read_only_session(engine, TIMEOUT_MS) as session:
            inside = tuple(session.run(query).one())
        with engine.connect() as conn:
            after = tuple(conn.exec_driver_sql(query).one())
    finally:
        engine.dispose()
    assert inside == ("8", "8", "on", "12", "off")
    assert after == ("30", "8", "off", "40", "on")  # the connection's own settings, untouched


def test_a_plan_larger_than_the_limit_is_truncated_with_its_estimates_kept(engine: sa.Engine) -> None:
    # (a generous time limit: this is about the size of the answer, and a loaded machine plans slowly)
    full = run_explain(engine, "SELECT * FROM wide_view", timeout_ms=60_000, max_plan_bytes=64 * 1024 * 1024)
    assert full.ok and not full.plan_truncated
    cut = run_explain(engine, "SELECT * FROM wide_view", timeout_ms=60_000, max_plan_bytes=16 * 1024)
    assert cut.ok and cut.plan_truncated
    assert len(str(cut.plan)) < 32 * 1024 < len(str(full.plan))
    assert (cut.estimated_rows, cut.estimated_cost) == (full.estimated_rows, full.estimated_cost)
    assert cut.plan[0]["Plan"]["Node Type"] == full.plan[0]["Plan"]["Node Type"]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_through_the_service_bombs_are_verdicts_and_its_memory_comes_back(
    cluster: PgCluster, make_settings: Any, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.yml"
    url = cluster.url.replace("postgresql://", "postgresql+psycopg://")
    # (a generous time limit: the big plan is about the size of the answer, and a loaded machine plans slowly)
    profiles.write_text(
        f"profiles:\n  bombs: {{database_url: '{url}', include_schemas: [public], preflight: {{timeout_ms: 60000}}}}\n"
    )
    settings = make_settings(profiles_file=profiles, default_profile="bombs")
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/preflight", json={"sql": "SELECT 1"}).json()["ok"] is True
        gc.collect()
        before = _rss_mb()
        started = time.perf_counter()
        for _, sql in OVER_BUDGET:
            body = client.post("/v1/preflight", json={"sql": sql}).json()
            assert body["error_kind"] == "limit", body["error"]
        assert time.perf_counter() - started < 15
        big = client.post("/v1/preflight", json={"sql": "SELECT * FROM wide_view"}).json()
        assert big["ok"] is True and big["plan_truncated"] is True
        assert len(str(big["plan"])) < 2 * settings.profiles["bombs"].preflight.max_plan_bytes
        gc.collect()
        assert _rss_mb() - before < 100
