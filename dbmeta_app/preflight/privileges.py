"""What the database role of a profile can do that a metadata and preflight service never needs.

The service only reads catalogs, plans queries and reads a few sample rows. A role that can do more
(write, create, read server files, signal other sessions, run stored routines) turns any hole in the
service's other defences into damage; docs/SECURITY.md gives, per dialect, the SQL that creates the
right role. ``inspect_privileges`` is blocking (call it from a worker thread) and reports problems as
short phrases that name privileges, schemas and tables but never the login or its host.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from dbmeta_app.db.session import use_own_search_path

__all__ = ["PRIVILEGE_TTL", "PrivilegeCheck", "PrivilegeReport", "inspect_privileges", "parse_mysql_grants"]

log = logging.getLogger(__name__)

#: How long a report is trusted before the role is inspected again (a fixed role is noticed this soon).
PRIVILEGE_TTL: Final = 30.0
_SHOWN: Final = 5  # names listed per problem before "and N more"

_PG_ATTRIBUTES: Final = (
    ("rolsuper", "superuser"),
    ("rolreplication", "replication (REPLICATION: can stream the whole database and create slots)"),
    ("rolbypassrls", "bypasses row-level security (BYPASSRLS)"),
    ("rolcreaterole", "can create and alter roles (CREATEROLE)"),
    ("rolcreatedb", "can create databases (CREATEDB)"),
)
_PG_PREDEFINED: Final = {
    "pg_signal_backend": "can cancel and terminate other sessions",
    "pg_write_server_files": "can write files on the database server",
    "pg_read_server_files": "can read files on the database server",
    "pg_execute_server_program": "can run programs on the database server",
    "pg_write_all_data": "can write every table",
    "pg_checkpoint": "can force checkpoints",
    "pg_create_subscription": "can create subscriptions",
}
# Functions that read or write server files, reach other servers, or reset or reload server state; for
# those PUBLIC may not run by default, only a grant (or superuser) lets the role run them.
_PG_RISKY_FUNCTIONS: Final = (
    "^(dblink|pg_read_file|pg_read_binary_file|pg_stat_file|pg_ls_|pg_file_|pg_logdir_ls|lo_import|lo_export"
    "|pg_stat_reset|pg_stat_statements_reset|pg_reload_conf|pg_rotate_logfile|pg_promote|pg_switch_wal"
    "|pg_create_restore_point|pg_backup_start|pg_start_backup|pg_replication_origin_)"
)
_PG_SYSTEM_SCHEMAS: Final = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"

_PG_ROLES: Final = sa.text(
    """
SELECT r.oid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user),
       r.rolsuper, r.rolreplication, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb
FROM pg_catalog.pg_roles r
WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')
"""
)
_PG_FACTS: Final = sa.text(
    f"""
