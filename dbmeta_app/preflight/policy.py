"""The routine policy of one profile: catalog facts cached per definitions fingerprint, judged per query.

``RoutineGate.check`` runs inside the EXPLAIN's own read-only transaction, before the EXPLAIN: one live
query reads the definitions fingerprint (and, on PostgreSQL, the search path, the relations the query
names and the types it can produce); if the fingerprint moved since the cached catalog was read, the
catalog is read again right there, in the same transaction. So a view or function replaced a moment
ago is judged by its new definition on the very next preflight that reaches the database, and an
unchanged database costs one cheap extra query per EXPLAIN.

(What remains is the gap between two statements of one READ COMMITTED transaction: a definition
committed between the check and the EXPLAIN, microseconds later, is not seen by the check. Closing it
would need locks a read-only role cannot take on functions; it needs someone able to change definitions
racing the service on purpose.)
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pglast
import sqlglot
from pglast import ast as pg_ast
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import dbmeta_app.schema.sqlite_views as sqlite_views
from dbmeta_app.db.session import use_own_search_path
from dbmeta_app.dialects import dialect_family
from dbmeta_app.preflight import catalog_mysql, catalog_postgres
from dbmeta_app.preflight.budget import (
    Budget,
    may_size_rows,
    measure_postgres,
    measure_sqlglot,
    merge_outputs,
    pg_sized_by_name,
)
from dbmeta_app.preflight.dialects import clickhouse as clickhouse_rules
from dbmeta_app.preflight.dialects import duckdb as duckdb_rules
from dbmeta_app.preflight.guard import MySQLFamily
from dbmeta_app.preflight.privileges import PrivilegeCheck
from dbmeta_app.preflight.reach import Name, Reach
from dbmeta_app.preflight.routines import (
    AllowList,
    MyCatalog,
    PgCatalog,
    PgLive,
    judge_mysql,
    judge_postgres,
    mysql_base_tables,
    mysql_relation_problems,
    mysql_view_outputs,
    pg_calls,
    postgres_planned_relations,
    postgres_relation_problems,
    postgres_view_outputs,
)

__all__ = ["RoutineGate", "has_routine_policy", "sample_refusals"]

log = logging.getLogger(__name__)

_MYSQL_FAMILY = ("mysql", "mariadb")
#: The relations the planner may open for a query, per relation the complexity budget admits in its text.
PLANNED_RELATIONS_PER_RELATION: Final = 3
#: Statement timeout of the transaction that checks which relations may be sampled.
SAMPLE_CHECK_TIMEOUT_MS = 5000


def has_routine_policy(dialect: str) -> bool:
    """Tell whether queries of this dialect can reach user routines (SQLite: no, see preflight/routines.py)."""
    return dialect == "postgresql" or dialect in _MYSQL_FAMILY


@dataclass
class RoutineGate:
    """Per-profile state of the routine policy: the allow-list and the cached catalog facts."""

    dialect: str
    allow_functions: tuple[str, ...] = ()
    #: The views a query reads may make the planner fold at most this many bytes of constants (budget.py).
    max_constant_bytes: int = Budget().max_constant_bytes
    #: PostgreSQL: the relations the planner may open for one query, partitions, inheritance children and what
    #: views read included (each costs planner memory: 2,000 partitions read 6 times took a backend from 17 to 528 MB).
    max_planned_relations: int = PLANNED_RELATIONS_PER_RELATION * Budget().max_relations
    _pg: PgCatalog | None = None
    #: Parsed and measured view definitions, kept across catalog reads (only changed views are re-read).
    _views: catalog_postgres.ViewMemo = field(default_factory=catalog_postgres.ViewMemo)
    #: The longest one catalog read may spend on view definitions (the rest: refused, read next time).
    view_seconds: float = catalog_postgres.VIEW_WORK_SECONDS
    _my: MyCatalog | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: SQLite: what each view definition reads, by the hash of its text (schema/sqlite_views.py).
    sqlite_views: sqlite_views.ReadsMemo = field(default_factory=sqlite_views.ReadsMemo)
    #: How many times the catalog was read (a definitions change must cause exactly one re-read).
    loads: int = 0
    allow: AllowList = field(init=False)

    def __post_init__(self) -> None:
        self.allow = AllowList.parse(self.allow_functions, fold_case=self.dialect in _MYSQL_FAMILY)

    @property
    def fingerprint(self) -> str | None:
        """The definitions fingerprint last seen in the database (None before the first check)."""
        catalog = self._pg if self._pg is not None else self._my
        return catalog.fingerprint if catalog is not None else None

    def check(self, conn: Connection, reach: Reach | None, statement: str | None = None) -> str | None:
        """Return why the query must be refused, or None; run inside the EXPLAIN's transaction.

        Database errors (a timeout, a lost connection) propagate for the caller to classify; any other
        failure refuses the query (fail closed) and is logged.
        """
        if self.dialect == "sqlite":
            if statement is None:
                return None
            try:
                return self._sqlite_planned_problem(conn, statement)
            except DBAPIError:
                raise
            except Exception:
                log.exception("The SQLite view expansion check failed; refusing the query")
                return "the views the query reads could not be checked (see the service log)"
        if not has_routine_policy(self.dialect):
            return None
        if reach is None:
            # Fail closed: an accepted statement always carries what it reaches.
            return "the query's routines could not be determined"
        try:
            return self._check(conn, reach, statement)
        except DBAPIError:
            raise
        except Exception:
            log.exception("The routine policy failed; refusing the query")
            return "the routines the query reaches could not be checked (see the service log)"

    def _check(self, conn: Connection, reach: Reach, statement: str | None) -> str | None:
        if self.dialect == "postgresql":
            live = catalog_postgres.read_live(conn, reach)
            pg = self._postgres_catalog(conn, live.fingerprint)
            verdict = judge_postgres(reach, pg, live, self.allow, max_constant_bytes=self.max_constant_bytes)
            if verdict is None and statement is not None:
                # parsed again only when a relation it reads needs it (the guard keeps verdicts, not trees)
                parsed = functools.cache(lambda: pglast.parse_sql(statement)[0].stmt)
                verdict = self._planned_problem(pg, reach, live.relations, parsed)
                if verdict is None:
                    verdict = self._constants_problem(pg, reach, live, parsed)
            return verdict
        my_live = catalog_mysql.read_live(conn)
        my = self._mysql_catalog(conn, my_live.fingerprint)
        verdict = judge_mysql(reach, my, my_live, self.allow, max_constant_bytes=self.max_constant_bytes)
        if verdict is None and statement is not None:
            # measured again with the views' constant columns, and any other column taken as a row the
            # optimiser may read (a count from it is any size: budget._READS_ROWS_WHILE_PLANNING)
            outputs = merge_outputs(*mysql_view_outputs(my, reach.relations, my_live.database))
            if outputs or may_size_rows(statement):  # else the guard's measure stands: no second parse
                tree = sqlglot.parse_one(statement, read=MySQLFamily)
                verdict = self._too_big(
                    measure_sqlglot(tree, "mysql", outputs, rows=True).constant_bytes,
                    "with the constant columns of the views it reads"
                    if outputs
                    else "with a size taken from a row as any size (MariaDB reads rows while it plans)",
                )
        if verdict is None:
            tables = mysql_base_tables(my, reach.relations, my_live.database)
            verdict = self._generated_problem(catalog_mysql.read_generated(conn, tables), tables)
        return verdict

    def _generated_problem(
        self,
        generated: Mapping[tuple[str, str], Sequence[tuple[str, str | None]]],
        tables: Sequence[tuple[str, str]],
    ) -> str | None:
        """Say whether the VIRTUAL generated columns (``catalog_mysql.read_generated``) of the tables a
        MySQL/MariaDB query reads would make the optimiser build too much: it computes them for a row it reads
        while planning (a const table), each column taken as a row value (``REPEAT('x', a)`` is any size); or one
        cannot be read or parsed."""
        problems: list[str] = []
        built = 0
        wanted = {(schema.lower(), table.lower()) for schema, table in tables}  # as the query spells them
        for (schema, table), columns in generated.items():
            if (schema.lower(), table.lower()) not in wanted:
                continue
            here = f"table {schema}.{table} → its virtual generated column"
            unread = [column for column, expression in columns if expression is None]
            if unread:
                problems.append(
                    f"{here} {unread[0]} is longer than the service reads, so it cannot be measured"
                )
                continue
            select = "SELECT " + ", ".join(f"({expression})" for _, expression in columns)
            try:
                tree = sqlglot.parse_one(select, read=MySQLFamily)
            except (sqlglot.errors.SqlglotError, RecursionError):
                problems.append(f"{here}s could not be parsed by the service, so they cannot be measured")
                continue
            size = measure_sqlglot(tree, "mysql", rows=True).constant_bytes
            built = min(built + size, 10**15)
            if built > self.max_constant_bytes:
                problems.append(
                    f"{here}s, computed while planning for a row MariaDB reads, would make the planner build "
                    f"{built:,} bytes (a size taken from a row is any size), over preflight.max_constant_bytes "
                    f"({self.max_constant_bytes:,})"
                )
                break
        if not problems:
            return None
        return (
            f"the query reaches definitions that would make the planner build too much: {'; '.join(problems)}"
        )

    def _planned_problem(
        self, pg: PgCatalog, reach: Reach, relations: Sequence[int | None], tree: Callable[[], Any]
    ) -> str | None:
        """Say whether the partitions and children of what the query reads make the planner open too many.

        A query that reads no partitioned or inherited table and no view opens what its text names, which the
        complexity budget has counted (preflight.max_relations, a third of this bound)."""
        if not any(
            (relation := pg.relations.get(oid)) is not None and (relation.children or relation.kind == "v")
            for oid in relations
            if oid is not None
        ):
            return None
        written = pg_written_reads(tree())
        references: Counter[int] = Counter()
        for name, oid in zip(reach.relations, relations, strict=False):
            if oid is not None:
                references[oid] += max(1, written.get(Name(name.schema, name.name), 1))
        planned = postgres_planned_relations(pg, references)
        if planned <= self.max_planned_relations:
            return None
        return (
            f"query too complex to plan safely: the planner would open {planned:,} relations (partitions, "
            f"inheritance children and the relations of views included), over the limit of "
            f"{self.max_planned_relations:,} ({PLANNED_RELATIONS_PER_RELATION} x the profile's "
            "preflight.max_relations)"
        )

    def _sqlite_planned_problem(self, conn: Connection, statement: str) -> str | None:
        """Say whether SQLite would open too many relations expanding the views the statement reads.

        SQLite expands views and common table expressions before it plans, and neither interrupt() nor the
        progress handler stops it: the expansion is computed from the statement and the definitions first
        (schema/sqlite_views.py), against the same bound as PostgreSQL's planned relations."""
        views = _sqlite_view_definitions(conn)
        # the statement's own CTEs are expanded the same way, views or not (audit B #4: a doubling chain
        # written as ``1 IN c_k``); its length is the guard's bound
        tree = sqlite_views.parse_view(statement, max_chars=len(statement))
        if tree is None:
            return "the views the query reads could not be determined"
        reads = sqlite_views.reads_of(tree)
        wanted = [n for n in sqlite_views.names_read(reads) if n in views]
        sizes = sqlite_views.expansion_sizes(views, self.sqlite_views, wanted)
        return self._sqlite_verdict(sqlite_views.statement_relations(reads, sizes), sizes)

    def _sqlite_verdict(self, planned: int | None, sizes: dict[str, int | None]) -> str | None:
        if planned is None:
            unknown = sorted(name for name, size in sizes.items() if size is None)
            shown = ", ".join(unknown[:3]) + (", …" if len(unknown) > 3 else "")
            return (
                f"the service cannot check the definition of view(s) {shown} (too long, or beyond what it parses), "
                "so it cannot bound what SQLite would expand"
            )
        if planned <= self.max_planned_relations:
            return None
        return (
            f"query too complex to plan safely: the planner would open {planned:,} relations (the relations of "
            f"the views and common table expressions it reads included), over the limit of {self.max_planned_relations:,} "
            f"({PLANNED_RELATIONS_PER_RELATION} x the profile's preflight.max_relations)"
        )

    def _constants_problem(
        self, pg: PgCatalog, reach: Reach, live: PgLive, tree: Callable[[], Any]
    ) -> str | None:
        """Say whether the query's calls of constants build too much, now that what they call is known to be
        trusted: with the constant columns of the views it reads, and with every routine that is neither a
        built-in nor a reviewed extension function of unknown size unless the profile allow-lists it (the guard,
        which has no catalog, counted such a routine as its arguments; a trusted extension's member created under
        another name can run repeat() or a jsonpath whatever its name says), with every call that may resolve
        to a trusted member named like a built-in or a reviewed function (``PgCatalog.namesakes``) unless
        allow-listed: what such a member builds is what its body or symbol says, not its name; and with every
        operator or cast of the user's whose function is not sized as its arguments (``PgCatalog.folded_operators``,
        ``folded_casts``): an operator or a cast of constants is folded by calling its function, which the guard
        did not know."""
        outputs = merge_outputs(*postgres_view_outputs(pg, live.relations))
        calls = pg_calls(pg, live)
        if (
            not outputs
            and not calls.implicit
            and not any(calls.operator((n.schema or "").lower(), n.name) for n in reach.operators)
            and not calls.operator("", "=")  # CASE x WHEN compares with it unwritten
            and not any(c.target in live.cast_targets for c in pg.folded_casts)
            and all(
                (
                    pg_sized_by_name(f.schema or "", f.name)
                    and not calls.namesake((f.schema or "").lower(), f.name.lower())
                )
                or self._vouched((f.schema or "").lower(), f.name.lower())
                for f in reach.functions
            )
        ):
            return None  # the guard measured this statement as this would: not parsed again (most queries)
        parsed = tree()
        if parsed is None:
            return None
        measures = measure_postgres(parsed, outputs, vouched=self._vouched, calls=calls)
        if measures.unknown:
            return (
                f"query too complex to plan safely: {'; '.join(measures.unknown)}, all of its inputs constants: the "
                "planner evaluates such a call while it plans, and what that builds is not bounded, so it counts as "
                f"over preflight.max_constant_bytes ({self.max_constant_bytes:,}); apply it to a column, or compute "
                "it outside the query"
            )
        return self._too_big(
            measures.constant_bytes,
            "with the constant columns of the views it reads"
            if outputs
            else "counting what the operators and casts of this database run",
        )

    def _vouched(self, schema: str, name: str) -> bool:
        """Whether the profile allow-lists a routine a call names (a bare name: when any allow-list entry may be it)."""
        if schema:
            return self.allow.permits(schema, name)
        return bool(self.allow.schemas) or any(entry == name for _, entry in self.allow.names)

    def _too_big(
        self, built: int, counting: str = "with the constant columns of the views it reads"
    ) -> str | None:
        """Say that a query's calls build too much, counting what the guard could not see (``counting``: the constant
        columns of the views it reads, or what the database's operators and casts run), or None."""
        if built <= self.max_constant_bytes:
            return None
        return (
            f"{counting}, the query would make the planner build "
            f"{built:,} bytes, over preflight.max_constant_bytes ({self.max_constant_bytes:,})"
        )

    def checker(
        self, reach: Reach | None, statement: str | None = None
    ) -> Callable[[Connection], str | None]:
        """Return the check of one query (``statement``: its guarded text) as a hook for run_explain."""
        return lambda conn: self.check(conn, reach, statement)

    def relation_problems(self, conn: Connection, relations: Sequence[Name]) -> dict[Name, str]:
        """Return, per relation that may not be read, why (its view expansion or attached expressions)."""
        if self.dialect == "sqlite" and relations:
            views = _sqlite_view_definitions(conn)
            wanted = {name: name.name.lower() for name in relations if name.schema in (None, "main")}
            sizes = sqlite_views.expansion_sizes(
                views, self.sqlite_views, [w for w in wanted.values() if w in views]
            )
            out: dict[Name, str] = {}
            for name, key in wanted.items():
                if key in sizes and (problem := self._sqlite_verdict(sizes[key], {key: sizes[key]})):
                    out[name] = problem
            return out
        if dialect_family(self.dialect) in ("duckdb", "clickhouse") and relations:
            return _reach_problems(conn, dialect_family(self.dialect), relations)
        if not has_routine_policy(self.dialect) or not relations:
            return {}
        problems: dict[Name, str] = {}
        if self.dialect == "postgresql":
            fingerprint = catalog_postgres.read_fingerprint(conn)
            pg = self._postgres_catalog(conn, fingerprint)
            for name, oid in zip(relations, catalog_postgres.resolve_relations(conn, relations), strict=True):
                found = postgres_relation_problems(
                    pg, [oid], self.allow, max_constant_bytes=self.max_constant_bytes
                )
                if found:
                    problems[name] = "; ".join(found)
            return problems
        live = catalog_mysql.read_live(conn)
        my = self._mysql_catalog(conn, live.fingerprint)
        tables = {name: mysql_base_tables(my, [name], live.database) for name in relations}
        # reading a relation's rows computes its tables' virtual generated columns (a sample reads them all)
        generated = catalog_mysql.read_generated(conn, [t for ts in tables.values() for t in ts])
        for name in relations:
            found = mysql_relation_problems(
                my, [name], live.database, self.allow, max_constant_bytes=self.max_constant_bytes
            )
            if not found:
                problem = self._generated_problem(generated, tables[name])
                found = [problem] if problem else []
            if found:
                problems[name] = "; ".join(found)
        return problems

    def _postgres_catalog(self, conn: Connection, fingerprint: str) -> PgCatalog:
        with self._lock:
            if self._pg is None or self._pg.fingerprint != fingerprint or not self._pg.complete:
                self._pg = catalog_postgres.load_catalog(conn, fingerprint, self._views, self.view_seconds)
                self.loads += 1
                log.info(
                    "Routine policy catalog read: %d untrusted routines, %d operators, %d casts, %d relations; "
                    "%d operators and %d casts sized as calls of their functions",
                    len(self._pg.routines),
                    len(self._pg.operators),
                    len(self._pg.casts),
                    len(self._pg.relations),
                    sum(len(v) for v in self._pg.folded_operators.values()),
                    len(self._pg.folded_casts),
                )
            return self._pg

    def _mysql_catalog(self, conn: Connection, fingerprint: str) -> MyCatalog:
        with self._lock:
            if self._my is None or self._my.fingerprint != fingerprint:
                self._my = catalog_mysql.load_catalog(conn, fingerprint)
                self.loads += 1
                log.info(
                    "Routine policy catalog read: %d stored functions, %s UDFs, %d views",
                    len(self._my.functions),
                    "unknown" if self._my.udfs is None else len(self._my.udfs),
                    len(self._my.views),
                )
            return self._my


