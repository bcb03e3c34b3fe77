"""scripts/install.sh, which `make run` and `make test` call each time: it installs only when something changed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAMP = REPO / ".tools" / "installed-dev"
# pip refuses to install outside a virtualenv with this set: a run that calls pip fails at once, installing nothing
NO_PIP = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "1"}


def _install(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/install.sh", "dev"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture
def installed() -> Iterator[str]:
    """This checkout installed (as `make test` left it), its stamp restored afterwards."""
    done = _install(dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    stamp = STAMP.read_text()
    yield stamp
    STAMP.write_text(stamp)


def test_a_second_install_with_nothing_changed_calls_no_pip(installed: str) -> None:
    again = _install(NO_PIP)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to install" in again.stdout
    assert STAMP.read_text() == installed


def test_a_changed_pyproject_or_interpreter_installs_again(installed: str) -> None:
    STAMP.write_text("a fingerprint of another pyproject.toml\n")
    again = _install(NO_PIP)
    assert again.returncode != 0  # pip was called (and refused here)
    assert "virtualenv" in again.stderr.lower(), again.stderr[-2000:]
