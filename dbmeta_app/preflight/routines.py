"""The routine policy: may a preflight query reach only routines known to be free of side effects?

Pure: no I/O. ``preflight/catalog_postgres.py`` and ``preflight/catalog_mysql.py`` read what this module judges (a
cached catalog, plus a few live facts read in the EXPLAIN's own transaction); ``preflight/policy.py`` ties them.

Why it exists: a database evaluates routines while *planning*. PostgreSQL folds STABLE and IMMUTABLE
functions called with constants (and runs operator functions on statistics while estimating selectivity);
MariaDB evaluates DETERMINISTIC stored functions while optimising. A read-only, rolled-back transaction
does not undo what such a routine does outside it (a dblink write, a terminated backend, a file, reset
statistics). Declared volatility is a claim the routine's author makes, so it is never trusted.

What is trusted:

- PostgreSQL: built-ins (oid below 16384, the first oid initdb leaves to users) except the guard's deny
  list; C, internal and SQL functions owned by a superuser that belong to an extension of
  ``TRUSTED_EXTENSIONS`` (minus ``EXTENSION_DENIED``); and whatever the profile allow-lists
  (``preflight.allow_functions``). Everything else a query reaches is refused: by name (overloads and
  the search path resolved conservatively: an untrusted overload counts unless it is provably not
  chosen), through an operator (its function, estimators, commutator and negator, transitively) or a cast
  whose function is untrusted, through what the planner takes from a type the query's values can have (the
  btree/hash operator families on it; a range's subtype_diff, canonical function and subtype operator
  class; built-in types always count as had), or attached to a relation the
  query reads and evaluated by the planner (a view's rule, recursively; index expressions and
  predicates; CHECK constraints; row-level-security policies; extended statistics; partition keys;
  operator classes of indexes; foreign-data-wrapper and access-method handlers; all of these for
  inheritance children and partitions too). Column defaults and triggers are not evaluated by a SELECT's
  plan and do not count.
- MySQL/MariaDB: built-in functions; every stored function and loadable UDF (``mysql.func``; when the
  service may not read it, a name that is not a built-in of the server is treated as a UDF) is refused
  unless allow-listed, also when a view reaches it (view definitions are parsed, recursively).
- SQLite: nothing to check. User functions exist only in the connection that registered them, and the
  service registers none; the dangerous built-ins (load_extension, readfile, ...) are refused by the guard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dbmeta_app.config import parse_routine_entry
from dbmeta_app.preflight.budget import DatabaseCalls
from dbmeta_app.preflight.dialects.mysql import SYSTEM_SCHEMAS
from dbmeta_app.preflight.guard import is_denied_function
from dbmeta_app.preflight.reach import IMPLICIT_OPERATORS, Name, Reach

__all__ = [
    "EXTENSION_DENIED",
    "EXTENSION_DENIED_SYMBOLS",
    "EXTENSION_MODULES",
    "FIRST_USER_OID",
    "MAX_PROBLEMS",
    "TRUSTED_EXTENSIONS",
    "TRUSTED_LANGUAGES",
    "AllowList",
    "MyCatalog",
    "MyLive",
    "MyView",
    "PgCast",
    "PgCatalog",
    "PgHit",
    "PgLive",
    "PgOperator",
    "PgRelation",
    "PgRoutine",
    "extension_modules",
    "judge_mysql",
    "judge_postgres",
    "mysql_relation_problems",
    "mysql_view_outputs",
    "postgres_planned_relations",
    "postgres_relation_problems",
    "postgres_view_outputs",
]

#: PostgreSQL's FirstNormalObjectId: every object initdb did not create has an oid at least this.
FIRST_USER_OID: Final = 16384

#: Extensions whose C, internal and SQL functions are pure computations on their arguments (types,
#: operators, index support, text search helpers). Not here on purpose: dblink and postgres_fdw (reach
#: other servers), file_fdw and adminpack (server files), tablefunc (runs SQL text), pg_stat_statements,
#: pg_prewarm, pageinspect, lo, xml2 and the like (state, files or superuser-only internals).
TRUSTED_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        "bloom",
        "btree_gin",
        "btree_gist",
        "citext",
        "cube",
        "earthdistance",
        "fuzzystrmatch",
        "hstore",
        "intarray",
        "isn",
        "ltree",
        "pg_trgm",
        "pgcrypto",
        "postgis",
        "seg",
        "tsm_system_rows",
        "tsm_system_time",
        "unaccent",
        "uuid-ossp",
        "vector",
    }
)
#: Functions of trusted extensions that change session state (a setting that would outlive the preflight).
EXTENSION_DENIED: Final[Mapping[str, frozenset[str]]] = {
    "pg_trgm": frozenset({"set_limit"}),
    "isn": frozenset({"isn_weak"}),
}
#: The same exclusions by C symbol (``pg_proc.prosrc``): a member created under another name that runs one of
#: them (``CREATE FUNCTION lim(real) … AS '$libdir/pg_trgm', 'set_limit'``) is excluded too.
EXTENSION_DENIED_SYMBOLS: Final[Mapping[str, frozenset[str]]] = {
    "pg_trgm": frozenset({"set_limit"}),
    "isn": frozenset({"accept_weak_input", "weak_input_status"}),
}
#: The library (``pg_proc.probin``) of each trusted extension's C functions: a C member of the extension is
#: trusted only when it is a symbol of the extension's own module (``$libdir/dblink`` attached to pg_trgm is
#: not). Extensions not listed here use ``$libdir/<name>``.
EXTENSION_MODULES: Final[Mapping[str, frozenset[str]]] = {
    "intarray": frozenset({"$libdir/_int"}),
    "postgis": frozenset({"$libdir/postgis-3"}),
}
#: Languages of extension functions that are trusted (a PL/pgSQL function can do anything). Each is judged
#: by what it runs, never by its membership alone: a C function by its library and symbol, an internal one
#: as the built-in its symbol names, a SQL one by what its body calls (catalog_postgres).
TRUSTED_LANGUAGES: Final = frozenset({"c", "internal", "sql"})


def extension_modules(extension: str) -> frozenset[str]:
    """The libraries (``probin``) whose symbols a trusted extension's C functions may run."""
    return EXTENSION_MODULES.get(extension, frozenset({f"$libdir/{extension}"}))