def _reach_problems(conn: Connection, family: str, relations: Sequence[Name]) -> dict[Name, str]:
    """DuckDB, ClickHouse: reading a relation may run only what a preflight reading it may (its reach check:
    what its views, column expressions and dictionaries reach); a DuckDB database that redefines a built-in is
    read not at all (``left``, ``||``… are what a sample read calls)."""

    def query(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]

    if family == "duckdb":
        problem = duckdb_rules.shadow_problem(query)
        if problem is not None:
            return dict.fromkeys(relations, problem)
    out: dict[Name, str] = {}
    for name in relations:
        if family == "duckdb":
            quoted = ".".join('"' + p.replace('"', '""') + '"' for p in (name.schema, name.name) if p)
            problem = duckdb_rules.reach_problem(query, f"SELECT * FROM {quoted}")
        else:
            quoted = ".".join(
                "`" + p.replace("\\", "\\\\").replace("`", "\\`") + "`" for p in (name.schema, name.name) if p
            )
            problem = clickhouse_rules.reach_problem(query, f"SELECT * FROM {quoted}")
        if problem is not None:
            out[name] = problem
    return out


def _sqlite_view_definitions(conn: Connection) -> dict[str, str | None]:
    """The views of the SQLite database, by lower-cased name: their CREATE text (None: longer than is parsed)."""
    rows = conn.exec_driver_sql(
        "SELECT name, CASE WHEN length(sql) <= ? THEN sql END FROM main.sqlite_master WHERE type = 'view'",
        (sqlite_views.MAX_DEFINITION_CHARS,),
    ).fetchall()
    return {str(name).lower(): (str(sql) if sql is not None else None) for name, sql in rows}


