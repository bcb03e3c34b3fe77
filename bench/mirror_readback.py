"""How long a restarted process takes to read its index mirror back from a Milvus Lite file.

    python bench/mirror_readback.py [--tables 3000] [--columns 38] [--rounds 1]

Builds a profile of ``--tables`` tables of ``--columns`` columns (~110,000 rows at the defaults, the size of the
3,000-table scale warehouse) into a Milvus Lite file under /tmp with stand-in vectors (random unit vectors: the
model is not what is measured), then, in the same run and alternating:
- baseline: the rows read with pymilvus' query iterator in 1,000-row pages (how the mirror was read before);
- service: a new ``TableIndex`` opening the collection, i.e. the read-back plus building the mirror (sketch,
  BM25 postings) — what a restarted process does before its first search.
Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.search.milvus_index import TableIndex, connect


class StandInEncoder:
    """Random unit vectors of the model's size (the read-back does not depend on what they mean)."""

    model_id = "stand-in"
    dim = 384

    def __init__(self) -> None:
        self._rng = np.random.default_rng(7)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        v = self._rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    """Build once, then time the two read-backs."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=3000)
    parser.add_argument("--columns", type=int, default=38)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirror_readback_"))
    try:
        tables = [
            Table(
                schema=f"area_{i % 20}",
                name=f"entity_{i}_records",
                columns=tuple(
                    Column(name=f"measure_{j}_of_{i}", type="integer") for j in range(args.columns)
                ),
            )
            for i in range(args.tables)
        ]
        snapshot = Snapshot.build("bench", "postgresql", tables)
        path = str(work / "milvus.db")
        options = {"client_name": "bench", "env": "bench", "profile": "p", "database": "bench:p"}
        started = time.perf_counter()
        stats = TableIndex(connect(path), **options).sync(snapshot, StandInEncoder())  # type: ignore[arg-type]
        print(f"built {stats.embedded} rows in {time.perf_counter() - started:.1f} s")
        for _ in range(args.rounds):
            client = connect(path)
            index = TableIndex(client, **options)  # type: ignore[arg-type]
            live = index.live_collection()
            assert live is not None
            client.load_collection(live)
            started = time.perf_counter()
            pages = client.query_iterator(
                live,
                batch_size=1000,
                filter='kind != ""',
                output_fields=["kind", "table_key", "lexical", "dense"],
            )
            read = 0
            while batch := pages.next():
                read += len(batch)
            pages.close()
            baseline = time.perf_counter() - started
            client.close()

            client = connect(path)
            index = TableIndex(client, **options)  # type: ignore[arg-type]
            started = time.perf_counter()
            index.signals("entity records", StandInEncoder().encode(["q"])[0], 10, column_limit=10)
            service = time.perf_counter() - started
            assert index.mirrored
            client.close()
            print(
                f"baseline (1,000-row pages, {read} rows): {baseline:.1f} s; service (read back + mirror): {service:.1f} s"
            )
            print(f"RATIO service / baseline = {service / baseline:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
