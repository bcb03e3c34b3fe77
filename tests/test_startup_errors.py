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


def _profiles(tmp_path: Path, key: str, name: str, text: str) -> dict[str, str]:
    (tmp_path / name).write_text(text)
    (tmp_path / "p.yml").write_text(
        f"profiles:\n  m:\n    database_url: sqlite:///{tmp_path / 'm.db'}\n    {key}: {name}\n"
    )
    return {"PROFILES_FILE": str(tmp_path / "p.yml"), "DEFAULT_PROFILE": "m", "SEARCH_BACKEND": "keyword"}


#: Configuration only found while the runtime opens (the model, the content of a file a profile names).
_RUNTIME_CASES = {
    "embedding_model": (
        lambda tmp: {"EMBEDDING_MODEL": "/nonexistent", "SEARCH_BACKEND": "milvus"},
        "EMBEDDING_MODEL",
    ),
    "descriptions_file": (
        lambda tmp: _profiles(tmp, "descriptions_file", "desc.yml", "tables:\n  - sales.orders\n"),
        "descriptions file",
    ),
    "examples_file": (
        lambda tmp: _profiles(tmp, "examples_file", "bad.yml", "examples: [ {id: 1, request: x\n"),
        "examples file",
    ),
    "instructions_file": (
        lambda tmp: _profiles(tmp, "instructions_file", "ins.yml", "- use LIMIT\n"),
        "instructions file",
    ),
}


@pytest.mark.parametrize(
    ("command", "case"),
    # one place classifies them (main.py's lifespan): each kind of file once, each command once more
    [
        ("dbmeta_serve", "embedding_model"),
        ("dbmeta_serve", "descriptions_file"),
        ("dbmeta_serve", "instructions_file"),
        ("uvicorn", "examples_file"),
    ],
)
def test_a_config_error_found_while_the_runtime_opens_is_one_line_too(
    command: str, case: str, tmp_path: Path
) -> None:
    # README: invalid values stop the service at start-up with a message naming them, never a traceback;
    # `dbmeta serve` exits 2 as for a bad variable, uvicorn with its own start-up failure status, as then
    make_env, named = _RUNTIME_CASES[case]
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_CACHE_ENABLED": "false",
        **make_env(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    port = str(free_port())
    argv = (
        [sys.executable, "-m", "dbmeta_app", "serve", "--port", port]
        if command == "dbmeta_serve"
        else [sys.executable, "-m", "uvicorn", "dbmeta_app.main:app", "--port", port]
    )
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=45)
    output = done.stdout + done.stderr
    assert done.returncode == (2 if command == "dbmeta_serve" else 3), output
    assert "Traceback" not in output and 'File "' not in output, output
    assert len([line for line in output.splitlines() if named in line]) == 1, output


@pytest.mark.parametrize("case", ["descriptions_file", "examples_file", "instructions_file"])
def test_the_cli_names_a_bad_profile_file_in_one_line(case: str, tmp_path: Path) -> None:
    # the operator's smoke test (`dbmeta schema`) fails as the service does
    make_env, named = _RUNTIME_CASES[case]
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "REDIS_CACHE_ENABLED": "false",
        **make_env(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "dbmeta_app", "schema"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and named in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