SELECT current_database(),
  pg_catalog.has_database_privilege(current_database(), 'CREATE'),
  ARRAY(SELECT n.nspname::text FROM pg_catalog.pg_namespace n
        WHERE pg_catalog.has_schema_privilege(n.oid, 'CREATE') AND {_PG_SYSTEM_SCHEMAS} ORDER BY 1),
  ARRAY(SELECT n.nspname::text FROM pg_catalog.pg_namespace n
        WHERE pg_catalog.pg_has_role(n.nspowner, 'USAGE') AND {_PG_SYSTEM_SCHEMAS} ORDER BY 1),
  ARRAY(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {_PG_SYSTEM_SCHEMAS}
          AND pg_catalog.pg_has_role(c.relowner, 'USAGE') ORDER BY 1),
  ARRAY(SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f') AND {_PG_SYSTEM_SCHEMAS}
          AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')
          AND pg_catalog.has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') ORDER BY 1),
  ARRAY(SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p
        WHERE p.proname ~ :risky AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')
          AND pg_catalog.has_schema_privilege(p.pronamespace, 'USAGE')
          AND (p.proname LIKE 'dblink%' OR (p.proacl IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')))
        ORDER BY 1),
  ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r
        WHERE r.rolname = ANY(CAST(:predefined AS text[]))
          AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER') ORDER BY 1)
"""
)

# MariaDB/MySQL privileges a metadata service may hold: reading tables and view definitions.
_MYSQL_HARMLESS: Final = frozenset({"USAGE", "SELECT", "SHOW VIEW"})
_MYSQL_GRANT: Final = re.compile(r"^GRANT\s+(?P<privileges>.+?)\s+ON\s+(?P<target>.+?)\s+TO\s+", re.I | re.S)
_MYSQL_ROLE_GRANT: Final = re.compile(r"^GRANT\s+(?P<roles>[`'\"][^ ]+?)\s+TO\s+", re.I)
_MYSQL_EXPLAINED: Final = {
    "EXECUTE": "EXECUTE (stored functions could run; the service never needs it)",
    "GRANT OPTION": "GRANT OPTION (can grant its privileges to others)",
}


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} and {len(names) - _SHOWN} more"


@dataclass(frozen=True, slots=True)
class PrivilegeReport:
    """What a profile's role can do beyond reading (``problems``), or why that could not be checked."""

    dialect: str
    problems: tuple[str, ...] = ()
    checked: bool = True
    error: str | None = None
    checked_at: float = field(default_factory=time.time)

    @property
    def least_privilege(self) -> bool:
        return self.checked and not self.problems

    def to_json(self) -> dict[str, Any]:
        """The /readyz entry: never the login, host or password."""
        data: dict[str, Any] = {"least_privilege": self.least_privilege, "problems": list(self.problems)}
        if not self.checked:
            data["checked"] = False
            data["error"] = self.error
        return data


def _postgres(conn: Connection) -> list[str]:
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    use_own_search_path(conn)
    conn.exec_driver_sql("SELECT set_config('statement_timeout', '5000', true)")
    roles = [(bool(is_self), flags) for is_self, *flags in conn.execute(_PG_ROLES)]
    if any(is_self and flags[0] for is_self, flags in roles):
        conn.rollback()
        return ["superuser (can do anything: read and write files, run programs, end sessions)"]
    problems: list[str] = []
    for is_self, flags in roles:
        for (_, label), flag in zip(_PG_ATTRIBUTES, flags, strict=True):
            if flag:
                # Other roles are not named: they may be logins too.
                problems.append(label if is_self else f"member of a role that has: {label}")
    database, create_db, create_schemas, owned_schemas, owned, writable, functions, predefined = conn.execute(
        _PG_FACTS, {"risky": _PG_RISKY_FUNCTIONS, "predefined": sorted(_PG_PREDEFINED)}
    ).one()
    problems.extend(f"member of {role} ({_PG_PREDEFINED[role]})" for role in predefined or ())
    if create_db:
        problems.append(f"CREATE on database {database}")
    if create_schemas:
        problems.append(f"CREATE on schemas {_listed(create_schemas)}")
    if owned_schemas:
        problems.append(f"owns schemas {_listed(owned_schemas)} (an owner can change anything in them)")
    if owned:
        problems.append(f"owns {len(owned)} tables, views or sequences ({_listed(owned)})")
    if writable:
        problems.append(f"INSERT, UPDATE, DELETE or TRUNCATE on {len(writable)} tables ({_listed(writable)})")
    if functions:
        problems.append(f"EXECUTE on server file, remote or admin functions ({_listed(functions)})")
    conn.rollback()
    return list(dict.fromkeys(problems))


def _split_privileges(text: str) -> list[str]:
    """Split "SELECT (a, b), INSERT, SHOW VIEW" into privilege names (column lists dropped)."""
    names: list[str] = []
    depth, current = 0, list[str]()
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            names.append("".join(current))
            current = []
        elif depth == 0:
            current.append(char)
    names.append("".join(current))
    return [" ".join(name.split()).upper() for name in names if name.strip()]


def parse_mysql_grants(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """Return the problems in SHOW GRANTS lines, and the roles granted (to inspect too)."""
    problems: list[str] = []
    roles: list[str] = []
    for line in lines:
        match = _MYSQL_GRANT.match(line)
        if match is None:
            role = _MYSQL_ROLE_GRANT.match(line)
            if role is not None:
                roles.extend(part.strip() for part in role.group("roles").split(","))
            continue
        privileges = _split_privileges(match.group("privileges"))
        target = match.group("target").strip()
        if "PROXY" in privileges:
            problems.append("PROXY (can act as other users)")  # its target is a login: never shown
            privileges = [p for p in privileges if p != "PROXY"]
        scope = target.replace("`", "")
        if re.search(r"\sWITH\s+GRANT\s+OPTION\b", line, re.I):
            privileges.append("GRANT OPTION")
        bad = [_MYSQL_EXPLAINED.get(p, p) for p in privileges if p not in _MYSQL_HARMLESS]
        if bad:
            problems.append(f"{', '.join(bad)} on {scope}")
    return problems, roles


def _mysql(conn: Connection) -> list[str]:
    lines = [str(row[0]) for row in conn.exec_driver_sql("SHOW GRANTS")]
    problems, roles = parse_mysql_grants(lines)
    for role in roles[:10]:
        try:
            more, _ = parse_mysql_grants(
                [str(row[0]) for row in conn.exec_driver_sql(f"SHOW GRANTS FOR {role}")]
            )
        except SQLAlchemyError:
            continue
        problems.extend(f"through a granted role: {problem}" for problem in more)
    return list(dict.fromkeys(problems))


def _sqlite(engine: Engine) -> list[str]:
    url = engine.url
    database = url.database or ""
    query = {key: str(value) for key, value in url.query.items()}
    if not database or database == ":memory:" or query.get("mode") in ("ro", "memory"):
        return []
    if query.get("immutable") in ("1", "true"):
        return []
    path = Path(database.removeprefix("file:").split("?", 1)[0])
    mode = re.search(r"[?&]mode=(\w+)", database)
    if mode is not None and mode.group(1) in ("ro", "memory"):
        return []
    writable = os.access(path, os.W_OK) if path.exists() else os.access(path.parent or Path("."), os.W_OK)
    if writable:
        return [
            "the database file is writable by the service (open it read-only: "
            "sqlite:///file:PATH?mode=ro&uri=true)"
        ]
    return []


def inspect_privileges(engine: Engine) -> PrivilegeReport:
    """Inspect the role a profile's engine connects as (blocking); failures are reported, never raised."""
    dialect = engine.dialect.name
    try:
        if dialect == "sqlite":
            problems = _sqlite(engine)
        elif dialect == "postgresql":
            with engine.connect() as conn:
                problems = _postgres(conn)
        elif dialect in ("mysql", "mariadb"):
            with engine.connect() as conn:
                problems = _mysql(conn)
                conn.rollback()
        else:
            return PrivilegeReport(dialect, checked=False, error=f"not checked for {dialect}")
    except SQLAlchemyError as exc:
        return PrivilegeReport(
            dialect, checked=False, error=f"could not inspect the role ({type(exc).__name__})"
        )
    return PrivilegeReport(dialect, tuple(problems))


@dataclass
class PrivilegeCheck:
    """A profile's latest privilege report, inspected again once it is older than ``ttl`` seconds."""

    ttl: float = PRIVILEGE_TTL
    _report: PrivilegeReport | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refreshing: threading.Event = field(default_factory=threading.Event)

    @property
    def last(self) -> PrivilegeReport | None:
        return self._report

    def fresh(self) -> PrivilegeReport | None:
        """Return the latest checked report while it is younger than the TTL, else None."""
        report = self._report
        if report is not None and report.checked and time.time() - report.checked_at < self.ttl:
            return report
        return None

    def report(self, engine: Engine) -> PrivilegeReport:
        """Return a fresh report, inspecting the role if needed (blocking: call from a worker thread).

        When the role cannot be inspected (the database is unreachable), the last report that could be
        is returned instead, whatever its age; with none, the failed one.
        """
        with self._lock:
            report = self.fresh()
            if report is not None:
                return report
            report = inspect_privileges(engine)
            if report.checked:
                self._report = report
                return report
            return self._report if self._report is not None else report

    def refresh_in_background(self, engine: Engine) -> None:
        """Inspect again on a daemon thread unless the report is fresh or an inspection is running."""
        if self.fresh() is not None or self._refreshing.is_set():
            return
        self._refreshing.set()

        def run() -> None:
            try:
                self.report(engine)
            finally:
                self._refreshing.clear()

        threading.Thread(target=run, name="dbmeta-privileges", daemon=True).start()
