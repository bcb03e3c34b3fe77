"""A server that cannot start says why in one line naming the setting, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "uvicorn", "dbmeta_app.main:app", "--port", "{port}"],  # `make run`
        [sys.executable, "-m", "dbmeta_app", "serve", "--port", "{port}"],
    ],
    ids=["uvicorn", "dbmeta_serve"],
)
def test_invalid_settings_stop_the_server_with_one_line(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_PORT": "abc", "DATA_DIR": str(tmp_path / "data")}
    argv = [part.format(port=free_port()) for part in command]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "REDIS_PORT" in output and "Traceback" not in output, output
    assert len([line for line in output.splitlines() if "REDIS_PORT" in line]) == 1, output


def test_an_unusable_data_dir_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**os.environ, "DATA_DIR": str(blocker / "data")}
    env.pop("DATABASE_URL", None)
    env.pop("PROFILES_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "dbmeta_app", "schema"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "DATA_DIR" in done.stderr and "Traceback" not in done.stderr, done.stderr
