"""What the silence watchdog adds to a statement: PostgreSQL 'SELECT 1' on one connection, bare and guarded.

    python bench/silence_overhead.py [--n 3000] [--url postgresql://postgres@127.0.0.1:5432/postgres]

Both engines are made by ``create_profile_engine``; the bare one has the watchdog's listener removed.
Prints µs per statement for each, interleaved in rounds (this machine is noisy), and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dbmeta_app.config import Profile
from dbmeta_app.db import session
from dbmeta_app.db.engines import create_profile_engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    bare = create_profile_engine(Profile(name="bare", database_url=args.url))
    sa.event.remove(bare, "before_cursor_execute", session._arm_silence)
    guarded = create_profile_engine(Profile(name="guarded", database_url=args.url))
    times: dict[str, list[float]] = {"bare": [], "guarded": []}
    with bare.connect() as b, guarded.connect() as g:
        for conn in (b, g):
            for _ in range(200):
                conn.exec_driver_sql("SELECT 1")
        for _ in range(args.rounds):
            for name, conn in (("bare", b), ("guarded", g)):
                started = time.perf_counter()
                for _ in range(args.n):
                    conn.exec_driver_sql("SELECT 1")
                times[name].append((time.perf_counter() - started) / args.n * 1e6)
    bare.dispose()
    guarded.dispose()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:8} {value:7.1f} µs per statement (median of {args.rounds} rounds of {args.n})")
    print(f"guarded / bare = {medians['guarded'] / medians['bare']:.3f}")


if __name__ == "__main__":
    main()
