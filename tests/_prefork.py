"""Start many short-lived service processes fast: a parent that has imported the third-party libraries
forks one child per run, which imports the service's own modules afresh under its own environment.

A fresh ``python -m uvicorn dbmeta_app.main:app`` spends about 2 s of CPU importing libraries (MCP,
pymilvus, SQLAlchemy, FastAPI); dozens of them, one per setting, would cost minutes. A forked child starts
from the libraries already in memory (as gunicorn's preload does) and runs uvicorn's own command line, or
the ``dbmeta`` CLI, with exactly the environment it is given: ``dbmeta_app`` is imported in the child, so
its settings, logging and app are built from that environment. What this cannot show is a library reading
the environment when it is imported: runs in fresh interpreters (the tests' "together" runs) show that.

Run as ``python tests/_prefork.py MODULES_FILE``: one JSON request per line on stdin
(``{"argv": [...], "env": {...}, "cwd": ..., "out": ..., "err": ..., "status": ...}``), one JSON answer per
line (``{"pid": …}``). The child's output goes to ``out`` and ``err``; its exit status is written to ``status``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REFERENCE = "import sys, dbmeta_app.main, dbmeta_app.cli, uvicorn.main; print('\\n'.join(sys.modules))"


def third_party_modules(env: dict[str, str], cwd: Path) -> list[str]:
    """The modules a fresh server or CLI process imports, the service's own excepted."""
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return [m for m in done.stdout.split() if not m.startswith(("dbmeta_app", "__main__"))]


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn installs its own when it runs
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, path in ((1, request["out"]), (2, request["err"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        try:
            if sys.argv[0] == "uvicorn":
                import uvicorn.main

                uvicorn.main.main(args=sys.argv[1:])
            else:
                from dbmeta_app.cli import main

                main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        with contextlib.suppress(Exception):
            Path(request["status"]).write_text(str(code))
        os._exit(code)


def serve(modules: list[str]) -> None:
    """The parent: import the modules, then fork one child per request read on stdin."""
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)


class Preforker:
    """The test side: start the parent once, then start runs through it."""

    def __init__(self, env: dict[str, str], cwd: Path, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        modules = work / "modules.json"
        modules.write_text(json.dumps(third_party_modules(env, cwd)))
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(modules)],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        assert json.loads(self._proc.stdout.readline()) == {"ready": True}
        self._lock = threading.Lock()  # one request and its answer at a time on the pipes

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, work: Path) -> Run:
        """Fork a run of ``argv`` (``["uvicorn", ...]`` or ``["dbmeta", ...]``) with exactly this environment."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        work.mkdir(parents=True, exist_ok=True)
        out, err, status = work / "stdout", work / "stderr", work / "status"
        status.unlink(missing_ok=True)
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(cwd),
            "out": str(out),
            "err": str(err),
            "status": str(status),
        }
        with self._lock:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            pid = int(json.loads(self._proc.stdout.readline())["pid"])
        return Run(pid, out, err, status)

    def close(self) -> None:
        """End the parent (it exits when its stdin closes; terminated, then killed, if it does not)."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        for stop in (None, self._proc.terminate, self._proc.kill):
            if stop is not None:
                stop()
            try:
                self._proc.wait(5)
                return
            except subprocess.TimeoutExpired:
                continue


class Run:
    """A forked run: its pid, its output files, its exit status once it ended."""

    def __init__(self, pid: int, out: Path, err: Path, status: Path) -> None:
        self.pid, self.out, self.err, self.status_file = pid, out, err, status

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def returncode(self) -> int | None:
        """The exit status, or None while it runs."""
        if self.status_file.exists() and self.status_file.read_text():
            return int(self.status_file.read_text())
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return -1  # gone without writing its status (killed)
        return None

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.returncode()) is None:
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"pid {self.pid} still running after {timeout} s:\n{self.output()[-2000:]}"
                )
            time.sleep(0.02)
        return code

    def stop(self) -> None:
        """Terminate it (SIGTERM, then SIGKILL) and wait until it is gone."""
        for sig, patience in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + patience
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.02)


if __name__ == "__main__":
    serve(json.loads(Path(sys.argv[1]).read_text()))
