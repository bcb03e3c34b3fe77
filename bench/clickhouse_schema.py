"""Full schema of a generated chDB (ClickHouse) warehouse vs a plain ``system.columns`` read + render.

    python bench/clickhouse_schema.py [--tables 200] [--columns 60] [--repeat 15] [--path /tmp/dbmeta_bench_chdb]

Creates (once) a database ``bench`` of N MergeTree tables, ~60 columns each (LowCardinality, Nullable, Array,
Map, Tuple, Nested, DateTime64, Decimal, Enum), with table and column comments, sorting and partition keys,
then times, alternating, in the same process and on the same engine:
  baseline: SELECT database, table, name, type, comment FROM system.columns (the database only), grouped per
            table and rendered as plain "name type — comment" lines
  dbmeta:   dbmeta_app.schema.introspect(...) + render_schema(...) — the service's cold full-schema path
            (fingerprint, system.tables, system.columns, snapshot with its content version, rendering)
and prints the medians and their ratio (the bar is ratio ≤ 1.0).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, timed
from dbmeta_app.schema import introspect
from dbmeta_app.schema.render import render_schema

DATABASE = "bench"
TYPES = [
    "UInt64",
    "Int32",
    "Float64",
    "String",
    "LowCardinality(String)",
    "Nullable(String)",
    "Nullable(UInt32)",
    "DateTime64(3, 'UTC')",
    "Date",
    "Decimal(12, 2)",
    "Array(String)",
    "Map(String, String)",
    "Tuple(a UInt8, b String)",
    "Enum8('a' = 1, 'b' = 2)",
    "Bool",
]


def ensure_warehouse(engine: sa.Engine, tables: int, columns: int) -> None:
    """Create the bench database unless it already has the tables."""
    with engine.connect() as conn:
        have = conn.exec_driver_sql(
            f"SELECT count() FROM system.tables WHERE database = '{DATABASE}'"
        ).scalar()
        if have == tables:
            return
        print(f"creating {tables} tables of {columns} columns ...", file=sys.stderr)
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        rng = random.Random(7)
        for t in range(tables):
            cols = ["id UInt64 COMMENT 'Surrogate key'", "ts DateTime COMMENT 'When it happened'"]
            for c in range(columns - 3):
                comment = f" COMMENT 'Payload column {c} of table {t}'" if c % 3 == 0 else ""
                cols.append(f"c_{c:02d} {rng.choice(TYPES)}{comment}")
            cols.append("attrs Nested(k String, v String) COMMENT 'Attributes as parallel arrays'")
            conn.exec_driver_sql(
                f"CREATE TABLE {DATABASE}.t_{t:04d} ({', '.join(cols)}) ENGINE = MergeTree "
                f"PARTITION BY toYYYYMM(ts) ORDER BY (id, ts) COMMENT 'Generated table {t} of the bench warehouse'"
            )


def baseline(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT database, table, name, type, comment FROM system.columns "
            f"WHERE database = '{DATABASE}' ORDER BY database, table, position"
        ).fetchall()
    per_table: dict[str, list[str]] = defaultdict(list)
    for database, table, name, type_name, comment in rows:
        line = f"{name} {type_name}"
        if comment:
            line += f" — {comment}"
        per_table[f"{database}.{table}"].append(line)
    text = "\n\n".join(f"# {key}\n" + "\n".join(lines) for key, lines in per_table.items())
    return len(text)


def dbmeta(engine: sa.Engine) -> int:
    snapshot = introspect(engine, "bench", include_schemas=(DATABASE,))
    return len(render_schema(snapshot))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--columns", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--path", default="/tmp/dbmeta_bench_chdb")
    args = parser.parse_args()
    engine = sa.create_engine(f"chdb:///{Path(args.path).resolve()}")
    ensure_warehouse(engine, args.tables, args.columns)
    print(f"baseline text {baseline(engine):,} chars, dbmeta text {dbmeta(engine):,} chars (warm-up)")
    base_times: list[float] = []
    ours_times: list[float] = []
    base_cpu: list[float] = []
    ours_cpu: list[float] = []
    for _ in range(args.repeat):  # alternate, so drift in the machine's load hits both alike
        for fn, wall, cpu in ((baseline, base_times, base_cpu), (dbmeta, ours_times, ours_cpu)):
            started = time.process_time()  # CPU of every thread of the process, chDB's included
            wall += timed(lambda fn=fn: fn(engine), 1)  # type: ignore[misc]
            cpu.append(time.process_time() - started)
    base, ours = median(base_times), median(ours_times)
    print(f"tables={args.tables} columns/table={args.columns} repeat={args.repeat}")
    print(f"min: baseline {min(base_times) * 1000:.1f} ms, dbmeta {min(ours_times) * 1000:.1f} ms")
    print(
        f"CPU (all threads) median: baseline {median(base_cpu) * 1000:.1f} ms, "
        f"dbmeta {median(ours_cpu) * 1000:.1f} ms, ratio {median(ours_cpu) / median(base_cpu):.2f}"
    )
    print(
        f"baseline (system.columns + plain render): median {base * 1000:.1f} ms  {[round(t * 1000, 1) for t in base_times]}"
    )
    print(
        f"dbmeta (introspect + render_schema):      median {ours * 1000:.1f} ms  {[round(t * 1000, 1) for t in ours_times]}"
    )
    print(f"ratio {ours / base:.2f} (bar: <= 1.0)")
    engine.dispose()


if __name__ == "__main__":
    main()