#: A verdict names at most this many problems.
MAX_PROBLEMS: Final = 3


@dataclass(frozen=True, slots=True)
class AllowList:
    """The routines a profile allow-lists: exact ``schema.name`` entries and whole ``schema.*`` schemas."""

    names: frozenset[tuple[str, str]] = frozenset()
    schemas: frozenset[str] = frozenset()
    fold_case: bool = False  # MySQL: routine names are case-insensitive

    @classmethod
    def parse(cls, entries: Iterable[str], *, fold_case: bool = False) -> AllowList:
        """Build an allow-list from validated ``preflight.allow_functions`` entries."""
        names: set[tuple[str, str]] = set()
        schemas: set[str] = set()
        for entry in entries:
            schema, name = parse_routine_entry(entry)
            if name == "*":
                schemas.add(schema)
            else:
                names.add((schema, name.lower() if fold_case else name))
        return cls(frozenset(names), frozenset(schemas), fold_case)

    def permits(self, schema: str, name: str) -> bool:
        """Tell whether the routine ``schema.name`` is allow-listed."""
        if schema in self.schemas:
            return True
        return (schema, name.lower() if self.fold_case else name) in self.names


# --- PostgreSQL ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgRoutine:
    """A function a query could reach that is not trusted unless allow-listed."""

    oid: int
    schema: str
    name: str
    signature: str  # schema.name(argument types), for messages
    args: tuple[int, ...]
    returns: int
    reason: str  # why it is not trusted
    denied: bool = False  # on the deny list: an allow-list entry cannot admit it
    builtin_name: bool = False  # a built-in function has this name (the call may resolve to it)
    builtin_twin: bool = False  # a built-in has this name and these argument types (hidden behind it)


@dataclass(frozen=True, slots=True)
class PgOperator:
    """A user-defined operator (its function, or its selectivity estimators', may be untrusted)."""

    oid: int
    schema: str
    symbol: str
    left: int  # 0 for a prefix operator
    right: int
    procs: tuple[int, ...]  # its function and estimators, then those of its commutator/negator (transitively)
    signature: str
    builtin_name: bool = False
    builtin_twin: bool = False
    paths: tuple[str, ...] = ()  # per proc: how it is reached ("" its own; "commutator s.>(a, b) → ")
    #: the functions (schema, name) it folds constants with: its own, its commutator's and negator's
    runs: tuple[tuple[str, str], ...] = ()
    run_oids: tuple[int, ...] = ()  # their oids

    def path(self, proc: int) -> str:
        """How the planner reaches ``proc`` from this operator ("" for its own function or estimators)."""
        index = self.procs.index(proc)
        return self.paths[index] if index < len(self.paths) else ""


@dataclass(frozen=True, slots=True)
class PgCast:
    """A user-defined cast with a function."""

    source: int
    target: int
    context: str  # e explicit, a assignment, i implicit
    proc: int
    signature: str
    target_schema: str = ""  # the target type's schema and name (pg_type.typname), as a cast in SQL names it
    target_type: str = ""
    runs: tuple[str, str] = ("", "")  # its function (schema, name)


@dataclass(frozen=True, slots=True)
class PgHit:
    """Something the planner evaluates for a relation (or a domain), and the routine it calls."""

    via: str  # e.g. "index s.t_idx", "check constraint c1", "policy p"; "" for a view's own definition
    proc: int = 0
    operator: int = 0


