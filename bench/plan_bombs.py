"""Plan bombs against a private, memory-capped PostgreSQL cluster: time and backend peak memory per case.

    python bench/plan_bombs.py [--timeout-ms 5000] [--memory-limit-mb 1536] [--raw]

Each case is EXPLAINed the way the service does it (run_explain: guard with the default complexity budget,
read-only transaction, planner bounds, statement timeout), on one pooled connection whose backend's peak
resident memory (VmHWM) is read from /proc. ``--raw`` also plans the refused cases without the guard,
inside the same capped cluster, to show what the budget prevents (bounded by the cluster's memory cap:
an "out of memory" error there means the bomb would have taken more).
The cluster is created with initdb under a temp dir (needs root to run it as the 'postgres' OS user).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._faults import PgCluster, pg_tools_available
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql
from tests.preflight.test_plan_bombs import OVER_BUDGET, TABLES, WITHIN_BUDGET, BackendWatch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout-ms", type=int, default=5000)
    parser.add_argument("--memory-limit-mb", type=int, default=1536)
    parser.add_argument("--raw", action="store_true", help="also plan the refused cases without the guard")
    args = parser.parse_args()
    reason = pg_tools_available()
    if reason is not None:
        raise SystemExit(f"cannot create a private PostgreSQL cluster: {reason}")
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start(memory_limit_mb=args.memory_limit_mb)
        url = cluster.url.replace("postgresql://", "postgresql+psycopg://")
        setup = sa.create_engine(url)
        with setup.begin() as conn:
            for i in range(TABLES):
                conn.exec_driver_sql(f"CREATE TABLE t{i} (id int PRIMARY KEY, a int, b text)")
        setup.dispose()
        engine = sa.create_engine(url, pool_size=1, max_overflow=0)
        print(f"timeout {args.timeout_ms} ms, server processes capped at {args.memory_limit_mb} MB")
        print(f"{'case':30} {'guard measures':52} {'answer':10} {'seconds':>8} {'peak MB':>8}")
        for name, sql in [*WITHIN_BUDGET, *OVER_BUDGET]:
            measures = check_sql(sql, "postgresql").measures
            shown = (
                f"nodes={measures.nodes:,} rel={measures.relations:,} depth={measures.depth} "
                f"q={measures.query_depth} from={measures.from_items}"
                if measures is not None
                else "-"
            )
            with engine.connect() as conn:
                pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            with BackendWatch(pid) as watch:
                started = time.perf_counter()
                # as the service does: one deadline for the whole answer (guard included)
                deadline = time.monotonic() + args.timeout_ms / 1000
                result = run_explain(engine, sql, timeout_ms=args.timeout_ms, deadline=deadline)
                took = time.perf_counter() - started
            outcome = "ok" if result.ok else str(result.error_kind)
            print(f"{name:30} {shown[:52]:52} {outcome:10} {took:8.2f} {watch.peak_mb:8.0f}", flush=True)
        engine.dispose()
        if args.raw:
            print("\nwithout the guard (a fresh backend per case):")
            for name, sql in OVER_BUDGET:
                raw = sa.create_engine(url, poolclass=sa.pool.NullPool)
                with raw.connect() as conn:
                    pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
                    conn.exec_driver_sql(f"SET statement_timeout = {args.timeout_ms}")
                    with BackendWatch(pid) as watch:
                        started = time.perf_counter()
                        try:
                            conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").all()
                            outcome = "planned"
                        except sa.exc.DBAPIError as exc:
                            outcome = str(getattr(exc.orig, "sqlstate", "error"))
                            outcome = {"53200": "OOM", "57014": "timeout"}.get(outcome, outcome)
                        took = time.perf_counter() - started
                print(f"{name:30} {outcome:10} {took:8.2f} s {watch.peak_mb:8.0f} MB", flush=True)
                raw.dispose()
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
