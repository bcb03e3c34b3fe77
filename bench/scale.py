"""Scale bench: one profile of thousands of tables indexed, searched and rendered by the service, same run.

    python bench/synth_warehouse.py --tables 3000          # load the warehouse (database i18b_scale) first
    nice -n 10 python bench/scale.py [--url ...i18b_scale] [--queries 40] [--profile-index]

1. Starts the service (uvicorn, Milvus Lite in a private DATA_DIR, INDEX_ON_STARTUP) on the warehouse and
   waits for its table index; the index time is the service's own sync report (``last_sync.seconds``:
   documents, embedding, Milvus inserts, index build and load).
2. Reports the service's RSS (now and peak) from /proc.
3. Baseline, in this process while the service is idle: introspects the same database with the service's
   code, builds the same documents and encodes exactly their texts, in the same length-sorted batches,
   with the same model: encode-only time. Ratio index / encode-only (issue bar ≤ 1.2).
4. Search: ``POST /v1/tables/search`` (top 10) for --queries requests the service has not seen vs
   encoding --queries other requests alone in this process: p50 of each, ratio (bar ≤ 2).
5. Render: ``POST /v1/prompt-items/schema`` with ``max_tokens`` for the same requests (p50), and the pure
   budgeted rendering of their top 10 in process (p50 of column relevance + render_within), with the
   estimated tokens against MiniLM's WordPiece token count of the same texts.
``--profile-index`` also profiles an in-process sync of the same snapshot into a second Milvus Lite file
(cProfile, top functions by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import serve
from bench._tokens import wordpiece_counter
from dbmeta_app.schema import introspect
from dbmeta_app.schema.fit import estimate_tokens, render_within
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.search.columns import column_relevance
from dbmeta_app.search.documents import build_groups
from dbmeta_app.search.embedder import Embedder
from dbmeta_app.search.milvus_index import (
    _EMBED_BATCH,
    _PROGRESS_BATCH,
    DEFAULT_MIRROR_MAX_ROWS,
    TableIndex,
    connect,
)
from dbmeta_app.search.service import TableSearch

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/i18b_scale"

SUBJECTS = [
    "revenue by customer segment",
    "open support tickets past their SLA policy",
    "invoices paid late per currency",
    "shipments delayed by carrier and route",
    "campaign conversions per ad group",
    "employees by department and position with their salary",
    "sensor readings above the alert threshold per site",
    "patients with a lab result after a visit",
    "page views per visitor session and referrer",
    "products by brand with their price list",
    "refunds per payment method",
    "leads created from email sends",
    "stock moves between warehouses",
    "average review score per product category",
    "device firmware versions per gateway",
    "claims per provider and diagnosis",
    "budget versus cost per cost center",
    "experiment variants and their conversion rate",
    "training completed by employees this year",
    "quotes that became contracts per account",
]
WHEN = [
    "",
    " in March 2023",
    " on January 18, 2023",
    " in Q3 2022",
    " over the last 7 days",
    " for 2021",
    " by month",
    " per week in 2023",
]


def requests(n: int, offset: int) -> list[str]:
    """Deterministic request texts: subject × period, starting at ``offset`` (distinct sets do not overlap)."""
    combos = [s + w for w in WHEN for s in SUBJECTS]
    return combos[offset : offset + n]


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def wait_index(client: httpx.Client, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get("/readyz").json()
        last = body["checks"]["search"]["profiles"].get("default", {})
        if last.get("state") == "ready" and last.get("last_sync"):
            return dict(body)
        if last.get("state") == "failed":
            raise SystemExit(f"indexing failed: {last}")
        time.sleep(2)
    raise SystemExit(f"index not ready after {timeout} s: {last}")


def encode_only(snapshot: Snapshot, embedder: Embedder) -> tuple[float, int]:
    """Encode the index's documents exactly as the sync does (length-sorted, same batches); seconds, texts."""
    groups = build_groups(snapshot, embedder.model_id)
    texts = sorted((d.text for g in groups for d in g.documents), key=len)
    started = time.perf_counter()
    for start in range(0, len(texts), _EMBED_BATCH):
        chunk = texts[start : start + _EMBED_BATCH]
        for sub in range(0, len(chunk), _PROGRESS_BATCH):
            embedder.encode(chunk[sub : sub + _PROGRESS_BATCH])
    return time.perf_counter() - started, len(texts)


def profile_sync(snapshot: Snapshot, embedder: Embedder) -> None:
    with tempfile.TemporaryDirectory(prefix="i18b-scale-prof-") as tmp:
        client = connect(str(Path(tmp) / "milvus.db"))
        index = TableIndex(client, client_name="bench", env="bench", profile="scale", database="bench")
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        index.sync(snapshot, embedder, rebuild=True)
        profiler.disable()
        print(f"in-process sync (profiled): {time.perf_counter() - started:.1f} s")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
        client.close()


class StandInEncoder:
    """Deterministic unit vectors from a text's hash: the index's work without the model's (``--stand-in``)."""

    model_id = "bench-stand-in"
    dim = 384

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            row = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = row / np.linalg.norm(row)
        return out