@dataclass(frozen=True, slots=True)
class PgRelation:
    """A relation that has something the planner evaluates, reads, or expands to."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind
    hits: tuple[PgHit, ...] = ()
    reads: tuple[int, ...] = ()  # a view: the relations its rule reads
    #: a view: how many times its rule reads each of ``reads`` (same order; a self-join reads one twice);
    #: empty means once each
    read_times: tuple[int, ...] = ()
    children: tuple[int, ...] = ()  # inheritance children and partitions
    constant_bytes: int = 0  # a view: what its definition's constants make the planner build (budget.py)
    outputs: tuple[tuple[str, Any], ...] = ()  # a view: its constant columns (name, budget.Constant)
    problem: str = ""  # why reading it is refused whatever it calls (a view the service could not parse)


@dataclass(frozen=True, slots=True)
class PgCatalog:
    """The catalog facts the policy needs, valid while the definitions fingerprint stays the same."""

    fingerprint: str
    routines: Mapping[int, PgRoutine]
    operators: Mapping[int, PgOperator]
    casts: tuple[PgCast, ...]
    relations: Mapping[int, PgRelation]
    user_types: frozenset[int]  # created by a user in this database (not built in, not an extension's)
    domain_hits: Mapping[int, tuple[PgHit, ...]]  # domain type → its CHECK constraints' calls
    type_names: Mapping[int, str]
    routines_by_name: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    operators_by_symbol: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: type → what the planner calls for any value of it (btree/hash operator families on it, a range's
    #: subtype_diff, canonical function and subtype operator class) that reaches an untrusted routine
    type_hits: Mapping[int, tuple[PgHit, ...]] = field(default_factory=dict)
    #: False when some views were not measured in the time one read may take: read again on the next check
    complete: bool = True
    #: name → the trusted SQL and internal members of trusted extensions with the name of a function the budget
    #: sizes by name (a built-in's, a reviewed extension function's): what they build is their body's or
    #: symbol's, so a call that may resolve to one is of unknown size on constants (``policy.RoutineGate``)
    namesakes: Mapping[str, tuple[PgRoutine, ...]] = field(default_factory=dict)
    #: symbol → the user's operators, and the user's casts, whose function (or commutator's, negator's) is not sized
    #: as its arguments (``repeat``, a namesake, a member under another name): folding one of constants is a call of
    #: that function, sized as such (``budget.DatabaseCalls``)
    folded_operators: Mapping[str, tuple[PgOperator, ...]] = field(default_factory=dict)
    folded_casts: tuple[PgCast, ...] = ()
    #: trusted members that build more than a fixed multiple of their arguments: refused where the planner calls
    #: them on values the query does not show (``type_hits``: statistics, sorting, hashing), where nothing is sized
    heavy: Mapping[int, PgRoutine] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        fingerprint: str,
        routines: Iterable[PgRoutine],
        operators: Iterable[PgOperator],
        casts: Iterable[PgCast],
        relations: Iterable[PgRelation],
        user_types: Iterable[int],
        domain_hits: Mapping[int, tuple[PgHit, ...]],
        type_names: Mapping[int, str],
        type_hits: Mapping[int, tuple[PgHit, ...]] | None = None,
        complete: bool = True,
        namesakes: Iterable[PgRoutine] = (),
        folded_operators: Iterable[PgOperator] = (),
        folded_casts: Iterable[PgCast] = (),
        heavy: Iterable[PgRoutine] = (),
    ) -> PgCatalog:
        """Index the facts by name and symbol."""
        routine_map = {r.oid: r for r in routines}
        operator_map = {o.oid: o for o in operators}
        by_name: dict[str, list[int]] = {}
        for routine in routine_map.values():
            by_name.setdefault(routine.name, []).append(routine.oid)
        by_symbol: dict[str, list[int]] = {}
        for operator in operator_map.values():
            by_symbol.setdefault(operator.symbol, []).append(operator.oid)
        folded_by_symbol: dict[str, list[PgOperator]] = {}
        for operator in folded_operators:
            folded_by_symbol.setdefault(operator.symbol, []).append(operator)
        namesakes_by_name: dict[str, list[PgRoutine]] = {}
        for routine in namesakes:
            namesakes_by_name.setdefault(routine.name.lower(), []).append(routine)
        return cls(
            fingerprint=fingerprint,
            routines=routine_map,
            operators=operator_map,
            casts=tuple(casts),
            relations={r.oid: r for r in relations},
            user_types=frozenset(user_types),
            domain_hits=dict(domain_hits),
            type_names=dict(type_names),
            routines_by_name={k: tuple(v) for k, v in by_name.items()},
            operators_by_symbol={k: tuple(v) for k, v in by_symbol.items()},
            type_hits=dict(type_hits or {}),
            complete=complete,
            namesakes={k: tuple(v) for k, v in namesakes_by_name.items()},
            folded_operators={k: tuple(v) for k, v in folded_by_symbol.items()},
            folded_casts=tuple(folded_casts),
            heavy={r.oid: r for r in heavy},
        )


@dataclass(frozen=True, slots=True)
class PgLive:
    """Facts read in the EXPLAIN's own transaction (never cached)."""

    fingerprint: str
    search_path: tuple[str, ...]  # current_schemas(true): the effective path, pg_catalog included
    relations: tuple[int | None, ...]  # Reach.relations resolved (None: no such relation)
    universe: frozenset[int]  # types the query's values can have (columns, row types, cast targets, ...)
    cast_targets: frozenset[int]  # types cast to, with their base and element types
    columns: frozenset[str]  # Reach.attributes that are columns of a relation read


