"""Who holds the local index: one owner process per Milvus Lite file, found by every other process.

Milvus Lite (3.x) runs inside the process that opens its directory (an in-process gRPC server on a loopback
port, and an exclusive lock on the directory), so a second process cannot open the same file. dbmeta makes
that explicit with an *anchor*: the Milvus Lite file when the index is one, else ``DATA_DIR/dbmeta`` (so a
server on a Milvus server or with keyword search can still be found by the CLI). Beside the anchor:

- ``<anchor>.owner.lock``: an ``flock`` the owner holds for its whole life (the OS drops it when the process
  dies, so a crashed owner never blocks the next one);
- ``<anchor>.owner.json`` (mode 0600): the owner's pid, the address of its Milvus Lite server, the address of
  its HTTP service once known, the identity of the databases it serves, and a token for local index requests
  (readable by the same user only, like the index itself);
- ``<anchor>.build.lock``: held by whichever process builds an index on the file (see ``BuildLock``).

The workers of ``serve --workers N`` reach the index through the owner's Milvus Lite server; the CLI beside a
server sends its requests to the server's HTTP service.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dbmeta_app.config import Profile, Settings
from dbmeta_app.errors import DbmetaError

log = logging.getLogger(__name__)

#: The anchor when the index is not a Milvus Lite file (keyword search, or a Milvus server).
DATA_DIR_ANCHOR = "dbmeta"
_LOCK_POLL_S = 0.05


if sys.platform == "win32":  # pragma: no cover - the service runs on Linux; Milvus Lite runs on Windows too
    import msvcrt

    def _try_lock(fd: int, shared: bool = False) -> bool:
        """Take a lock on fd without waiting (always exclusive here); False when another holds it."""
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int, shared: bool = False) -> bool:
        """Take a lock on fd without waiting (exclusive unless shared); False when another holds it."""
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class IndexBusyError(DbmetaError):
    code = "index_busy"
    status_code = 503


def lite_path(settings: Settings) -> Path | None:
    """The Milvus Lite file of these settings, or None (keyword search, or a Milvus server)."""
    if settings.search_backend != "milvus":
        return None
    uri = settings.milvus_uri or str(settings.data_dir / "milvus.db")
    if "://" in uri or uri.startswith("unix:") or not uri.endswith(".db"):
        return None
    return Path(uri).expanduser().resolve()


def anchor_path(settings: Settings) -> Path:
    """The file whose owner this process is or looks for (see the module doc)."""
    return lite_path(settings) or (settings.data_dir / DATA_DIR_ANCHOR).expanduser().resolve()


def served_identities(settings: Settings) -> dict[str, str]:
    """The identity of every profile's database (what a server publishes so the CLI can compare)."""
    return {name: served_identity(profile) for name, profile in settings.profiles.items()}


def served_identity(profile: Profile) -> str:
    """Identify the database a profile reads (dialect, host, port, database, user, schema filters; never the password)."""
    raw = profile.database_url.get_secret_value()
    try:
        url = make_url(raw)
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database and database != ":memory:":
            database = str(Path(database).expanduser().resolve())
        parts: dict[str, Any] = {
            "dialect": url.get_backend_name(),
            "host": url.host,
            "port": url.port,
            "database": database,
            "user": url.username,
        }
    except ArgumentError:
        parts = {"unparsed": hashlib.sha256(raw.encode()).hexdigest()}
    parts["include"], parts["exclude"] = list(profile.include_schemas), list(profile.exclude_schemas)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class OwnerRecord:
    """What the owner of an anchor publishes for the other processes on it."""

    pid: int
    kind: str  # "server" (an HTTP service) or "cli"
    token: str
    started: float
    milvus: str | None = None  # the owner's Milvus Lite server (http://127.0.0.1:port), when it holds one
    url: str | None = None  # the owner's HTTP service, once it is known
    served: dict[str, str] = field(default_factory=dict)  # profile name -> served_identity

    @classmethod
    def from_json(cls, data: Any) -> OwnerRecord | None:
        if not isinstance(data, dict):
            return None
        try:
            served = data.get("served") or {}
            return cls(
                pid=int(data["pid"]),
                kind=str(data["kind"]),
                token=str(data["token"]),
                started=float(data["started"]),
                milvus=str(data["milvus"]) if data.get("milvus") else None,
                url=str(data["url"]) if data.get("url") else None,
                served={str(k): str(v) for k, v in served.items()} if isinstance(served, dict) else {},
            )
        except (KeyError, TypeError, ValueError):
            return None


