"""The one loader of curated files: descriptions, query-example packs and instructions (YAML, by people).

A file is read, parsed and validated once per version; its version is its stamp (modification time in
nanoseconds, size, inode), taken with a ``stat`` on every use. ``load`` blocks: callers run it in a worker
thread, never on the event loop. Each file's sha256 comes with its value, so an edit changes the cache keys
of whatever was derived from it. A ``CuratedFiles`` is owned by a profile's runtime (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from dbmeta_app.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

#: The digest of a file that cannot be read (its value is an error when asked for).
UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Curated(Generic[M]):
    """A curated file's validated content and the sha256 (hex) of its bytes."""

    value: M
    digest: str


def yaml_problem(exc: Exception) -> str:
    """A YAML (or decoding) error in one line, where it is: `` at line 2, column 1: expected ',' or '}' …``."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        said = ", ".join(part for part in (exc.context, exc.problem) if part)
        return f"{where}: {' '.join(said.split())}" if said else where
    return f": {' '.join(str(exc).split())}"


class CuratedFiles:
    """Curated files parsed once per version (see the module docstring); safe across threads."""

    def __init__(self) -> None:
        self._held: dict[tuple[Path, type[Any]], tuple[tuple[int, int, int], Curated[Any]]] = {}
        self._digests: dict[Path, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()

    def load(self, path: Path, model: type[M], what: str) -> Curated[M]:
        """Return the file's content validated as ``model``; a ConfigError names ``what`` file and the fault."""
        try:
            stat = path.stat()
        except OSError as exc:
            raise ConfigError(f"{what} {str(path)!r}: cannot read it ({exc.strerror})") from None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self._lock:
            held = self._held.get((path, model))
        if held is not None and held[0] == stamp:
            value: Curated[M] = held[1]
            return value
        try:
            data = path.read_bytes()
            parsed = model.model_validate(yaml.safe_load(data.decode("utf-8")) or {})
        except OSError as exc:
            raise ConfigError(f"{what} {str(path)!r}: cannot read it ({exc.strerror})") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{what} {str(path)!r}: invalid YAML{yaml_problem(exc)}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ConfigError(
                f"{what} {str(path)!r}: {where + ': ' if where else ''}{first['msg']}"
            ) from None
        loaded = Curated(parsed, hashlib.sha256(data).hexdigest())
        with self._lock:
            self._held[(path, model)] = (stamp, loaded)
        return loaded

    def digest(self, path: Path) -> str:
        """The sha256 (hex) of a file's bytes, read again only when its stamp changed (``UNREADABLE``)."""
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            with self._lock:
                held = self._digests.get(path)
            if held is not None and held[0] == stamp:
                return held[1]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return UNREADABLE
        with self._lock:
            self._digests[path] = (stamp, digest)
        return digest