_ROUTINES = "routines that are not known to be free of side effects"
_DEFINITIONS = "definitions that would make the planner build too much or read what a preflight may not"


@dataclass
class _Judge:
    """Collect the problems of one query, in a fixed order, up to MAX_PROBLEMS.

    A problem is a routine the planner would run, or (``routine=False``) a definition that would make it
    build too much (a view's constants) or read a system schema: the verdict's header says which.
    """

    problems: list[str] = field(default_factory=list)
    routines: int = 0

    def add(self, problem: str, *, routine: bool = True) -> None:
        if problem not in self.problems and not self.full:
            self.problems.append(problem)
            self.routines += routine

    @property
    def full(self) -> bool:
        return len(self.problems) >= MAX_PROBLEMS

    def verdict(self) -> str | None:
        if not self.problems:
            return None
        if self.routines == len(self.problems):
            reached = _ROUTINES
        elif self.routines:
            reached = f"{_ROUTINES}, and {_DEFINITIONS}"
        else:
            reached = _DEFINITIONS
        return f"the query reaches {reached}: " + "; ".join(self.problems)


class _Constants:
    """The constants the views a query expands make the planner build, summed against a bound (budget.py)."""

    def __init__(self, bound: int | None) -> None:
        self.bound = bound
        self.total = 0

    def add(self, judge: _Judge, here: str, constant_bytes: int) -> None:
        if self.bound is None or not constant_bytes or self.total > self.bound:
            return
        self.total += constant_bytes
        if self.total > self.bound:
            judge.add(
                f"{here}its definition's constants (with the other relations read) would make the planner build "
                f"{self.total:,} bytes, over preflight.max_constant_bytes ({self.bound:,})",
                routine=False,
            )


def _pg_routine_ok(catalog: PgCatalog, allow: AllowList, oid: int) -> bool:
    routine = catalog.routines.get(oid)
    return routine is None or (not routine.denied and allow.permits(routine.schema, routine.name))


def _pg_routine_text(routine: PgRoutine) -> str:
    if routine.denied:
        return f"function {routine.signature} ({routine.reason})"
    return f"function {routine.signature} ({routine.reason}; not in the profile's preflight.allow_functions)"


def _pg_hidden(schema: str, path: Sequence[str]) -> bool:
    """Tell whether pg_catalog comes before `schema` in the path (an exact twin there wins)."""
    return "pg_catalog" in path and schema in path and path.index("pg_catalog") < path.index(schema)


def pg_calls(catalog: PgCatalog, live: PgLive) -> DatabaseCalls:
    """What a statement's calls, operators and casts of constants may run in this database (``DatabaseCalls``):
    resolved like PostgreSQL does, by name or symbol in the schema the statement names, or, unqualified, in a
    schema of the search path where no built-in of the same arguments hides it; casts by their target type's name.
    """
    visible = _pg_visible(live.search_path)

    def seen(schema: str, owner: str, hidden: bool) -> bool:
        if schema:
            return owner.lower() == schema
        return owner in visible and not (hidden and _pg_hidden(owner, live.search_path))

    def namesake(schema: str, name: str) -> bool:
        return any(seen(schema, r.schema, r.builtin_twin) for r in catalog.namesakes.get(name, ()))

    def operator(schema: str, symbol: str) -> list[tuple[str, str]]:
        return [
            runs
            for o in catalog.folded_operators.get(symbol, ())
            if seen(schema, o.schema, o.builtin_twin)
            for runs in o.runs
        ]

    def cast(schema: str, type_name: str) -> list[tuple[str, str]]:
        return [
            c.runs
            for c in catalog.folded_casts
            if c.target_type.lower() == type_name and (not schema or c.target_schema.lower() == schema)
        ]

    implicit = next(
        (
            f"{c.signature}, which calls {c.runs[0]}.{c.runs[1]}() (an implicit cast: PostgreSQL applies it to a "
            "call's or an operator's arguments unasked)"
            for c in catalog.folded_casts
            if c.context == "i" and (c.source < FIRST_USER_OID or c.source in live.universe)
        ),
        "",
    )
    return DatabaseCalls(namesake, operator, cast, implicit)


