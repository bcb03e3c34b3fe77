"""A server that must stop stops promptly, whatever state its start-up is in.

The real server runs in a subprocess (``make run``): on a port another socket holds it exits non-zero at once
(its shutdown starts while the index is still being built), and a SIGTERM during start-up ends it without
waiting for the start-up (model load, a Milvus that does not answer) to finish.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REDIS_HOST, REDIS_PORT, free_port, port_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """``uvicorn dbmeta_app.main:app`` in a subprocess, its output read line by line with a clock."""

    def __init__(self, port: int, env: dict[str, str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "dbmeta_app.main:app", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for_line(self, text: str, timeout: float) -> float:
        """When the line containing ``text`` was printed (fails if it is not within ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if text in line:
                    return at
            assert self.proc.poll() is None or self._reader.is_alive(), self.output()
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout}s:\n{self.output()}")

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def held_socket() -> Iterator[tuple[int, socket.socket]]:
    """A loopback port held by a listening socket that never accepts (a busy port, or a peer that hangs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(8)
    try:
        yield sock.getsockname()[1], sock
    finally:
        sock.close()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROFILES_FILE", "MILVUS_URI")}
    env.update({"DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "REDIS_CACHE_ENABLED": "false"})
    env.update(extra)
    return env


def test_a_busy_port_stops_the_server_at_once(tmp_path: Path, held_socket: tuple[int, socket.socket]) -> None:
    # With Redis (the default cache) the index builder's first cache read races the shutdown: the state in
    # which the auditor saw the process stay alive.
    extra = {"REDIS_CACHE_ENABLED": "true"} if port_open(REDIS_HOST, REDIS_PORT) else {}
    server = Server(held_socket[0], _env(tmp_path, REDIS_HOST=REDIS_HOST, **extra))
    try:
        shutdown = server.wait_for_line("Waiting for application shutdown", 90)
        code = server.wait_exit(60)
        took = time.monotonic() - shutdown
        assert code is not None and code != 0, server.output()
        assert "address already in use" in server.output(), server.output()
        assert took < 5, f"exited {took:.1f}s after its shutdown began:\n{server.output()}"
    finally:
        server.kill()


def test_sigterm_during_startup_ends_the_server(
    tmp_path: Path, held_socket: tuple[int, socket.socket]
) -> None:
    # A Milvus server that accepts the connection and never answers: start-up would wait for it ~10 s.
    env = _env(tmp_path, MILVUS_URI=f"http://127.0.0.1:{held_socket[0]}")
    server = Server(free_port(), env)
    try:
        server.wait_for_line("Waiting for application startup", 90)
        time.sleep(1.0)  # within start-up: loading the model, or connecting to Milvus
        server.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        # Start-up ends when the signal cancels it, not when Milvus gives up; what follows (the interpreter's
        # exit with the model loaded) is the machine's load, not the service's choice, so it is not timed.
        stopped = server.wait_for_line("dbmeta stopped during start-up (SIGTERM)", 60)
        code = server.wait_exit(60)
        assert code is not None and code != 0, server.output()
        assert "Application startup complete" not in server.output(), server.output()
        took = stopped - sent
        assert took < 5, f"start-up ended {took:.1f}s after SIGTERM:\n{server.output()}"
    finally:
        server.kill()
