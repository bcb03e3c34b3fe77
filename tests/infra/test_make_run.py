"""``make run`` listens where HOST and PORT say, given on the command line or exported; 127.0.0.1:8000 else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run_command(*args: str, **env: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    environment = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")} | env
    # -n prints the recipes without running them (nor the install step they depend on)
    done = subprocess.run(
        ["make", "-n", "run", *args], cwd=REPO, env=environment, capture_output=True, text=True, check=True
    )
    (line,) = [x for x in done.stdout.splitlines() if "uvicorn" in x]
    return line


def test_make_run_defaults_to_loopback_port_8000() -> None:
    assert _run_command().endswith("--host 127.0.0.1 --port 8000")


def test_make_run_takes_host_and_port_from_the_command_line_or_the_environment() -> None:
    assert _run_command("PORT=9123", "HOST=0.0.0.0").endswith("--host 0.0.0.0 --port 9123")
    assert _run_command(PORT="9124").endswith("--host 127.0.0.1 --port 9124")