def _pg_visible(path: Sequence[str]) -> tuple[str, ...]:
    # Functions and operators are never looked up in the temporary schema.
    return tuple(schema for schema in path if not schema.startswith("pg_temp"))


def judge_postgres(
    reach: Reach, catalog: PgCatalog, live: PgLive, allow: AllowList, *, max_constant_bytes: int | None = None
) -> str | None:
    """Return why a query reaches an untrusted routine (naming it and the path to it), or the views it reads
    fold more than ``max_constant_bytes`` of constants; None when neither."""
    judge = _Judge()
    visible = _pg_visible(live.search_path)
    universe = set(live.universe)
    # Values of an allow-listed function's argument and result types can appear in the query.
    for name in reach.functions:
        for oid in catalog.routines_by_name.get(name.name, ()):
            routine = catalog.routines[oid]
            if _pg_routine_ok(catalog, allow, oid) and (routine.schema == name.schema or not name.schema):
                universe.update((routine.returns, *routine.args))

    def absent(type_oid: int) -> bool:
        """A user type that no value in the query can have."""
        return type_oid in catalog.user_types and type_oid not in universe

    _pg_relations(judge, catalog, live.relations, allow, max_constant_bytes)
    for name in reach.functions:
        for routine in _pg_candidates(catalog, name, visible):
            if _pg_routine_ok(catalog, allow, routine.oid):
                continue
            if name.schema is None and routine.builtin_twin and _pg_hidden(routine.schema, live.search_path):
                continue
            # A built-in overload exists and this one needs a value of a type the query cannot produce.
            if name.schema is None and routine.builtin_name and any(absent(arg) for arg in routine.args):
                continue
            judge.add(_pg_routine_text(routine))
    for attribute in reach.attributes:
        if attribute in live.columns or attribute in reach.aliases:
            continue
        for routine in _pg_candidates(catalog, Name(None, attribute), visible):
            if len(routine.args) != 1 or _pg_routine_ok(catalog, allow, routine.oid):
                continue
            if absent(routine.args[0]) or (
                routine.builtin_twin and _pg_hidden(routine.schema, live.search_path)
            ):
                continue
            judge.add(_pg_routine_text(routine) + f", called with attribute notation (x.{attribute})")
    explicit = set(reach.operators)
    for name in (*reach.operators, *(Name(None, symbol) for symbol in IMPLICIT_OPERATORS)):
        for operator in _pg_operator_candidates(catalog, name, visible):
            problem = _pg_operator_problem(catalog, operator, allow)
            if problem is None:
                continue
            if name.schema is None:
                if operator.builtin_twin and _pg_hidden(operator.schema, live.search_path):
                    continue
                only_untrusted = name in explicit and not operator.builtin_name
                if not only_untrusted and any(absent(t) for t in (operator.left, operator.right) if t):
                    continue
            judge.add(problem)
    for cast in catalog.casts:
        if _pg_routine_ok(catalog, allow, cast.proc) or absent(cast.source):
            continue
        explicit_cast = cast.target in live.cast_targets
        implicit_cast = cast.context in ("i", "a") and not absent(cast.target)
        if explicit_cast or implicit_cast:
            judge.add(f"{cast.signature} → " + _pg_routine_text(catalog.routines[cast.proc]))
    # A domain's CHECK runs wherever a value is coerced to it, and a query coerces without naming the domain: a
    # literal takes a column's type through an array, a composite's attribute or a range's bound (ARRAY[qty] =
    # '{7}', COALESCE(p, '(8,1)'), UNION ALL SELECT '(12,1)', r = '[21,30)'). So every domain the query's values
    # can have counts, not only the casts it writes.
    for type_oid in sorted(universe | live.cast_targets):
        for hit in catalog.domain_hits.get(type_oid, ()):
            problem = _pg_hit_problem(catalog, hit, allow)
            if problem is not None:
                how = "cast to domain" if type_oid in live.cast_targets else "domain"
                judge.add(f"{how} {catalog.type_names.get(type_oid, type_oid)} → {problem}")
    # What the planner calls for values of a type: any value of a built-in type may appear (a literal, a
    # function's result), a user type's only when the query can produce it.
    # The user's types the query has first (the more telling path), then the built-in ones; one per type.
    for type_oid in sorted(catalog.type_hits, key=lambda oid: (oid < FIRST_USER_OID, oid)):
        if type_oid >= FIRST_USER_OID and type_oid not in universe:
            continue
        for hit in catalog.type_hits[type_oid]:
            problem = _pg_hit_problem(catalog, hit, allow) or _pg_heavy_problem(catalog, hit, allow)
            if problem is not None:
                judge.add(f"type {catalog.type_names.get(type_oid, type_oid)} → {problem}")
                break
    return judge.verdict()


