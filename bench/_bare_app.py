"""The real app plus a bare endpoint returning the same bytes from memory (bench only).

The bench fetches the real endpoint's cache-hit answer, writes it to ``BENCH_BODY_FILE``; the bare route
reads that file once and answers those bytes from memory ever after.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import Response

from dbmeta_app.main import create_app

app = create_app()
_body: dict[str, bytes] = {}


@app.post("/bench/bare")
async def bare() -> Response:
    body = _body.get("v")
    if body is None:
        body = _body["v"] = Path(os.environ["BENCH_BODY_FILE"]).read_bytes()
    return Response(body, media_type="application/json")