class Anchor:
    """The files beside an anchor, and this process's claim on it (held until ``release``)."""

    def __init__(self, path: Path, *, kind: str = "cli", served: dict[str, str] | None = None) -> None:
        self.path = path
        self.kind = kind  # what this process is, when it claims: "server" or "cli"
        self.served = served or {}
        self.lock_file = path.with_name(path.name + ".owner.lock")
        self.record_file = path.with_name(path.name + ".owner.json")
        self.build_file = path.with_name(path.name + ".build.lock")
        self._fd: int | None = None
        self._record: OwnerRecord | None = None
        self._mutex = threading.Lock()

    # ---- the owner's side ----------------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Tell whether this process owns the anchor."""
        return self._fd is not None

    @property
    def record(self) -> OwnerRecord | None:
        """What this process published (None unless it owns the anchor)."""
        return self._record

    def claim(self) -> bool:
        """Become the owner if nobody is (non-blocking); publish a fresh record when it succeeds."""
        with self._mutex:
            if self._fd is not None:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                taken = _try_lock(fd)
            except OSError:
                os.close(fd)
                raise
            if not taken:
                os.close(fd)
                return False
            self._fd = fd
            record = OwnerRecord(
                os.getpid(), self.kind, secrets.token_urlsafe(32), time.time(), served=self.served
            )
            self._write(record)
            return True

    def publish(self, **changes: Any) -> None:
        """Update the published record (the owner's Milvus Lite or HTTP address); no-op unless owner."""
        with self._mutex:
            if self._fd is not None and self._record is not None:
                try:
                    self._write(replace(self._record, **changes))
                except OSError as exc:  # the CLI will not find this process; it still serves
                    log.warning("Cannot update %s: %s", self.record_file, exc)

    def release(self) -> None:
        """Remove the record and drop the claim."""
        with self._mutex:
            if self._fd is None:
                return
            with contextlib.suppress(OSError):
                current = _read_record(self.record_file)
                if current is not None and self._record is not None and current.token == self._record.token:
                    self.record_file.unlink()
            with contextlib.suppress(OSError):
                _unlock(self._fd)
            os.close(self._fd)
            self._fd, self._record = None, None

    def _write(self, record: OwnerRecord) -> None:
        tmp = self.record_file.with_name(f"{self.record_file.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(record), out)
        os.replace(tmp, self.record_file)  # readers see the old record or the new one, never half of one
        self._record = record

    # ---- everybody's side ------------------------------------------------------------------------

    def owner(self) -> OwnerRecord | None:
        """The record of the live owner (this process's own when it owns the anchor), else None."""
        if self._fd is not None:
            return self._record
        if not self.lock_file.exists() or not _locked_by_someone(self.lock_file):
            return None  # nobody holds it: a record left there is from an owner that died
        # None while the owner is starting (it writes its record right after taking the lock)
        return _read_record(self.record_file)

    def build_lock(self) -> BuildLock:
        """The lock every index build on this anchor holds (see ``BuildLock``)."""
        return BuildLock(self.build_file)


class BuildLock:
    """Serialise index builds on one Milvus Lite file, across the threads of a process and across processes.

    Milvus Lite is not safe for concurrent DDL: two builds that create, alias or drop collections at once
    corrupt its alias file or list collections another build is dropping. ``path=None`` serialises the
    builds of this process only (a Milvus server takes concurrent DDL, but one build at a time is what the
    model can feed anyway).
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._thread = threading.Lock()
        self.holder: str | None = None  # what holds it now, for /readyz

    @contextlib.contextmanager
    def hold(self, what: str, timeout: float) -> Iterator[None]:
        """Hold the lock for ``what`` (blocking, at most ``timeout`` seconds of waiting)."""
        deadline = time.monotonic() + timeout
        if not self._thread.acquire(timeout=timeout):
            raise IndexBusyError(f"index build lock not free after {timeout:.0f}s (held by {self.holder})")
        fd: int | None = None
        try:
            if self._path is not None:
                fd = self._lock_file(deadline, timeout)
            self.holder = what
            yield
        finally:
            self.holder = None
            if fd is not None:
                with contextlib.suppress(OSError):
                    _unlock(fd)
                os.close(fd)
            self._thread.release()

    def _lock_file(self, deadline: float, timeout: float) -> int:
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                if _try_lock(fd):
                    return fd
            except OSError:
                os.close(fd)
                raise
            if time.monotonic() > deadline:
                os.close(fd)
                raise IndexBusyError(
                    f"index build lock {self._path} not free after {timeout:.0f}s (another process builds)"
                )
            time.sleep(_LOCK_POLL_S)


def _locked_by_someone(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        if _try_lock(fd, shared=True):  # shared: a probe never keeps a claimant out
            _unlock(fd)
            return False
        return True
    except OSError:
        return True
    finally:
        os.close(fd)


def _read_record(path: Path) -> OwnerRecord | None:
    try:
        return OwnerRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
