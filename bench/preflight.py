"""A cached preflight answer vs a cached schema answer of similar size, same server, same run.

    python bench/preflight.py [--seconds 6] [--rounds 3] [--connections 16]

Needs wrk. On the sample warehouse: preflights a 4-table join once (so it is cached), picks the schema
request (an explicit `tables` list) whose cached answer is closest in size, then alternates wrk runs on both
and prints the mean latency of each and their ratio (issue bar: preflight ≤ 1.2× schema).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median
from bench._server import serve

SQL = (
    "SELECT c.company_name, p.name, sum(oi.quantity) AS units "
    "FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
    "JOIN order_items oi ON oi.order_id = o.order_id JOIN products p ON p.product_id = oi.product_id "
    "WHERE o.order_date >= '2024-01-01' GROUP BY c.company_name, p.name ORDER BY units DESC LIMIT 20"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with serve() as server:
        pf_body = json.dumps({"sql": SQL})
        httpx.post(f"{server.base}/v1/preflight", json={"sql": SQL})
        cached = httpx.post(f"{server.base}/v1/preflight", json={"sql": SQL})
        assert cached.json()["cached"] is True and cached.json()["ok"] is True
        full = httpx.post(f"{server.base}/v1/prompt-items/schema", json={}).json()
        tables = full["metadata"]["tables"]
        best: tuple[int, str] | None = None
        for n in range(1, len(tables) + 1):
            body = json.dumps({"tables": tables[:n]})
            size = len(httpx.post(f"{server.base}/v1/prompt-items/schema", json=json.loads(body)).content)
            if best is None or abs(size - len(cached.content)) < best[0]:
                best = (abs(size - len(cached.content)), body)
        assert best is not None
        schema_body = best[1]
        schema_size = len(
            httpx.post(f"{server.base}/v1/prompt-items/schema", json=json.loads(schema_body)).content
        )
        print(f"cached preflight answer: {len(cached.content)} bytes; schema answer: {schema_size} bytes")
        server.wrk("/v1/preflight", pf_body, 2, args.connections)
        server.wrk("/v1/prompt-items/schema", schema_body, 2, args.connections)
        pf: list[float] = []
        sc: list[float] = []
        for _ in range(args.rounds):
            sc.append(server.wrk("/v1/prompt-items/schema", schema_body, args.seconds, args.connections)[1])
            pf.append(server.wrk("/v1/preflight", pf_body, args.seconds, args.connections)[1])
    p, s = median(pf), median(sc)
    print(f"cached schema answer:    mean latency {', '.join(f'{x:.2f}' for x in sc)} ms; median {s:.2f} ms")
    print(f"cached preflight answer: mean latency {', '.join(f'{x:.2f}' for x in pf)} ms; median {p:.2f} ms")
    print(f"ratio preflight / schema = {p / s:.3f}  (bar: <= 1.2)")


if __name__ == "__main__":
    main()