def _read_only(conn: Connection) -> None:
    """Make the connection's (just begun) transaction read-only and time-boxed."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        use_own_search_path(conn)
        conn.exec_driver_sql(f"SELECT set_config('statement_timeout', '{SAMPLE_CHECK_TIMEOUT_MS}', true)")
    elif conn.dialect.name in _MYSQL_FAMILY:
        conn.exec_driver_sql("START TRANSACTION READ ONLY")


def sample_refusals(
    engine: Engine,
    gate: RoutineGate,
    relations: Sequence[Name],
    *,
    privileges: PrivilegeCheck | None = None,
) -> dict[Name, str]:
    """Return, per relation whose sample rows may not be read, why (blocking; its own read-only transaction).

    ``privileges`` is given when the profile requires a least-privilege role: while the role can do
    more, no relation may be read. Any failure refuses every relation (fail closed).
    """
    if not relations:
        return {}
    if privileges is not None:
        report = privileges.report(engine)
        if not report.least_privilege:
            why = "; ".join(report.problems) if report.checked else str(report.error)
            reason = f"the profile requires a least-privilege database role, but its role can: {why}"
            return dict.fromkeys(relations, reason)
    if not has_routine_policy(gate.dialect) and gate.dialect != "sqlite":
        return {}
    try:
        with engine.connect() as conn:
            _read_only(conn)
            problems = gate.relation_problems(conn, relations)
            conn.rollback()
    except SQLAlchemyError as exc:
        log.warning("Could not check which relations may be sampled: %s", type(exc).__name__)
        return dict.fromkeys(relations, f"the routine policy could not be checked ({type(exc).__name__})")
    return problems


#: Reads counted beyond this are as good as infinite (the bound is thousands).
_READS_CAP: Final = 10**12


def pg_written_reads(root: Any) -> Counter[Name]:
    """How many times the planner may read each relation the statement names: a name inside a common table
    expression counts once per reference to it (``WITH c AS NOT MATERIALIZED (…) … c a JOIN c b`` plans the body
    twice), through CTEs that reference CTEs; a recursive CTE's body counts twice. Iterative: deep trees are fine.
    """
    root_id = 0
    # (node, visible CTE names → definition id, id of the CTE body the node is in: 0 for the statement)
    stack: list[tuple[Any, dict[str, int], int]] = [(root, {}, root_id)]
    plain: list[tuple[int, Name]] = []  # (container, relation)
    refs: list[tuple[int, int]] = []  # (container, CTE referenced)
    recursive: set[int] = set()
    next_id = 1
    while stack:
        item, scope, container = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend((child, scope, container) for child in item)
            continue
        if not isinstance(item, pg_ast.Node):
            continue
        if isinstance(item, pg_ast.RangeVar) and item.relname:
            target = scope.get(item.relname) if not item.schemaname else None
            if target is None:
                plain.append((container, Name(item.schemaname or None, item.relname)))
            elif target != container:  # a recursive CTE's reference to itself: its body is counted twice
                refs.append((container, target))
            continue
        inner = scope
        if isinstance(item, pg_ast.SelectStmt) and item.withClause is not None:
            inner = dict(scope)
            ctes = [c for c in item.withClause.ctes or () if isinstance(c, pg_ast.CommonTableExpr)]
            ids = []
            for definition in ctes:
                inner[definition.ctename or ""] = next_id
                ids.append(next_id)
                if item.withClause.recursive:
                    recursive.add(next_id)
                next_id += 1
            for definition, cte_id in zip(ctes, ids, strict=True):
                stack.append((definition.ctequery, inner, cte_id))
        for attribute in item:
            if attribute == "withClause" and inner is not scope:
                continue
            value = getattr(item, attribute, None)
            if isinstance(value, pg_ast.Node | tuple | list):
                stack.append((value, inner, container))
    # how many times each CTE body is planned: the sum over its references of their container's count
    referrers: dict[int, list[int]] = {}
    for container, cte in refs:
        referrers.setdefault(cte, []).append(container)
    times: dict[int, int] = {root_id: 1}

    def planned(cte: int) -> int:
        pending = [cte]
        while pending:
            top = pending[-1]
            waiting = [c for c in referrers.get(top, ()) if c not in times and c != top]
            if waiting:
                pending.extend(c for c in waiting if c not in pending)
                continue
            pending.pop()
            total = sum(times.get(c, 0) for c in referrers.get(top, ()) if c != top)
            times[top] = min(_READS_CAP, total * (2 if top in recursive else 1))
        return times[cte]

    counts: Counter[Name] = Counter()
    for container, name in plain:
        counts[name] = min(_READS_CAP, counts[name] + (1 if container == root_id else planned(container)))
    return counts
