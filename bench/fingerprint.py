"""Cost of the PostgreSQL schema fingerprint: row hashes summed (14+) vs md5 over the sorted rows (older).

    python bench/fingerprint.py [--repeat 40]

Uses the generated 1,000-table warehouse of bench/introspection.py (created if missing). Both forms run alternately on one
connection; the figure is the median wall time of each and their ratio. Every soft-TTL refresh and every
drift check runs this query once, so its cost is what a refresh costs the database when nothing changed.
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
from dbmeta_app.schema import fingerprint as fp

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dbmeta_bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    ensure_warehouse(ADMIN_URL, URL, 1000)
    engine = sa.create_engine(URL)
    params: dict[str, list[str]] = {"include": [], "exclude": []}
    times: dict[str, list[float]] = {"md5": [], "hashed": []}
    with engine.connect() as conn:
        for _ in range(args.repeat):
            for name, query in (("md5", fp._PG_QUERY_MD5), ("hashed", fp._PG_QUERY)):
                started = time.perf_counter()
                conn.execute(query, params).scalar()
                times[name].append(time.perf_counter() - started)
    engine.dispose()
    md5, hashed = median(times["md5"]), median(times["hashed"])
    print(
        f"1000 tables, median of {args.repeat}: md5 over sorted rows {md5 * 1000:.2f} ms, "
        f"summed row hashes {hashed * 1000:.2f} ms → ratio {hashed / md5:.2f}"
    )


if __name__ == "__main__":
    main()
