"""Milvus server vs Milvus Lite: the same top-10 on the bundled sample, and no failed request through a restart.

    python bench/milvus_parity.py [--mirror-max-rows 0] [--clients 8] [--down 3]

Runs the service (uvicorn, the bundled sample warehouse, the real model) twice: on a Milvus Lite file, then on a
real Milvus 2.3 standalone server (tests/milvus_server.py). Each indexes the sample, then answers 20 requests
(top_k 10); per request it prints whether both answered the same ten tables in the same order (and, if not,
whether the same set). ``--mirror-max-rows 0`` (the default here) sends every search to Milvus: Lite ranks BM25
with its own full-text search, the 2.3 server (no BM25 function) in process; with the mirror both rank in process.

Then, on the server's service: ``--clients`` concurrent clients search (a new text each time, so nothing is
answered from memory) while the Milvus server is killed, stays down ``--down`` seconds and starts again. Prints
total requests, failed ones (non-2xx or a connection error: must be 0), degraded answers, and how long after the
restart the first non-degraded answer came.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import Server, serve
from tests.milvus_server import running_milvus

QUERIES = [
    "average salary per department",
    "monthly payroll totals by employee",
    "exchange rate of euro to dollar on a date",
    "which currencies do we price in",
    "stock level of each product per warehouse",
    "suppliers and the purchase orders we sent them",
    "lines of a purchase order with quantities",
    "products in each category",
    "customers who placed more than five orders",
    "revenue per order item",
    "unpaid invoices and their customers",
    "payments received last month",
    "campaign response rate by campaign",
    "which customers responded to the spring campaign",
    "open support tickets and their events",
    "time to resolve a ticket",
    "employees hired in 2023 and their department",
    "salary history of an employee",
    "best selling products by revenue",
    "orders shipped from each warehouse",
]


def wait_ready(server: Server, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    search: dict[str, Any] = {}
    while time.monotonic() < deadline:
        search = httpx.get(f"{server.base}/readyz", timeout=30).json()["checks"]["search"]
        if search["ready"]:
            return search
        time.sleep(0.5)
    raise SystemExit(f"search never became ready: {search}")


def top10(server: Server) -> list[tuple[list[str], str, str]]:
    out = []
    for query in QUERIES:
        body = httpx.post(
            f"{server.base}/v1/tables/search", json={"query": query, "top_k": 10}, timeout=60
        ).json()
        assert not body["degraded"], body
        out.append(([t["name"] for t in body["tables"]], body["dense"], body["lexical"]))
    return out


def restart_under_load(server: Server, milvus: Any, clients: int, down: float) -> None:
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    restarted_at: list[float] = []
    first_ok_after: list[float] = []

    def client(worker: int) -> None:
        n = 0
        with httpx.Client(base_url=server.base, timeout=60) as http:
            while not stop.is_set():
                n += 1
                try:
                    r = http.post(
                        "/v1/tables/search", json={"query": f"tickets of agent {worker} {n}", "top_k": 10}
                    )
                    outcome = (
                        "failed" if r.status_code >= 300 else ("degraded" if r.json()["degraded"] else "ok")
                    )
                except httpx.HTTPError:
                    outcome = "failed"
                with lock:
                    counts["total"] += 1
                    counts[outcome] += 1
                    if outcome == "ok" and restarted_at and not first_ok_after:
                        first_ok_after.append(time.monotonic() - restarted_at[0])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(3)
    before = dict(counts)
    killed = time.monotonic()
    milvus.stop(0.0)  # a crash: SIGKILL
    time.sleep(down)
    milvus.start()
    restarted_at.append(time.monotonic())
    print(
        f"Milvus killed, down {down:.0f} s, restarted in {milvus.start_seconds:.1f} s "
        f"(requests before the kill: {before.get('total', 0)})"
    )
    deadline = time.monotonic() + 180
    while not first_ok_after and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # and a little steady traffic after the recovery
    stop.set()
    for t in threads:
        t.join(120)
    ready = httpx.get(f"{server.base}/readyz", timeout=30).json()
    print(
        f"restart under load: {clients} clients, total {counts['total']} requests, failed {counts['failed']}, "
        f"degraded {counts['degraded']}, ok {counts['ok']}; outage seen for "
        f"{restarted_at[0] - killed:.1f} s until the server was up, first non-degraded answer "
        f"{first_ok_after[0] if first_ok_after else float('nan'):.1f} s after that; /readyz ready={ready['ready']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirror-max-rows", type=int, default=0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--down", type=float, default=3.0)
    args = parser.parse_args()
    env = {
        "SEARCH_BACKEND": "milvus",
        "SEARCH_MIRROR_MAX_ROWS": str(args.mirror_max_rows),
        "SCHEMA_CHECK_INTERVAL": "0",
        "HF_HUB_OFFLINE": "1",
    }
    with serve(**env) as lite_app:
        lite_state = wait_ready(lite_app)
        lite = top10(lite_app)
    with running_milvus() as milvus, serve(**env, MILVUS_URI=milvus.uri) as server_app:
        state = wait_ready(server_app)
        print(f"Lite: {lite_state['milvus_server']} | server: {state['milvus_server']}")
        print(f"search paths: Lite {lite[0][1:]} (dense, lexical) | server ", end="")
        remote = top10(server_app)
        print(remote[0][1:])
        same_order = same_set = 0
        for query, (a, _, _), (b, _, _) in zip(QUERIES, lite, remote, strict=True):
            same_order += a == b
            same_set += set(a) == set(b)
            verdict = (
                "same top-10" if a == b else ("same set, order differs" if set(a) == set(b) else "DIFFER")
            )
            print(f"  {verdict:24} {query}" + ("" if a == b else f"\n      lite   {a}\n      server {b}"))
        print(
            f"parity: {same_order}/{len(QUERIES)} same top-10 in the same order, {same_set}/{len(QUERIES)} same set"
        )
        restart_under_load(server_app, milvus, args.clients, args.down)


if __name__ == "__main__":
    main()
