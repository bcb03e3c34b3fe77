"""What parsing and measuring stored view definitions found, kept across checks, and the time one check may spend.

Shared by the PostgreSQL catalog (:mod:`dbmeta_app.preflight.catalog_postgres`) and the DuckDB reach check
(:mod:`dbmeta_app.preflight.dialects.duckdb`): both parse definitions the database holds (untrusted text of any
size), so both charge that work to :data:`VIEW_WORK_SECONDS` and keep what was done, keyed by a digest of the
definition, so that each check makes progress and an unchanged definition is never parsed again.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "STORED_DEPTH_MAX",
    "VIEW_DEFINITION_MAX",
    "VIEW_RULE_BYTES_PER_CHAR",
    "VIEW_WORK_SECONDS",
    "ViewMemo",
    "WorkClock",
    "paren_depth",
    "too_big_to_parse",
]

#: At most this long is spent parsing and measuring view definitions in one catalog read (it runs inside the
#: EXPLAIN's transaction, under the preflight's time limit). Views left over are refused, with a message
#: saying so, and read by the next preflight; what was done is kept (ViewMemo), so each read makes progress.
VIEW_WORK_SECONDS: Final = 2.0

#: A stored definition longer than this many characters is never parsed (nor, where the server can measure it
#: first, fetched): a query reading the view is refused, naming it. Read at call time (tests lower it).
#: The DuckDB and ClickHouse checks have the same cap (their own constants, 100,000).
VIEW_DEFINITION_MAX: int = 100_000
#: A definition whose parentheses nest deeper than this is not parsed (the parsers recurse on them).
STORED_DEPTH_MAX: int = 100
#: PostgreSQL stores a view as a rule tree (``pg_rewrite.ev_action``), measured from its header without
#: building it; the tree's text is 20-35 times the definition's (measured on PostgreSQL 15), so a tree over
#: this many bytes per character of :data:`VIEW_DEFINITION_MAX` is refused before its definition is built.
VIEW_RULE_BYTES_PER_CHAR: Final = 50


class WorkClock:
    """The time one check may spend on stored definitions, counted in units of work that are each kept once done
    (a definition's parse and what is measured on it): ask :meth:`allows` once before each unit, never between a
    parse and its use (a parse thrown away for want of time is redone, and found late, at every check).

    The first unit always runs, later ones only before ``seconds`` have passed since the clock was made: a check
    overruns by at most one unit and always makes progress, however slow the catalog reads before it or a unit
    itself (a definition whose parse alone outlasts the budget on a loaded pod; a slow information_schema)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self._first = True

    def allows(self) -> bool:
        """Whether the next unit of work may start (and counts it)."""
        if self._first:
            self._first = False
            return True
        return time.monotonic() <= self.deadline


@dataclass
class ViewMemo:
    """What reading view definitions found, kept across catalog reads of one profile, keyed by the view's oid and
    a digest of its definition: a re-read after any change parses and measures only the views that changed (or
    whose constant inputs did). No parse tree is kept (one is about 35 times its definition's size); entries of
    views that are gone are dropped on each read."""

    parsed: set[tuple[int, str]] = field(default_factory=set)  # definitions known to parse
    errors: dict[tuple[int, str], str] = field(default_factory=dict)  # definitions that do not: why
    outputs: dict[tuple[int, str, tuple[tuple[str, Any], ...]], dict[str, Any]] = field(default_factory=dict)
    # (oid, digest, seed, what calls of constants run: catalog_postgres.ViewCalls, () elsewhere) → constant bytes
    measured: dict[tuple[int, str, tuple[tuple[str, Any], ...], Hashable], int] = field(default_factory=dict)
    #: (digest of a table definition's SQL text, what calls of constants run) → the bytes its constants build, -1 when
    #: it does not parse (``catalog_postgres._table_constants``; kept for the texts of the last read)
    expressions: dict[tuple[str, Hashable], int] = field(default_factory=dict)
    #: what a dialect's check derives from a parsed definition (DuckDB: the names it reads and calls, its column
    #: list, what the guard rules say of it), so that a memoised definition needs no parse tree
    facts: dict[tuple[int, str], Any] = field(default_factory=dict)

    def prune(self, live: set[tuple[int, str]]) -> None:
        """Forget every view version not in ``live``."""
        self.parsed &= live
        self.errors = {k: v for k, v in self.errors.items() if k in live}
        self.outputs = {k: v for k, v in self.outputs.items() if k[:2] in live}
        self.measured = {k: v for k, v in self.measured.items() if k[:2] in live}
        self.facts = {k: v for k, v in self.facts.items() if k in live}

    def size(self) -> int:
        """How many entries the memo holds."""
        return (
            len(self.parsed)
            + len(self.errors)
            + len(self.outputs)
            + len(self.measured)
            + len(self.facts)
            + len(self.expressions)
        )


def too_big_to_parse(length: int, text: str | None, max_chars: int) -> str:
    """Why a stored definition of ``length`` characters (its ``text``, when fetched) is not parsed, or ""."""
    if length > max_chars or text is None:
        return f"its definition is {length:,} characters long, over the {max_chars:,} the service parses"
    if paren_depth(text) > STORED_DEPTH_MAX:
        return (
            f"its definition is nested more than {STORED_DEPTH_MAX} levels deep, more than the service parses"
        )
    return ""


def paren_depth(text: str) -> int:
    """How deeply parentheses nest in ``text`` (a cheap bound on a stored definition before it is parsed)."""
    deepest = depth = 0
    for char in text:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest
