"""Cold introspection + render of a generated 1,000-table PostgreSQL warehouse vs SQLAlchemy's bulk Inspector.

    python bench/introspection.py [--tables 1000] [--repeat 5] [--url postgresql+psycopg://postgres@127.0.0.1/dbmeta_bench]

Creates (once) a warehouse of N tables over 10 schemas, ~16 columns each, with FKs and comments, then times,
alternating, in the same process:
  baseline: Inspector.get_multi_columns + get_multi_pk_constraint + get_multi_foreign_keys over every schema
  dbmeta:   dbmeta_app.schema.introspect(...) + render_schema(...)  (the full cold path)
and prints the medians and their ratio (the bar is ratio ≤ 1.0).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, timed
from dbmeta_app.schema import introspect
from dbmeta_app.schema.render import render_schema

SCHEMAS = 10
TYPES = ["integer", "bigint", "text", "varchar(80)", "numeric(12,2)", "timestamp", "date", "boolean", "jsonb"]


def ensure_warehouse(admin_url: str, url: str, tables: int) -> None:
    """Create the bench database and its schemas/tables unless they are already there."""
    db = sa.engine.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": db}).scalar():
            conn.exec_driver_sql(f'CREATE DATABASE "{db}"')
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        have = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname LIKE 'wh\\_%' AND c.relkind = 'r'"
            )
        ).scalar()
    if have == tables:
        engine.dispose()
        return
    print(f"creating {tables} tables ...", file=sys.stderr)
    rng = random.Random(7)
    with engine.begin() as conn:
        for s in range(SCHEMAS):
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS wh_{s} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA wh_{s}")
        created: list[str] = []
        for t in range(tables):
            schema = f"wh_{t % SCHEMAS}"
            name = f"{schema}.t_{t:04d}"
            cols = ["id bigint PRIMARY KEY"]
            fks = []
            for c in range(15):
                cols.append(f"c_{c:02d} {rng.choice(TYPES)}")
            for k in range(min(2, len(created))):
                target = rng.choice(created)
                cols.append(f"ref_{k} bigint")
                fks.append(f"FOREIGN KEY (ref_{k}) REFERENCES {target}(id)")
            conn.exec_driver_sql(f"CREATE TABLE {name} ({', '.join(cols + fks)})")
            conn.exec_driver_sql(f"COMMENT ON TABLE {name} IS 'Generated table {t} of the bench warehouse'")
            conn.exec_driver_sql(f"COMMENT ON COLUMN {name}.c_00 IS 'First payload column of table {t}'")
            created.append(name)
    engine.dispose()


def baseline(url: str) -> int:
    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    count = 0
    for s in range(SCHEMAS):
        cols = insp.get_multi_columns(schema=f"wh_{s}")
        insp.get_multi_pk_constraint(schema=f"wh_{s}")
        insp.get_multi_foreign_keys(schema=f"wh_{s}")
        count += len(cols)
    engine.dispose()
    return count


def ours(url: str) -> int:
    engine = sa.create_engine(url)
    snapshot = introspect(engine, "bench", include_schemas=tuple(f"wh_{s}" for s in range(SCHEMAS)))
    text = render_schema(snapshot)
    engine.dispose()
    assert len(snapshot.tables) > 0 and text
    return len(snapshot.tables)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/dbmeta_bench")
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    ensure_warehouse(args.admin_url, args.url, args.tables)
    n_base, n_ours = baseline(args.url), ours(args.url)  # warm-up, and a sanity check of both
    engine = sa.create_engine(args.url)
    snap = introspect(engine, "bench", include_schemas=tuple(f"wh_{s}" for s in range(SCHEMAS)))
    columns = sum(len(t.columns) for t in snap.tables.values())
    fks = sum(len(t.foreign_keys) for t in snap.tables.values())
    engine.dispose()
    print(f"warehouse: {n_ours} tables (baseline saw {n_base}), {columns} columns, {fks} FKs")
    base_times: list[float] = []
    our_times: list[float] = []
    for _ in range(args.repeat):  # alternate so machine noise hits both alike
        base_times += timed(lambda: baseline(args.url), 1)
        our_times += timed(lambda: ours(args.url), 1)
    b, o = median(base_times), median(our_times)
    print(f"SQLAlchemy bulk Inspector (columns+pk+fks): median {b * 1000:.0f} ms over {args.repeat}")
    print(f"dbmeta introspect + render:                 median {o * 1000:.0f} ms over {args.repeat}")
    print(f"ratio dbmeta / baseline = {o / b:.3f}  (bar: <= 1.0)")


if __name__ == "__main__":
    main()
