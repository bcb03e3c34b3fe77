"""How many relations SQLite opens when it expands the views a statement reads, measured without asking SQLite.

SQLite expands a view where it is read, before planning: every reference gets its own copy of the view's
query, and the views that query reads are expanded in it too. Views that each read the one below twice
(``b_k = SELECT x FROM b_{k-1} UNION ALL SELECT x FROM b_{k-1}``) double at every level: 16 chains of 15
levels in a 98 kB file made ``EXPLAIN QUERY PLAN SELECT x FROM top`` take 23 s and 1.3 GB, and
``PRAGMA table_xinfo`` of the views (schema reflection) pays the same. Neither ``interrupt()`` nor the
progress handler stops it (measured with SQLite 3.40: the handler is called while the schema is read, then not
once in 8 s of expansion; an ``interrupt()`` 0.2 s in is ignored).

So the expansion is computed here from the definitions in ``sqlite_master`` (parsed with sqlglot) and held
against a bound before SQLite is asked to prepare anything that expands a view: the preflight
(``preflight/policy.py``, the profile's planned-relations bound) and reflection (``schema/reflect.py``).
A reference's weight is 1 for a table, ``1 + what it reads`` for a view, multiplied through every level.
A common table expression counts once per reference (SQLite copies its query into each one before deciding
whether to materialise it). Pure: no I/O; the caller reads the definitions.

Parse work is bounded: a definition longer than :data:`MAX_DEFINITION_CHARS`, one sqlglot cannot parse
(RecursionError included), or any beyond :data:`MAX_PARSE_CHARS` of parsing in one walk has no size
(``None``), and neither has a view that reads one: the caller refuses it (fail closed).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from typing import Final

import sqlglot
from sqlglot import exp

__all__ = [
    "MAX_DEFINITION_CHARS",
    "MAX_PARSE_CHARS",
    "ReadsMemo",
    "expansion_sizes",
    "parse_view",
    "reads_of",
    "statement_relations",
]

#: The longest view definition the service parses (longer: no size, refused).
MAX_DEFINITION_CHARS: Final = 100_000
#: The most definition text one walk parses (the memo's hits are free); past it views have no size.
MAX_PARSE_CHARS: Final = 2_000_000
#: Counts saturate here: a doubling chain must not build integers with thousands of digits.
CAP: Final = 10**15
_MEMO_ENTRIES: Final = 4_096
#: Schema names that mean the database itself ("main.v" is "v"; an attached database is refused by the guard).
_OWN_SCHEMAS: Final = ("main",)

# The relations one definition reads, by lower-cased name ("name" or "schema.name"), with multiplicity.
Reads = Counter[str]


class ReadsMemo:
    """What each view definition reads, by the SHA-256 of its text (bounded, thread-safe; owned by its user)."""

    def __init__(self, max_entries: int = _MEMO_ENTRIES) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, Reads | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, Reads | None]:
        with self._lock:
            if digest not in self._items:
                return False, None
            self._items.move_to_end(digest)
            return True, self._items[digest]

    def put(self, digest: str, reads: Reads | None) -> None:
        with self._lock:
            self._items[digest] = reads
            self._items.move_to_end(digest)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def parse_view(sql: str) -> exp.Expr | None:
    """Parse a view's CREATE statement (bounded; None when it is too long or cannot be parsed)."""
    if len(sql) > MAX_DEFINITION_CHARS:
        return None
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:  # noqa: BLE001 - ParseError, RecursionError, anything: no size, refused
        return None
    return tree if isinstance(tree, exp.Expr) else None


def _body(tree: exp.Expr) -> exp.Expr:
    """The query of a CREATE VIEW (its own name is not a read), or the statement itself."""
    if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Expr):
        return tree.expression
    return tree


def _key(table: exp.Table) -> str:
    db = table.args.get("db")
    name = table.name.lower()
    if not isinstance(db, exp.Identifier) or db.name.lower() in _OWN_SCHEMAS:
        return name
    return f"{db.name.lower()}.{name}"


def reads_of(tree: exp.Expr) -> Reads:
    """The relations a query reads, each CTE's reads counted once per reference to it (iteratively).

    A name that matches a CTE of the query counts as that CTE *and* as the relation of that name (scopes are
    not followed: never less than SQLite expands). A CTE that references itself or a cycle adds nothing more.
    """
    root = _body(tree)
    ctes = [cte for cte in root.find_all(exp.CTE)]
    index = {id(cte): i for i, cte in enumerate(ctes, start=1)}
    by_name: dict[str, list[int]] = {}
    for i, cte in enumerate(ctes, start=1):
        by_name.setdefault(cte.alias_or_name.lower(), []).append(i)
    own: list[Reads] = [Counter() for _ in range(len(ctes) + 1)]
    refs: list[Counter[int]] = [Counter() for _ in range(len(ctes) + 1)]
    stack: list[tuple[exp.Expr, int]] = [(root, 0)]
    while stack:
        node, block = stack.pop()
        if isinstance(node, exp.CTE):
            block = index.get(id(node), block)
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            key = _key(node)
            own[block][key] += 1
            for target in by_name.get(key, ()) if "." not in key else ():
                refs[block][target] += 1
        stack.extend((child, block) for child in node.iter_expressions())
    totals: dict[int, Reads] = {}
    active: set[int] = set()
    walk: list[tuple[int, bool]] = [(0, False)]
    while walk:
        block, expanded = walk.pop()
        if block in totals:
            continue
        if expanded:
            total = Counter(own[block])
            for target, times in refs[block].items():
                for name, count in totals.get(target, Counter()).items():
                    total[name] = min(CAP, total[name] + times * count)
            totals[block] = total
            active.discard(block)
        elif block not in active:
            active.add(block)
            walk.append((block, True))
            walk.extend((t, False) for t in refs[block] if t not in totals and t not in active)
    return totals[0]


def _digest(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8", "surrogatepass")).hexdigest()


def expansion_sizes(
    views: Mapping[str, str | None],
    memo: ReadsMemo,
    wanted: Iterable[str] | None = None,
    *,
    max_parse_chars: int = MAX_PARSE_CHARS,
) -> dict[str, int | None]:
    """The relations each view opens when expanded (itself included), by lower-cased name; None: unknown.

    ``views`` maps each view's lower-cased name to its CREATE VIEW text (None: not read, e.g. too long).
    ``wanted``: the views to size (and what they read, transitively); by default every view.
    """
    sizes: dict[str, int | None] = {}
    reads: dict[str, Reads | None] = {}
    budget = [max_parse_chars]

    def reads_for(name: str) -> Reads | None:
        if name in reads:
            return reads[name]
        sql = views.get(name)
        found: Reads | None = None
        if sql is not None:
            digest = _digest(sql)
            hit, found = memo.get(digest)
            # over this walk's parse budget: no size (not memoised: another walk may parse it)
            if not hit and len(sql) <= budget[0]:
                budget[0] -= len(sql)
                tree = parse_view(sql)
                found = reads_of(tree) if tree is not None else None
                memo.put(digest, found)
        reads[name] = found
        return found

    start = list(views) if wanted is None else [w for w in wanted if w in views]
    active: set[str] = set()
    for first in start:
        stack: list[tuple[str, bool]] = [(first, False)]
        while stack:
            name, expanded = stack.pop()
            if name in sizes:
                continue
            found = reads_for(name)
            if found is None:
                sizes[name] = None
                active.discard(name)
                continue
            if expanded:
                total: int | None = 1
                for child, count in found.items():
                    # a table, or a view on the current path (circular: SQLite refuses it), counts 1
                    size = sizes.get(child, 1) if child in views else 1
                    if size is None:
                        total = None
                        break
                    assert total is not None
                    total = min(CAP, total + count * size)
                sizes[name] = total
                active.discard(name)
            elif name not in active:
                active.add(name)
                stack.append((name, True))
                stack.extend((c, False) for c in found if c in views and c not in sizes and c not in active)
    return sizes


def statement_relations(reads: Reads, sizes: Mapping[str, int | None]) -> int | None:
    """The relations a statement opens (what it reads, each view expanded: ``sizes`` from
    :func:`expansion_sizes`); None when a view it reads has no size."""
    total = 0
    for name, count in reads.items():
        size = sizes.get(name, 1)
        if size is None:
            return None
        total = min(CAP, total + count * size)
    return total
