"""Cost of the routine policy on an uncached PostgreSQL EXPLAIN: with the check vs without, same run.

    python bench/routine_policy.py [--repeat 60]

Uses the generated 1,000-table warehouse of bench/introspection.py (created if missing). A three-table join is
EXPLAINed through run_explain alternately with and without the policy's check (its catalog already cached,
as between definition changes); the figures are the median wall times and their ratio, plus the check's
live query alone and one full catalog read (what a definitions change costs once).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median
from bench.introspection import ensure_warehouse
from dbmeta_app.preflight import catalog_postgres
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import RoutineGate

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dbmeta_bench"
SQL = (
    "SELECT a.c_00, count(*), sum(b.id) FROM wh_0.t_0000 a JOIN wh_1.t_0001 b ON b.id = a.id "
    "JOIN wh_2.t_0002 c ON c.id = b.id WHERE a.id > 10 GROUP BY a.c_00 ORDER BY 2 DESC LIMIT 20"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    ensure_warehouse(ADMIN_URL, URL, 1000)
    engine = sa.create_engine(URL)
    verdict = check_sql(SQL, "postgresql")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    gate = RoutineGate("postgresql")
    times: dict[str, list[float]] = {"without": [], "with": [], "live": [], "load": []}
    run_explain(engine, verdict.statement, check=gate.checker(verdict.reach))  # the catalog is read once here
    for _ in range(args.repeat):
        for name, check in (("without", None), ("with", gate.checker(verdict.reach))):
            started = time.perf_counter()
            result = run_explain(engine, verdict.statement, check=check)
            times[name].append(time.perf_counter() - started)
            assert result.ok, result.error
    with engine.connect() as conn:
        for _ in range(args.repeat):
            started = time.perf_counter()
            live = catalog_postgres.read_live(conn, verdict.reach)  # type: ignore[arg-type]
            times["live"].append(time.perf_counter() - started)
        for _ in range(max(3, args.repeat // 10)):
            started = time.perf_counter()
            catalog_postgres.load_catalog(conn, live.fingerprint)
            times["load"].append(time.perf_counter() - started)
        conn.rollback()
    engine.dispose()
    without, with_check = median(times["without"]), median(times["with"])
    print(
        f"1000 tables, median of {args.repeat}: uncached EXPLAIN {without * 1000:.2f} ms without the policy, "
        f"{with_check * 1000:.2f} ms with it → ratio {with_check / without:.2f}; "
        f"live check query {median(times['live']) * 1000:.2f} ms; "
        f"full catalog read (after a definitions change) {median(times['load']) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
