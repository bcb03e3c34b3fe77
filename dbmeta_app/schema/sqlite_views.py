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
A reference is a FROM item or a name on the right of IN (``x IN view``, ``x IN 'view'``, ``x IN view()``: SQLite
reads the relation; sqlglot parses a column, a string, a call), and, failing closed, any other identifier that
names a view (a column's qualifier and an alias excepted). A common table expression counts once per reference
(SQLite copies its query into each one before deciding whether to materialise it). Pure: no I/O; the caller reads the definitions.

Parse work is bounded: a definition longer than :data:`MAX_DEFINITION_CHARS`, one sqlglot cannot parse
(RecursionError included), or any beyond :data:`MAX_PARSE_CHARS` of parsing in one walk has no size
(``None``), and neither has a view that reads one: the caller refuses it (fail closed).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Container, Iterable, Mapping
from typing import Final

import sqlglot
from sqlglot import exp

__all__ = [
    "MAX_DEFINITION_CHARS",
    "MAX_PARSE_CHARS",
    "ReadsMemo",
    "expansion_sizes",
    "mentioned",
    "names_read",
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


def parse_view(sql: str, max_chars: int = MAX_DEFINITION_CHARS) -> exp.Expr | None:
    """Parse a view's CREATE statement, or a statement (bounded; None when it is too long or cannot be parsed)."""
    if len(sql) > max_chars:
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
    return _joined(db.name if isinstance(db, exp.Identifier) else None, table.name)


def _joined(db: str | None, name: str) -> str:
    if db is None or db.lower() in _OWN_SCHEMAS:
        return name.lower()
    return f"{db.lower()}.{name.lower()}"


def _relation_named(node: exp.Expr | None) -> tuple[str, list[exp.Expr]] | None:
    """The relation a bare name on the right of IN reads, and the nodes that spell it; None: not a name.

    SQLite reads ``x IN [schema.]name`` and ``x IN [schema.]name(args)`` (a view or table-valued function) as a
    relation, the name written bare, double-quoted or single-quoted; sqlglot parses it as a column, a string
    or a function call.
    """
    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier | exp.Literal):
        if not isinstance(node.this, exp.Identifier) and not node.this.is_string:
            return None
        db = node.args.get("table")
        spelled: list[exp.Expr] = [node.this, *(p for p in (db, node.args.get("db")) if p is not None)]
        return _joined(db.name if isinstance(db, exp.Identifier) else None, node.this.name), spelled
    if isinstance(node, exp.Literal) and node.is_string:
        return _joined(None, node.name), [node]
    if isinstance(node, exp.Anonymous) and isinstance(node.this, str):
        return _joined(None, node.this), []
    if (
        isinstance(node, exp.Dot)
        and isinstance(node.this, exp.Identifier)
        and isinstance(node.expression, exp.Anonymous)
    ):
        name = node.expression.this
        return (_joined(node.this.name, name), [node.this]) if isinstance(name, str) else None
    return None


#: Reads' key prefix of a name written elsewhere than where a relation is read (a view's name there is counted).
_MENTION: Final = "\0"


def mentioned(key: str) -> tuple[str, bool]:
    """A key of :data:`Reads` as (relation name, whether it is read for sure: False for a mere mention)."""
    return (key[len(_MENTION) :], False) if key.startswith(_MENTION) else (key, True)


def names_read(reads: Reads) -> set[str]:
    """Every relation name a query reads or mentions (the views among them are the ones to size)."""
    return {mentioned(key)[0] for key in reads}


def _weight(key: str, sizes: Mapping[str, int | None], views: Container[str]) -> int | None:
    """What one reference costs: a view its size, any other relation read 1, a mention of a non-view 0."""
    name, read = mentioned(key)
    if name in views:
        return sizes.get(name, 1)  # a view on the current path (circular: SQLite refuses it) counts 1
    return 1 if read else 0


def _spelling(node: exp.Expr) -> list[exp.Expr]:
    """The identifiers of a node that name no relation it reads: a column's qualifiers, aliases."""
    if isinstance(node, exp.Column):
        return [p for p in (node.args.get(k) for k in ("table", "db", "catalog")) if p is not None]
    if isinstance(node, exp.Table):
        return [p for p in (node.args.get(k) for k in ("this", "db", "catalog", "alias")) if p is not None]
    if isinstance(node, exp.CTE | exp.Alias | exp.Subquery):
        alias = node.args.get("alias")
        return [alias] if alias is not None else []
    return []


def reads_of(tree: exp.Expr) -> Reads:
    """The relations a query reads, each CTE's reads counted once per reference to it (iteratively).

    A name that matches a CTE of the query counts as that CTE *and* as the relation of that name (scopes are
    not followed: never less than SQLite expands). A CTE that references itself or a cycle adds nothing more.
    Read: a FROM item, and a bare name on the right of IN (SQLite's ``x IN name``). Fail closed, every other
    identifier (not a column's qualifier, not an alias) is kept as a mention (key prefixed, see
    :func:`mentioned`): the walks count it as a read when it names a view.
    """
    root = _body(tree)
    ctes = [cte for cte in root.find_all(exp.CTE)]
    index = {id(cte): i for i, cte in enumerate(ctes, start=1)}
    by_name: dict[str, list[int]] = {}
    for i, cte in enumerate(ctes, start=1):
        by_name.setdefault(cte.alias_or_name.lower(), []).append(i)
    own: list[Reads] = [Counter() for _ in range(len(ctes) + 1)]
    refs: list[Counter[int]] = [Counter() for _ in range(len(ctes) + 1)]
    spelled: set[int] = set()  # identifiers already accounted for (a read's name, a qualifier, an alias)

    def read(block: int, key: str) -> None:
        own[block][key] += 1
        for target in by_name.get(key, ()) if "." not in key else ():
            refs[block][target] += 1

    stack: list[tuple[exp.Expr, int]] = [(root, 0)]
    while stack:
        node, block = stack.pop()
        if isinstance(node, exp.CTE):
            block = index.get(id(node), block)
        spelled.update(id(part) for part in _spelling(node))
        if isinstance(node, exp.Table):
            if isinstance(node.this, exp.Identifier):
                read(block, _key(node))
            elif isinstance(node.this, exp.Anonymous) and isinstance(node.this.this, str):
                db = node.args.get("db")  # FROM name(args): a table-valued function, or an error on a view
                read(block, _joined(db.name if isinstance(db, exp.Identifier) else None, node.this.this))
        elif isinstance(node, exp.In) and (found := _relation_named(node.args.get("field"))) is not None:
            key, parts = found
            read(block, key)
            spelled.update(id(part) for part in parts)
        elif isinstance(node, exp.Identifier) and id(node) not in spelled and node.name:
            own[block][_MENTION + node.name.lower()] += 1
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
                    size = _weight(child, sizes, views)
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
                stack.extend(
                    (c, False) for c in names_read(found) if c in views and c not in sizes and c not in active
                )
    return sizes


def statement_relations(reads: Reads, sizes: Mapping[str, int | None]) -> int | None:
    """The relations a statement opens (what it reads, each view expanded: ``sizes`` from
    :func:`expansion_sizes`, every view the statement reads or mentions sized); None when a view it reads has no
    size."""
    total = 0
    for name, count in reads.items():
        size = _weight(name, sizes, sizes)
        if size is None:
            return None
        total = min(CAP, total + count * size)
    return total