def _pg_operator_problem(catalog: PgCatalog, operator: PgOperator, allow: AllowList) -> str | None:
    """Describe an operator that reaches an untrusted routine (by itself, its commutator or negator), or None."""
    bad = [oid for oid in operator.procs if not _pg_routine_ok(catalog, allow, oid)]
    if not bad:
        return None
    return f"operator {operator.signature} → {operator.path(bad[0])}" + _pg_routine_text(
        catalog.routines[bad[0]]
    )


def _pg_candidates(catalog: PgCatalog, name: Name, visible: Sequence[str]) -> list[PgRoutine]:
    routines = (catalog.routines[oid] for oid in catalog.routines_by_name.get(name.name, ()))
    if name.schema is not None:
        return [r for r in routines if r.schema == name.schema]
    return [r for r in routines if r.schema in visible]


def _pg_operator_candidates(catalog: PgCatalog, name: Name, visible: Sequence[str]) -> list[PgOperator]:
    operators = (catalog.operators[oid] for oid in catalog.operators_by_symbol.get(name.name, ()))
    if name.schema is not None:
        return [o for o in operators if o.schema == name.schema]
    return [o for o in operators if o.schema in visible]


def _pg_hit_problem(catalog: PgCatalog, hit: PgHit, allow: AllowList) -> str | None:
    """Describe a hit whose routine is untrusted, or None."""
    via = f"{hit.via} → " if hit.via else ""  # a view's own definition needs no label
    if hit.proc and not _pg_routine_ok(catalog, allow, hit.proc):
        return via + _pg_routine_text(catalog.routines[hit.proc])
    if hit.operator:
        operator = catalog.operators.get(hit.operator)
        if operator is not None:
            problem = _pg_operator_problem(catalog, operator, allow)
            if problem is not None:
                return via + problem
    return None


def _pg_heavy_problem(catalog: PgCatalog, hit: PgHit, allow: AllowList) -> str | None:
    """Describe a hit the planner calls on values it does not show whose routine, or operator's function, builds more
    than a fixed multiple of its arguments (``PgCatalog.heavy``, ``folded_operators``), unless allow-listed; or None."""
    via = f"{hit.via} → " if hit.via else ""
    routine = catalog.heavy.get(hit.proc) if hit.proc else None
    if routine is not None and not allow.permits(routine.schema, routine.name):
        return via + _pg_routine_text(routine)
    for operators in catalog.folded_operators.values():
        for operator in operators:
            if hit.operator and operator.oid == hit.operator:
                schema, name = operator.runs[0]
                if not allow.permits(schema, name):
                    return (
                        f"{via}operator {operator.signature} → function {schema}.{name}(), which builds more than a "
                        "fixed multiple of its arguments, on values the query does not show"
                    )
    return None


_PG_KINDS: Final = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}


def postgres_relation_problems(
    catalog: PgCatalog,
    relations: Iterable[int | None],
    allow: AllowList,
    *,
    max_constant_bytes: int | None = None,
) -> list[str]:
    """Return why reading these relations reaches untrusted routines (at most MAX_PROBLEMS), or [];
    or why the views they expand fold more than ``max_constant_bytes`` of constants together."""
    judge = _Judge()
    _pg_relations(judge, catalog, relations, allow, max_constant_bytes)
    return judge.problems


def _pg_relations(
    judge: _Judge,
    catalog: PgCatalog,
    relations: Iterable[int | None],
    allow: AllowList,
    max_constant_bytes: int | None,
) -> None:
    """Add to ``judge`` what reading these relations reaches (views expanded, children read)."""
    constants = _Constants(max_constant_bytes)
    queue: deque[tuple[int, str]] = deque((oid, "") for oid in relations if oid is not None)
    seen: set[int] = set()
    while queue and not judge.full:
        oid, path = queue.popleft()
        if oid in seen:
            continue
        seen.add(oid)
        relation = catalog.relations.get(oid)
        if relation is None:
            continue  # nothing evaluated at plan time, and nothing to expand
        here = f"{path}{_PG_KINDS.get(relation.kind, 'relation')} {relation.schema}.{relation.name} → "
        constants.add(judge, here, relation.constant_bytes)
        if relation.problem:
            judge.add(here + relation.problem)
        for hit in relation.hits:
            problem = _pg_hit_problem(catalog, hit, allow)
            if problem is not None:
                judge.add(here + problem)
        # A view is expanded into the query (a materialized view is read like a table).
        if relation.kind == "v":
            queue.extend((child, here) for child in relation.reads)
        queue.extend((child, here) for child in relation.children)


