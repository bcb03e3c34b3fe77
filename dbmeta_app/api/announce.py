"""Publish where this process serves HTTP, so that the CLI on the same DATA_DIR finds the server.

The app does not know its own address: uvicorn (or gunicorn, or ``dbmeta serve``) binds the socket after
the app's start-up, and the workers of ``--workers N`` inherit it. So, once started, the app looks at the
TCP sockets its own process listens on, asks each for ``/healthz`` and keeps the one that answers as this
deployment (the ``X-Dbmeta-Anchor`` header names the local index it belongs to).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import stat
import time
from pathlib import Path

import httpx

from dbmeta_app.runtime import Runtime

log = logging.getLogger(__name__)

ANCHOR_HEADER = "x-dbmeta-anchor"
#: Seconds the app keeps looking for its socket after start-up (a server binds within a second or two).
ANNOUNCE_WITHIN = 60.0


def anchor_digest(path: Path) -> str:
    """A short, non-revealing name of a local index, sent in the ``X-Dbmeta-Anchor`` header."""
    return hashlib.sha256(str(path).encode()).hexdigest()[:16]


def listening_addresses() -> list[tuple[str, int]]:
    """The (host, port) of every TCP socket this process listens on (empty where that cannot be known)."""
    fd_dir = Path("/proc/self/fd") if Path("/proc/self/fd").is_dir() else Path("/dev/fd")
    accept_conn = getattr(socket, "SO_ACCEPTCONN", None)
    if accept_conn is None:
        return []
    try:
        fds = [int(name) for name in os.listdir(fd_dir)]
    except (OSError, ValueError):
        return []
    found: list[tuple[str, int]] = []
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                    continue
                if not sock.getsockopt(socket.SOL_SOCKET, accept_conn):
                    continue
                host, port = sock.getsockname()[:2]
            except OSError:
                continue
        found.append((str(host), int(port)))
    return found


def http_url(host: str, port: int) -> str:
    """The URL a local client uses for a socket bound to host:port (a wildcard means loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - a bound wildcard is reached on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def announce_http_url(runtime: Runtime) -> None:
    """Find this process's HTTP address and publish it in the owner record (background task)."""
    if runtime.anchor is None:
        return
    digest = anchor_digest(runtime.anchor.path)
    deadline = time.monotonic() + ANNOUNCE_WITHIN
    delay = 0.05
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            for host, port in await asyncio.to_thread(listening_addresses):
                url = http_url(host, port)
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(f"{url}/healthz")
                    if answer.status_code == 200 and answer.headers.get(ANCHOR_HEADER) == digest:
                        runtime.http_url = url
                        runtime.anchor.publish(url=url)
                        log.info("Serving at %s; the CLI on this DATA_DIR sends its requests here", url)
                        return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
