"""Fault-injection harness: the app under uvicorn, private Redis and PostgreSQL, a concurrent load generator.

Shared by the reliability tests (``tests/reliability``) and the soak benchmark. Everything here runs on
127.0.0.1 with private ports and data directories; nothing touches the machine's shared services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)

# The developer's environment must not leak into a private server's settings.
_LEAKY_VARS = (
    "DATABASE_URL",
    "PROFILES_FILE",
    "REDIS_URL",
    "DEFAULT_PROFILE",
    "CLIENT",
    "ENV",
    "ADMIN_TOKEN",
)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Poll predicate until true; return the seconds it took, or raise TimeoutError naming what."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        time.sleep(every)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------- app


@dataclass
class AppServer:
    """The real app under uvicorn in a subprocess, with a private DATA_DIR and its log in a file."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dbmeta-faults-")))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start uvicorn and wait until /healthz answers."""
        env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARS}
        env.update(DATA_DIR=str(self.data_dir / "data"), LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1")
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "uvicorn", "dbmeta_app.main:app", "--host", "127.0.0.1"),
                    *("--port", str(self.port), "--log-level", "warning", "--no-access-log"),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start-up:\n{self.log()}")
            try:
                return httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, "the server's /healthz", every=0.1)

    def log(self) -> str:
        """Return the server's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        """Return the server process's resident set size (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextlib.contextmanager
def app_server(**env: str) -> Iterator[AppServer]:
    """Run the app with the given environment for the duration of the block."""
    server = AppServer(env=dict(env))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum the samples of a Prometheus metric whose labels include the given ones (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})?\s+(\S+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


# ------------------------------------------------------------------------------------------- redis


class RedisServer:
    """A private redis-server on a free port that a test can kill, freeze, thaw and restart."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dbmeta-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server on its port, empty, and wait until it accepts connections."""
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--enable-debug-command", "local"]  # DEBUG SLEEP slows it down on purpose
        self.proc = subprocess.Popen(
            [self.binary, *args, "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), 10, "redis-server")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, every connection reset)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open, calls hang until they time out."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> Any:
        """Send one command on a fresh connection and return its decoded reply."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.thaw()
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -------------------------------------------------------------------------------------- postgresql


def pg_tools_available() -> str | None:
    """Return why a private PostgreSQL cluster cannot be made here, or None when it can."""
    if not PG_BIN_DIRS or not (PG_BIN_DIRS[0] / "initdb").exists():
        return "initdb is not installed (/usr/lib/postgresql/*/bin)"
    if shutil.which("runuser") is None:
        return "runuser is not available"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no 'postgres' OS user to run initdb as"
    if os.geteuid() != 0:
        return "runuser needs root to run initdb as 'postgres'"
    return None


class PgCluster:
    """A private PostgreSQL cluster in a temporary directory, on a free port, owned by 'postgres'."""

    def __init__(self) -> None:
        self.bin = PG_BIN_DIRS[0]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dbmeta-pg-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            cwd=self.dir,
        )

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self, *, memory_limit_mb: int | None = None) -> None:
        """Start the cluster and wait until it accepts connections.

        ``memory_limit_mb`` caps every server process's address space (``ulimit -v``, inherited by each
        backend), so a runaway backend fails with "out of memory" instead of exhausting the machine.
        """
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = str(self.bin / "pg_ctl")
        command = [pg_ctl, "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-o", opts, "-w", "start"]
        if memory_limit_mb is None:
            self._run(*command)
            return
        opts += " -c shared_buffers=16MB"  # the cap counts shared memory too
        command[command.index("-o") + 1] = opts
        quoted = " ".join(shlex.quote(part) for part in command)
        self._run("sh", "-c", f"ulimit -v {int(memory_limit_mb) * 1024} && exec {quoted}")

    def stop(self) -> None:
        """Stop the cluster at once (like a crash: every connection dropped, no checkpoint)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        if self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# -------------------------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Call:
    """One kind of request of a load mix and the check its answer must pass (a message when it fails)."""

    name: str
    method: str
    path: str
    body: Callable[[int], Mapping[str, Any]] | None = None
    check: Callable[[httpx.Response], str | None] = lambda r: None if r.status_code == 200 else "status"


@dataclass(frozen=True)
class Sample:
    call: str
    started: float  # monotonic seconds
    latency: float
    status: int  # 0 on a transport error
    problem: str | None


@dataclass
class LoadResult:
    samples: list[Sample]

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.problem is not None]

    def latencies(
        self, call: str | None = None, since: float = 0.0, until: float = float("inf")
    ) -> list[float]:
        return sorted(
            s.latency for s in self.samples if (call is None or s.call == call) and since <= s.started < until
        )

    def percentile(
        self, q: float, call: str | None = None, since: float = 0.0, until: float = float("inf")
    ) -> float:
        values = self.latencies(call, since, until)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]

    def summary(self) -> str:
        by_call: dict[str, int] = {}
        for s in self.samples:
            by_call[s.call] = by_call.get(s.call, 0) + 1
        shown = ", ".join(f"{k}={v}" for k, v in sorted(by_call.items()))
        return (
            f"{len(self.samples)} requests ({shown}), {len(self.failures)} failed, "
            f"p50 {self.percentile(50) * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms, "
            f"max {max((s.latency for s in self.samples), default=0) * 1000:.1f} ms"
        )