def _timed_phase(method: Any, name: str, phases: dict[str, float]) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

    return run


def stand_in(args: argparse.Namespace) -> None:
    """Full scale without the model's time: index stand-in vectors, then search with real request vectors.

    Measures what does not depend on the vectors' values: introspection, the index's own work beyond
    encoding (documents, Milvus inserts, index build, load), search latency over that many rows (Milvus
    answers; above SEARCH_MIRROR_MAX_ROWS there is no in-process mirror), the budgeted render, and RSS.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(args.url)
    t0 = time.perf_counter()
    snapshot = introspect(engine, "default")
    engine.dispose()
    n_columns = sum(len(t.columns) for t in snapshot.tables.values())
    print(
        f"warehouse: {len(snapshot.tables)} tables, {n_columns} columns; introspected in {time.perf_counter() - t0:.1f} s"
    )
    encoder = StandInEncoder()
    with tempfile.TemporaryDirectory(prefix="i18b-scale-") as tmp:
        client = connect(str(Path(tmp) / "milvus.db"))
        rows = n_columns + len(snapshot.tables) + len({t.schema for t in snapshot.tables.values()})
        mirror = int(args.mirror_max_rows) if args.mirror_max_rows is not None else DEFAULT_MIRROR_MAX_ROWS
        index = TableIndex(
            client,
            client_name="bench",
            env="bench",
            profile="scale",
            database="bench",
            mirror_max_rows=mirror,
            call_timeout=args.call_timeout,
        )
        phases: dict[str, float] = {}
        for phase in ("_embed_into", "_finish"):  # time the sync's phases on this instance
            setattr(index, phase, _timed_phase(getattr(index, phase), phase, phases))
        profiler = cProfile.Profile() if args.profile_index else None
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        stats = index.sync(snapshot, encoder, rebuild=True)
        sync_s = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            print(out.getvalue())
        print(
            f"index of {stats.embedded} documents ({rows} rows; mirror {'on' if rows <= mirror else 'off'}): "
            f"sync {sync_s:.1f} s = documents and hashes {sync_s - sum(phases.values()):.1f} s + stand-in "
            f"encoding and inserts {phases['_embed_into']:.1f} s + flush, index build and load "
            f"{phases['_finish']:.1f} s",
            flush=True,
        )
        embedder = Embedder()
        embedder.encode(["warm-up"])
        search = TableSearch(snapshot, embedder, index)
        search.search("warm-up", args.top_k)
        baseline, novel = requests(args.queries, 0), requests(args.queries, args.queries)
        embed_times, search_times, hits = [], [], {}
        for base, text in zip(baseline, novel, strict=True):  # interleaved: the same machine load for both
            t0 = time.perf_counter()
            embedder.encode([base])
            embed_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hits[text] = [h.name for h in search.search(text, args.top_k)]  # embeds, then searches
            search_times.append(time.perf_counter() - t0)
        e, q = p50_ms(embed_times), p50_ms(search_times)
        print(
            f"one embedding p50 {e:.2f} ms; TableSearch.search (embed + Milvus + ranking, top {args.top_k}) p50 {q:.2f} ms"
        )
        print(f"RATIO search / embedding = {q / e:.2f}  (bar <= 2)")
        render_times = []
        for text in novel:
            keys = hits[text]
            t0 = time.perf_counter()
            render_within(snapshot, keys, args.max_tokens, column_relevance(snapshot, keys, text))
            render_times.append(time.perf_counter() - t0)
        rss, peak = rss_kb(os.getpid())
        print(f"render of the top {args.top_k} within {args.max_tokens} p50 {p50_ms(render_times):.2f} ms")
        print(
            f"this process (snapshot + model + index client): RSS {rss / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB"
        )
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=4000)
    parser.add_argument("--timeout", type=float, default=5400)
    parser.add_argument("--profile-index", action="store_true")
    parser.add_argument(
        "--call-timeout", type=float, default=120.0, help="Milvus call deadline (the service's: 120)"
    )
    parser.add_argument("--stand-in", action="store_true", help="full scale in process, stand-in vectors")
    parser.add_argument("--data-dir", help="keep the index here (a second run re-uses it: nothing to embed)")
    parser.add_argument(
        "--mirror-max-rows", help="SEARCH_MIRROR_MAX_ROWS for the service (0: every search goes to Milvus)"
    )
    args = parser.parse_args()
    if args.stand_in:
        stand_in(args)
        return
    import sqlalchemy as sa

    env = {
        "DATABASE_URL": args.url,
        "SEARCH_BACKEND": "milvus",
        "INDEX_ON_STARTUP": "true",
        "SCHEMA_CHECK_INTERVAL": "0",
    }
    if args.data_dir:
        env["DATA_DIR"] = args.data_dir
    if args.mirror_max_rows is not None:
        env["SEARCH_MIRROR_MAX_ROWS"] = args.mirror_max_rows
    with serve(**env) as server:
        client = httpx.Client(base_url=server.base, timeout=600)
        started = time.perf_counter()
        ready = wait_index(client, args.timeout)
        waited = time.perf_counter() - started
        sync = ready["checks"]["search"]["profiles"]["default"]["last_sync"]
        pid = int(ready["pid"])
        rss_indexed, peak_indexed = rss_kb(pid)
        print(f"service: index ready {waited:.1f} s after start; sync report {sync}")

        engine = sa.create_engine(args.url)
        t0 = time.perf_counter()
        snapshot = introspect(engine, "default")
        introspect_s = time.perf_counter() - t0
        engine.dispose()
        n_columns = sum(len(t.columns) for t in snapshot.tables.values())
        print(
            f"warehouse: {len(snapshot.tables)} tables, {n_columns} columns (introspected in {introspect_s:.1f} s)"
        )
        embedder = Embedder()
        # The service encodes in worker threads; so does this baseline. On an oversubscribed machine torch
        # in the main thread was 30x slower here (1.7 s vs 57 ms for one request text).
        worker = ThreadPoolExecutor(max_workers=1)
        worker.submit(embedder.encode, ["warm-up"]).result()
        if sync["embedded"]:
            encode_s, n_texts = worker.submit(encode_only, snapshot, embedder).result()
            index_s = float(sync["seconds"])
            print(
                f"encode-only, {n_texts} documents: {encode_s:.1f} s; service index (sync): {index_s:.1f} s"
            )
            print(f"RATIO index / encode-only = {index_s / encode_s:.2f}  (bar <= 1.2)")
        else:
            print("the index was already built (nothing embedded): no index ratio in this run")

        client.post(
            "/v1/prompt-items/schema", json={"user_request": "warm-up", "max_tokens": args.max_tokens}
        )
        client.post("/v1/tables/search", json={"query": "warm-up", "top_k": args.top_k})
        baseline = requests(args.queries, 0)
        novel = requests(args.queries, args.queries)
        embed_times = []
        search_times, hits = [], {}
        for base, text in zip(baseline, novel, strict=True):  # interleaved: the same machine load for both
            t0 = time.perf_counter()
            worker.submit(embedder.encode, [base]).result()
            embed_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = client.post("/v1/tables/search", json={"query": text, "top_k": args.top_k})
            search_times.append(time.perf_counter() - t0)
            body = r.json()
            assert r.status_code == 200 and body["degraded"] is False, r.text[:300]
            hits[text] = [t["name"] for t in body["tables"]]
        e, s = p50_ms(embed_times), p50_ms(search_times)
        print(
            f"one embedding (in process) p50 {e:.2f} ms; POST /v1/tables/search (new text, top {args.top_k}) p50 {s:.2f} ms"
        )
        print(f"RATIO search / embedding = {s / e:.2f}  (bar <= 2)")

        item_times, item_tokens, truncated = [], [], 0
        for text in novel:  # already embedded (cached) by the search above: retrieval + render
            t0 = time.perf_counter()
            r = client.post(
                "/v1/prompt-items/schema",
                json={"user_request": text, "top_k": args.top_k, "max_tokens": args.max_tokens},
            )
            item_times.append(time.perf_counter() - t0)
            budget = r.json()["metadata"].get("budget", {})
            item_tokens.append(int(budget.get("estimated_tokens", 0)))
            truncated += bool(budget.get("truncated"))
        rss_now, peak = rss_kb(pid)
        print(
            f"POST /v1/prompt-items/schema (top {args.top_k}, max_tokens {args.max_tokens}) p50 {p50_ms(item_times):.2f} ms; "
            f"estimated tokens max {max(item_tokens)}, {truncated}/{len(novel)} truncated"
        )
    print(
        f"service RSS: {rss_indexed / 1024:.0f} MiB after indexing, {rss_now / 1024:.0f} MiB after the requests, peak {max(peak, peak_indexed) / 1024:.0f} MiB"
    )

    render_times, estimates, real = [], [], []
    count_tokens = wordpiece_counter()
    for text in novel:
        keys = hits[text]
        t0 = time.perf_counter()
        fitted = render_within(snapshot, keys, args.max_tokens, column_relevance(snapshot, keys, text))
        render_times.append(time.perf_counter() - t0)
        estimates.append(estimate_tokens(fitted.text))
        real.append(count_tokens(fitted.text))
    full = [estimate_tokens(render_within(snapshot, hits[t], None).text) for t in novel]
    print(
        f"render of the top {args.top_k} within {args.max_tokens} (column relevance + render_within) p50 {p50_ms(render_times):.2f} ms; "
        f"unbudgeted renderings: median {statistics.median(full)} estimated tokens, max {max(full)}"
    )
    ratios = [r / e for r, e in zip(real, estimates, strict=True)]
    print(
        f"estimate vs MiniLM WordPiece on these {len(real)} renderings: WordPiece/estimate median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}; WordPiece tokens max {max(real)}"
    )
    if args.profile_index:
        profile_sync(snapshot, embedder)


if __name__ == "__main__":
    main()
