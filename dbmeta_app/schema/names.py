"""Whether the schemas a profile names in ``include_schemas`` / ``exclude_schemas`` exist in its database.

Names are matched exactly, as introspection matches them: ``include_schemas: [Sales]`` against a schema
``sales`` serves no table at all. That is said (start-up log, ``/readyz`` ``checks.schemas``, ``dbmeta
schema`` on stderr) with the near miss, never guessed. Checked where the catalog lists schemas reliably
(PostgreSQL, MySQL/MariaDB databases, SQLite attached databases); elsewhere nothing is reported.
"""

from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.config import Profile

#: Dialects whose ``get_schema_names`` lists exactly the names ``include_schemas`` is matched against.
CHECKED_DIALECTS = frozenset({"postgresql", "mysql", "mariadb", "sqlite"})
#: Seconds a report is kept before ``/readyz`` has it made again (in the background).
SCHEMA_NAMES_TTL = 300.0


def unknown_schema_names(profile: Profile, available: list[str]) -> list[str]:
    """One message per schema named in include_schemas or exclude_schemas that ``available`` does not hold."""
    have = set(available)
    by_folded: dict[str, list[str]] = {}
    for name in available:
        by_folded.setdefault(name.casefold(), []).append(name)
    messages = []
    for setting, names in (
        ("include_schemas", profile.include_schemas),
        ("exclude_schemas", profile.exclude_schemas),
    ):
        for name in names:
            if name in have:
                continue
            same_letters = by_folded.get(name.casefold(), [])
            near = same_letters or difflib.get_close_matches(name, available, n=1, cutoff=0.75)
            hint = f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""
            messages.append(f"{setting} names {name!r}, which the database does not have{hint}")
    return messages


def check_schema_names(profile: Profile, engine: Engine) -> list[str] | None:
    """The messages for a profile's unknown schema names; None when not checked (dialect, database down).

    Blocking (one catalog query): run it in a worker thread.
    """
    if engine.dialect.name not in CHECKED_DIALECTS or not (
        profile.include_schemas or profile.exclude_schemas
    ):
        return [] if engine.dialect.name in CHECKED_DIALECTS else None
    try:
        with engine.connect() as conn:
            available = sa.inspect(conn).get_schema_names()
    except Exception:  # noqa: BLE001 - a database that does not answer is reported elsewhere (readiness)
        return None
    return unknown_schema_names(profile, list(available))


@dataclass
class SchemaNamesCheck:
    """A profile's latest schema-name report, made again once older than ``ttl`` seconds."""

    ttl: float = SCHEMA_NAMES_TTL
    warnings: list[str] | None = None  # None: not checked (yet)
    checked_at: float = 0.0
    _refreshing: threading.Event = field(default_factory=threading.Event)

    def report(self, profile: Profile, engine: Engine) -> list[str] | None:
        """Check now (blocking); a failed check keeps the last report."""
        found = check_schema_names(profile, engine)
        if found is not None:
            self.warnings, self.checked_at = found, time.time()
        return self.warnings

    def refresh_in_background(self, profile: Profile, engine: Engine) -> None:
        """Check again on a daemon thread unless the report is fresh or a check is running."""
        if (
            self.warnings is not None and time.time() - self.checked_at < self.ttl
        ) or self._refreshing.is_set():
            return
        self._refreshing.set()

        def run() -> None:
            try:
                self.report(profile, engine)
            finally:
                self._refreshing.clear()

        threading.Thread(target=run, name="dbmeta-schema-names", daemon=True).start()
