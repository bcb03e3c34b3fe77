"""The curated-file loader: parsed once per version, re-read after an edit, errors that name the file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from dbmeta_app.curated import UNREADABLE, CuratedFiles
from dbmeta_app.errors import ConfigError


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[str] = []


def test_a_file_is_parsed_once_per_version_and_again_after_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "doc.yml"
    path.write_text("items: [a]\n")
    files = CuratedFiles()
    first = files.load(path, _Doc, "test file")
    assert first.value.items == ["a"] and first.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert files.load(path, _Doc, "test file") is first  # same stamp: not read again
    path.write_text("items: [a, b]\n")
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
    second = files.load(path, _Doc, "test file")
    assert second.value.items == ["a", "b"] and second.digest != first.digest
    assert files.digest(path) == second.digest


@pytest.mark.parametrize(
    ("text", "message"),
    [("items: [unclosed\n", "invalid YAML"), ("rows: []\n", "rows: Extra inputs are not permitted")],
)
def test_a_bad_file_is_a_config_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        CuratedFiles().load(path, _Doc, "test file")
    assert str(err.value).startswith(f"test file {str(path)!r}: ") and message in str(err.value)


def test_a_missing_file_cannot_be_read_and_has_no_digest(tmp_path: Path) -> None:
    files = CuratedFiles()
    with pytest.raises(ConfigError, match="cannot read it"):
        files.load(tmp_path / "gone.yml", _Doc, "test file")
    assert files.digest(tmp_path / "gone.yml") == UNREADABLE