def postgres_view_outputs(catalog: PgCatalog, relations: Iterable[int | None]) -> list[Mapping[str, Any]]:
    """The constant columns of the views these relations expand to (transitively), one mapping per view."""
    out: list[Mapping[str, Any]] = []
    queue: deque[int] = deque(oid for oid in relations if oid is not None)
    seen: set[int] = set()
    while queue:
        oid = queue.popleft()
        relation = catalog.relations.get(oid)
        if oid in seen or relation is None:
            continue
        seen.add(oid)
        if relation.kind == "v":
            out.append(dict(relation.outputs))
            queue.extend(relation.reads)
    return out


def postgres_planned_relations(catalog: PgCatalog, references: Mapping[int, int]) -> int:
    """How many relations the planner opens for these references (relation oid → times the query reads it):
    each with its partitions and inheritance children (transitively), a view with what it reads, each read
    as many times as its definition reads it (a view joining another view to itself opens it twice:
    multiplied through a chain of views; each relation's size is computed once)."""
    sizes: dict[int, int] = {}

    def size(oid: int) -> int:
        # iterative post-order over children / view reads; a cycle (impossible in a real catalog) counts once
        stack: list[tuple[int, bool]] = [(oid, False)]
        active: set[int] = set()
        while stack:
            here, expanded = stack.pop()
            if here in sizes:
                continue
            relation = catalog.relations.get(here)
            below = () if relation is None else relation.reads if relation.kind == "v" else relation.children
            if expanded:
                times: Sequence[int] = (
                    relation.read_times
                    if relation is not None
                    and relation.kind == "v"
                    and len(relation.read_times) == len(below)
                    else (1,) * len(below)
                )
                sizes[here] = min(
                    _PLANNED_CAP, 1 + sum(t * sizes.get(b, 1) for b, t in zip(below, times, strict=True))
                )
                active.discard(here)
            elif here not in active:
                active.add(here)
                stack.append((here, True))
                stack.extend((b, False) for b in below if b not in sizes and b not in active)
        return sizes[oid]

    return min(_PLANNED_CAP, sum(count * size(oid) for oid, count in references.items()))


_PLANNED_CAP: Final = 10**12


# --- MySQL / MariaDB -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MyView:
    """A view: what its definition calls and reads (None: the definition is hidden from the service)."""

    schema: str
    name: str
    functions: tuple[Name, ...] | None
    relations: tuple[Name, ...] = ()
    constant_bytes: int = 0  # what its definition's constants make the optimiser build (budget.py)
    outputs: tuple[tuple[str, Any], ...] = ()  # its constant columns (name, budget.Constant)
    problem: str = ""  # why reading it is refused unchecked (a definition too large or deep to parse)


@dataclass(frozen=True, slots=True)
class MyCatalog:
    """Stored functions, UDFs and views, valid while the definitions fingerprint stays the same."""

    fingerprint: str
    functions: Mapping[tuple[str, str], str]  # (schema, lower-case name) → "schema.name"
    udfs: frozenset[str] | None  # lower-case names; None when mysql.func is not readable
    keywords: frozenset[str]  # upper-case words the server's grammar knows (not callable as UDFs)
    builtins: frozenset[str]  # upper-case built-in function names (resolved before UDFs and stored ones)
    builtins_quoted: frozenset[str]  # those resolved as built-ins even when written in backquotes
    views: Mapping[tuple[str, str], MyView]
    fold_table_case: bool = False  # lower_case_table_names != 0


@dataclass(frozen=True, slots=True)
class MyLive:
    """Facts read in the EXPLAIN's own transaction (never cached)."""

    fingerprint: str
    database: str | None  # DATABASE(): where unqualified names are looked up


def _my_key(catalog: MyCatalog, schema: str, name: str) -> tuple[str, str]:
    return (schema.lower(), name.lower()) if catalog.fold_table_case else (schema, name)


def _my_function_problem(
    catalog: MyCatalog, name: Name, database: str | None, allow: AllowList
) -> str | None:
    word = name.name.upper()
    if name.schema is None and word in (catalog.builtins_quoted if name.quoted else catalog.builtins):
        return None  # the server resolves a built-in before any UDF or stored function
    schema = name.schema or database
    if schema is not None:
        stored = catalog.functions.get((schema, name.name.lower()))
        if stored is not None:
            if allow.permits(schema, name.name):
                return None
            return f"stored function {stored}() (not in the profile's preflight.allow_functions)"
    if name.schema is not None:
        # A qualified name is never a built-in. Not a stored function of that schema: a routine of a MariaDB
        # package (db.pkg.fn, pkg.fn), which the catalog of functions does not list, or nothing at all.
        if allow.permits(name.schema, name.name):
            return None
        return (
            f"{name.schema}.{name.name}() is not a stored function the service knows (a package routine, "
            "or none at all), so what it runs cannot be checked"
        )
    lowered = name.name.lower()
    if catalog.udfs is not None:
        if lowered in catalog.udfs and not allow.permits("udf", lowered):
            return f"loadable function (UDF) {lowered}() (not in the profile's preflight.allow_functions)"
        return None
    if word in catalog.keywords and not name.quoted:
        return None  # grammar, not a call: IN (...), VALUES (...), OVER (...)
    if allow.permits("udf", lowered):
        return None
    return (
        f"function {name.name}() is not a built-in of this server and may be a loadable UDF "
        "(the service cannot read mysql.func to tell; see docs/SECURITY.md)"
    )