class Load:
    """N concurrent workers sending a mix of calls round-robin, in a background thread, until stopped."""

    def __init__(self, base: str, calls: Sequence[Call], concurrency: int, timeout: float = 30.0) -> None:
        self.base = base
        self.calls = list(calls)
        self.concurrency = concurrency
        self.timeout = timeout
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter = 0

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 10)
            self._thread = None
        return LoadResult(list(self.samples))

    @property
    def result(self) -> LoadResult:
        return LoadResult(list(self.samples))

    async def _main(self) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(self.concurrency)))

    async def _worker(self, index: int) -> None:
        # One keep-alive connection per worker, spoken to directly: httpx's pool costs more CPU than the
        # server it measures once dozens of connections share it.
        conn: RawConnection | None = None
        turn = index
        while not self._stop.is_set():
            call = self.calls[turn % len(self.calls)]
            turn += 1
            self._counter += 1
            body = call.body(self._counter) if call.body is not None else None
            started = time.monotonic()
            problem: str | None
            try:
                if conn is None:
                    conn = await RawConnection.open(self.base)
                response = await asyncio.wait_for(conn.request(call.method, call.path, body), self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                problem, status = f"transport: {type(exc).__name__}: {exc}", 0
                if conn is not None:
                    conn.close()
                conn = None
            else:
                status = response.status_code
                try:
                    problem = call.check(response)
                except Exception as exc:  # a malformed answer is a failed request, not a crashed worker
                    problem = f"unexpected answer: {type(exc).__name__}: {exc}; {response.text[:200]}"
            self.samples.append(Sample(call.name, started, time.monotonic() - started, status, problem))
        if conn is not None:
            conn.close()


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (Content-Length bodies only, as uvicorn sends them)."""

    def __init__(self, host: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.host = host
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base: str) -> RawConnection:
        url = httpx.URL(base)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(f"{url.host}:{url.port}", reader, writer)

    async def request(self, method: str, path: str, body: Mapping[str, Any] | None) -> httpx.Response:
        """Send one request and read its answer."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        await self.writer.drain()
        status_line, *header_lines = (
            (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        )
        headers = [tuple(line.split(":", 1)) for line in header_lines if ":" in line]
        length = next((int(v) for k, v in headers if k.strip().lower() == "content-length"), None)
        if length is None:
            raise ValueError(f"no Content-Length in the answer ({status_line})")
        content = await self.reader.readexactly(length)
        return httpx.Response(
            int(status_line.split()[1]), headers=[(k.strip(), v.strip()) for k, v in headers], content=content
        )

    def close(self) -> None:
        self.writer.close()
