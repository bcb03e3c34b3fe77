"""A real Milvus standalone server for tests and benches: started on free ports, restarted, stopped.

The ``milvus`` package (2.3.x, a dev dependency) ships the standalone server binary (embedded etcd,
RocksMQ and local storage: one process). This module runs it under our control rather than through the
package's ``MilvusServer``, which changes the process' working directory, picks ports by scanning up from
the defaults, and leaves the embedded etcd on its fixed ports 2379/2380 (two servers on one machine
collide there). Here:

- the binaries are unpacked once per machine into a cache directory (~6 s; every later start skips it);
- every port, the embedded etcd's included, comes from ``tests.conftest.free_port()``, and every server
  component advertises 127.0.0.1 (by default they talk to each other over the machine's first non-loopback
  address);
- data, configuration and logs live under one directory (a pytest temp dir), kept across ``restart()``;
- the server runs in its own process group, stopped with SIGTERM then SIGKILL, and ``processes()`` lists
  what is left of the group (nothing, after ``stop()``). Started from the main thread, it is also killed
  by the kernel if this process dies without stopping it (``PR_SET_PDEATHSIG``, through util-linux's setpriv).

Use the ``milvus_server`` fixture (session scope, a ``MilvusServer``), ``milvus_uri`` (its address),
``milvus_server_auth`` (authorization on: token ``root:Milvus``), or ``running_milvus()`` in a bench.
A test that needs one is skipped, with the reason, where the server cannot start.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port

#: The built-in superuser and its default password, as a token (``user:password``).
ROOT_TOKEN = "root:Milvus"
#: Seconds a start may take until the server answers (the machine is shared and often loaded).
START_TIMEOUT = 180.0
#: Seconds a graceful stop may take before the server is killed. Milvus 2.3 exits in about a second when
#: no collection is loaded, and never (measured: still running after 60 s) once one is: its data is
#: already durable then (etcd, RocksMQ, local storage), and a restart after SIGKILL finds every collection.
STOP_GRACE = 5.0
#: The components whose ``ip`` is what the others dial (left empty, they pick the first non-loopback address).
#: Seconds a component's etcd session outlives it. After a crash, a restarted server reloads its collections
#: only once the dead sessions expired: 30 s by default (measured: still "Loading" 20 s after the restart;
#: with 5 s, searchable again 12 s after the kill). 10 s keeps restarts short without risking live sessions
#: expiring on this loaded machine.
SESSION_TTL = 10
_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


class MilvusUnavailable(RuntimeError):
    """The Milvus server package is not installed here, or the server did not start."""


def _package() -> Any:
    try:
        import milvus
    except ImportError as exc:
        raise MilvusUnavailable(
            f"the milvus package (Milvus standalone server) is not installed: {exc}"
        ) from exc
    return milvus


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dbmeta-tests"


def binaries() -> Path:
    """Unpack the server binaries of the installed milvus package once; return their directory."""
    milvus = _package()
    packed = Path(milvus.__file__).parent / "data" / "bin"
    if not packed.is_dir():
        raise MilvusUnavailable(f"the milvus package has no server binaries at {packed}")
    target = _cache_root() / f"milvus-{milvus.__version__}" / "bin"
    if (target / "milvus").exists():
        return target
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    # Unpacked aside and renamed into place: two test processes starting at once never see half a binary.
    scratch = Path(tempfile.mkdtemp(prefix="milvus-unpack-", dir=target.parent.parent))
    try:
        for archive in packed.glob("*.lzma"):
            out = scratch / archive.name.removesuffix(".lzma")
            with lzma.open(archive) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            out.chmod(0o755)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            scratch.rename(target)
        except OSError:
            if not (target / "milvus").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _die_with_parent() -> list[str]:
    """A command prefix that has the kernel kill the server when the thread that started it exits.

    util-linux's setpriv sets PR_SET_PDEATHSIG and execs the server: unlike a ``preexec_fn``, nothing runs
    in Python between fork and exec, which can deadlock a process that has other threads (gRPC's, the app's).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class MilvusServer:
    """One Milvus standalone server with its data under ``base_dir``: ``start``, ``restart``, ``stop``."""

    def __init__(self, base_dir: Path, *, auth: bool = False, session_ttl: int = SESSION_TTL) -> None:
        self.base_dir = base_dir
        self.auth = auth
        self.session_ttl = session_ttl
        self.port = free_port()
        self.metrics_port = free_port()
        self._ports = {
            "etcd_port": free_port(),
            "proxy_port": self.port,
            "proxy_internal_port": free_port(),
            "root_coord_port": free_port(),
            "query_coord_port": free_port(),
            "query_node_port": free_port(),
            "index_coord_port": free_port(),
            "index_node_port": free_port(),
            "data_coord_port": free_port(),
            "data_node_port": free_port(),
        }
        self._etcd_peer_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._configured = False
        # The group id outlives the Popen object: ``processes()`` after ``stop()`` checks what is left of it.
        self._group: int | None = None
        self.version: str | None = None
        #: Seconds the last start took until the server answered ``get_server_version``.
        self.start_seconds: float | None = None

    @property
    def uri(self) -> str:
        """The address a client dials (``MILVUS_URI``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str | None:
        """The token a client must send (``MILVUS_TOKEN``): the superuser's with authorization on."""
        return ROOT_TOKEN if self.auth else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_file(self) -> Path:
        return self.base_dir / "logs" / "milvus-stdout.log"

    def _configure(self) -> None:
        milvus = _package()
        config = milvus.MilvusServerConfig(data_dir=str(self.base_dir), **self._ports)
        config.set("authorization_enabled", self.auth)
        config.set("etcd_log_level", "warn")
        try:
            config.resolve()  # renders the package's template into <base_dir>/configs/milvus.yaml
        except (RuntimeError, OSError) as exc:  # a port taken meanwhile, an unwritable directory
            raise MilvusUnavailable(f"cannot configure the Milvus server: {exc}") from exc
        path = self.base_dir / "configs" / "milvus.yaml"
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
        for component in _COMPONENTS:
            settings[component]["ip"] = "127.0.0.1"
        etcd_config = self.base_dir / "configs" / "embedEtcd.yaml"
        client, peer = (
            f"http://127.0.0.1:{self._ports['etcd_port']}",
            f"http://127.0.0.1:{self._etcd_peer_port}",
        )
        etcd_config.write_text(
            yaml.safe_dump(
                {
                    "listen-client-urls": client,
                    "advertise-client-urls": client,
                    "listen-peer-urls": peer,
                    "initial-advertise-peer-urls": peer,
                    "initial-cluster": f"default={peer}",
                }
            ),
            encoding="utf-8",
        )
        settings["etcd"]["endpoints"] = f"127.0.0.1:{self._ports['etcd_port']}"
        settings["etcd"]["config"] = {"path": str(etcd_config)}
        settings["log"]["level"] = "warn"
        settings["common"]["session"]["ttl"] = self.session_ttl
        # A latency only, for the suite's length: a flush waits out the segment assignments (2 s by default).
        # Two syncs of a small collection flushed in 6.0 s with the default, 2.5 s with this.
        settings["dataCoord"]["segment"]["assignmentExpiration"] = 200
        path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        self._configured = True

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until it answers; raise MilvusUnavailable with its log when it does not."""
        if self._proc is not None:
            raise RuntimeError("the Milvus server is already running")
        bin_dir = binaries()
        if not self._configured:
            self._configure()
        env = {
            **os.environ,
            "DEPLOY_MODE": "STANDALONE",
            "METRICS_PORT": str(self.metrics_port),
            "MILVUS_RUN_DIR": str(self.base_dir / "run"),
            "MILVUSCONF": str(self.base_dir / "configs"),
            "LD_LIBRARY_PATH": f"{bin_dir}:{os.environ.get('LD_LIBRARY_PATH', '')}",
        }
        # Started from another thread, the server would die with that thread: no parent-death signal then.
        prefix = _die_with_parent() if threading.current_thread() is threading.main_thread() else []
        self._log = self.log_file.open("ab")
        started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                [*prefix, str(bin_dir / "milvus"), "run", "standalone"],
                cwd=self.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals all of it
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise MilvusUnavailable(f"cannot run the Milvus server binary: {exc}") from exc
        self._group = self._proc.pid
        try:
            self.version = self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self, deadline: float) -> str:
        healthz = f"http://127.0.0.1:{self.metrics_port}/healthz"
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc is not None else None
                raise MilvusUnavailable(
                    f"the Milvus server exited with {code} while starting:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(healthz, timeout=2) as answer:
                    healthy = b"OK" in answer.read()
            except (OSError, urllib.error.URLError) as exc:
                healthy, last = False, f"healthz: {exc}"
            if healthy:
                try:
                    return self.server_version(timeout=5)
                except Exception as exc:
                    last = f"get_server_version: {exc}"
            time.sleep(0.2)
        raise MilvusUnavailable(
            f"the Milvus server did not answer within the start timeout ({last}):\n{self.log_tail()}"
        )

    def client(self, timeout: float = 30.0, token: str | None = None) -> Any:
        """A pymilvus client on this server (with the superuser's token when authorization is on)."""
        from pymilvus import MilvusClient

        return MilvusClient(
            uri=self.uri, token=token if token is not None else (self.token or ""), timeout=timeout
        )

    def server_version(self, timeout: float = 10.0) -> str:
        """Ask the server its version (``get_server_version``)."""
        client = self.client(timeout=timeout)
        try:
            return str(client.get_server_version(timeout=timeout))
        finally:
            client.close()

    def processes(self) -> list[int]:
        """The pids still alive in the server's process group (the group id is the first server's pid)."""
        group = self._group
        if group is None:
            return []
        alive: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) == group and fields[0] != "Z":
                alive.append(int(entry.name))
        return alive

    def rss_bytes(self) -> int:
        """Resident memory of the server's processes, in bytes."""
        total = 0
        for pid in self.processes():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``grace`` seconds; 0: kill at once, a crash)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                proc.wait(grace if grace > 0 else 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            # Anything of the group that outlived the server (none is expected) is killed too.
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(0.05)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, *, crash: bool = False, down: float = 0.0, timeout: float = START_TIMEOUT) -> None:
        """Stop (``crash``: SIGKILL at once), stay down ``down`` seconds, start on the same ports and data."""
        self.stop(0.0 if crash else STOP_GRACE)
        time.sleep(down)
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output (why it did not start)."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> MilvusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_milvus(base_dir: Path | None = None, *, auth: bool = False) -> Iterator[MilvusServer]:
    """Run one Milvus server for the ``with`` block (benches); its data under ``base_dir`` or a temp dir."""
    owned = base_dir is None
    root = Path(tempfile.mkdtemp(prefix="dbmeta-milvus-")) if base_dir is None else base_dir
    server = MilvusServer(root, auth=auth)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _session_server(factory: pytest.TempPathFactory, *, auth: bool) -> Iterator[MilvusServer]:
    server = MilvusServer(factory.mktemp(f"milvus-{uuid.uuid4().hex[:6]}"), auth=auth)
    try:
        server.start()
    except MilvusUnavailable as exc:
        pytest.skip(f"no Milvus server here: {exc}")
    try:
        yield server
    finally:
        # the session's data is thrown away: no graceful stop to wait for (it took ~7 s each)
        server.stop(0.0)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """One Milvus standalone server for the session (authorization off)."""
    yield from _session_server(tmp_path_factory, auth=False)


@pytest.fixture(scope="session")
def milvus_server_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """One Milvus standalone server for the session with authorization on (token ``root:Milvus``)."""
    yield from _session_server(tmp_path_factory, auth=True)


@pytest.fixture(scope="session")
def milvus_uri(milvus_server: MilvusServer) -> str:
    """The address of the session's Milvus server (``MILVUS_URI``)."""
    return milvus_server.uri