def judge_mysql(
    reach: Reach, catalog: MyCatalog, live: MyLive, allow: AllowList, *, max_constant_bytes: int | None = None
) -> str | None:
    """Return why a query reaches a stored function or UDF (naming it and the path to it), or the views it
    reads fold more than ``max_constant_bytes`` of constants; None when neither."""
    judge = _Judge()
    for name in reach.functions:
        problem = _my_function_problem(catalog, name, live.database, allow)
        if problem is not None:
            judge.add(problem)
    _my_relations(judge, catalog, reach.relations, live.database, allow, max_constant_bytes)
    return judge.verdict()


def _my_reached(
    catalog: MyCatalog, relations: Iterable[Name], database: str | None
) -> Iterator[tuple[str, Name, MyView | None]]:
    """Each relation these relations reach, once, through views (transitively): its schema, its name and its view
    (None: a table, or a name that is not a view)."""
    queue: deque[tuple[Name, str | None]] = deque((name, database) for name in relations)
    seen: set[tuple[str, str]] = set()
    while queue:
        name, default_schema = queue.popleft()
        schema = name.schema or default_schema
        if schema is None:
            continue
        key = _my_key(catalog, schema, name.name)
        if key in seen:
            continue
        seen.add(key)
        view = catalog.views.get(key)
        yield schema, name, view
        if view is not None:
            queue.extend((relation, view.schema) for relation in view.relations)


def mysql_view_outputs(
    catalog: MyCatalog, relations: Iterable[Name], database: str | None
) -> list[Mapping[str, Any]]:
    """The constant columns of the views these relations expand to (transitively), one mapping per view."""
    return [
        dict(view.outputs) for _, _, view in _my_reached(catalog, relations, database) if view is not None
    ]


def mysql_base_tables(
    catalog: MyCatalog, relations: Iterable[Name], database: str | None
) -> list[tuple[str, str]]:
    """The (schema, name) of the tables these relations read, through views (transitively)."""
    return [
        (schema, name.name)
        for schema, name, view in _my_reached(catalog, relations, database)
        if view is None
    ]


def mysql_relation_problems(
    catalog: MyCatalog,
    relations: Iterable[Name],
    database: str | None,
    allow: AllowList,
    *,
    max_constant_bytes: int | None = None,
) -> list[str]:
    """Return why reading these relations reaches stored functions or UDFs (through views), or []; or why the
    views they expand fold more than ``max_constant_bytes`` of constants together."""
    judge = _Judge()
    _my_relations(judge, catalog, relations, database, allow, max_constant_bytes)
    return judge.problems


def _my_relations(
    judge: _Judge,
    catalog: MyCatalog,
    relations: Iterable[Name],
    database: str | None,
    allow: AllowList,
    max_constant_bytes: int | None,
) -> None:
    """Add to ``judge`` what reading these relations reaches (views expanded)."""
    constants = _Constants(max_constant_bytes)
    queue: deque[tuple[Name, str | None, str]] = deque((name, database, "") for name in relations)
    seen: set[tuple[str, str]] = set()
    while queue and not judge.full:
        name, default_schema, path = queue.popleft()
        schema = name.schema or default_schema
        if schema is None:
            continue
        if path and schema.lower() in SYSTEM_SCHEMAS:  # the caller's own names: the guard refused them
            judge.add(
                f"{path}it reads {schema}.{name.name}, in the server's system schema {schema.lower()}",
                routine=False,
            )
            continue
        key = _my_key(catalog, schema, name.name)
        if key in seen:
            continue
        seen.add(key)
        view = catalog.views.get(key)
        if view is None:
            continue  # a base table: MySQL evaluates no stored routine to plan reading one
        here = f"{path}view {view.schema}.{view.name} → "
        if view.problem:
            judge.add(here + view.problem)
            continue
        constants.add(judge, here, view.constant_bytes)
        if view.functions is None:
            judge.add(
                f"{here}its definition is hidden from the service's database user, so what it calls "
                "cannot be checked (grant SHOW VIEW; see docs/SECURITY.md)"
            )
            continue
        for function in view.functions:
            if function.schema is None and is_denied_function(function.name, "mysql"):
                # planning a view evaluates its constant expressions: SLEEP, GET_LOCK … would run
                judge.add(f"{here}it calls {function.name}(), which a preflight query may not call")
                continue
            problem = _my_function_problem(catalog, function, view.schema, allow)
            if problem is not None:
                judge.add(here + problem)
        queue.extend((relation, view.schema, here) for relation in view.relations)
