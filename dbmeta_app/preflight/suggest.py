"""Turn an unknown-table or unknown-column error into a "did you mean" hint. Pure: no I/O.

A hint names each identifier as the dialect must write it, part by part (``"Weird Schema"."Mixed Case Tbl"``,
``sales.orders``), with the schema renderer's quoting (:func:`dbmeta_app.schema.render.quote_ident`): a hint
used as written is valid SQL. The dialect is the one whose wording the error has, unless the caller names it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal, TypeVar

from dbmeta_app.schema.render import quote_ident, quote_table

__all__ = ["missing_name", "suggest_names"]

_Kind = Literal["table", "column"]
_Option = TypeVar("_Option", str, tuple[str, str])

# Each database's wording of "no such table / column", and the dialect that words it so (its quoting).
_PATTERNS: Final[tuple[tuple[_Kind, str, re.Pattern[str]], ...]] = (
    # ClickHouse (a server or chDB; messages as preflight/echo.py leaves them)
    ("table", "clickhouse", re.compile(r"Unknown table expression identifier '([^']+)'")),
    (
        "table",
        "clickhouse",
        re.compile(r"DB::Exception: Table ([^\s'`]+|`[^`]+`(?:\.`[^`]+`)?) does not exist"),
    ),
    ("column", "clickhouse", re.compile(r"Unknown expression (?:or function )?identifier [`']([^`']+)[`']")),
    ("column", "clickhouse", re.compile(r"Identifier '([^']+)' cannot be resolved")),
    ("column", "clickhouse", re.compile(r"Missing columns: '([^']+)'")),
    # DuckDB
    ("table", "duckdb", re.compile(r"Table with name (.+?) does not exist!")),
    ("column", "duckdb", re.compile(r'Referenced column "([^"]+)" not found')),
    ("column", "duckdb", re.compile(r'Table "[^"]+" does not have a column named "([^"]+)"')),
    # PostgreSQL
    ("table", "postgresql", re.compile(r'relation "([^"]+)" does not exist')),
    ("table", "postgresql", re.compile(r'missing FROM-clause entry for table "([^"]+)"')),
    ("column", "postgresql", re.compile(r'column "([^"]+)" does not exist')),
    ("column", "postgresql", re.compile(r"column ([\w$.\"]+) does not exist")),
    # MySQL / MariaDB
    ("table", "mysql", re.compile(r"Table '([^']+)' doesn't exist")),
    ("column", "mysql", re.compile(r"Unknown column '([^']+)' in '[^']*'")),
    # SQLite: the name runs to the end of the message (it may hold spaces)
    ("table", "sqlite", re.compile(r"no such table: (.+?)\s*$")),
    (
        "column",
        "sqlite",
        re.compile(r"no such column: (.+?)(?:\s+-\s+should this be a string literal.*)?\s*$"),
    ),
)
_MASKED: Final = "…"  # what preflight/echo.py leaves of a value the answer may not repeat
_CUTOFF: Final = 0.6
# Offer only names nearly as close as the best one: a long list of so-so matches is noise.
_SPREAD: Final = 0.2
_MAX_SUGGESTIONS: Final = 3
# Without a close name in the tables a query reads, their columns are listed: this many tables and columns each.
_MAX_LISTED_TABLES: Final = 3
_MAX_LISTED_COLUMNS: Final = 40


def _missing(error: str) -> tuple[_Kind, str, str] | None:
    for kind, dialect, pattern in _PATTERNS:
        match = pattern.search(error)
        if match:
            return kind, match.group(1).replace('"', "").replace("`", ""), dialect
    return None


def missing_name(error: str) -> tuple[_Kind, str] | None:
    """Return ("table" | "column", name) parsed from a database's unknown-name error, or None."""
    found = _missing(error)
    return None if found is None else (found[0], found[1])


def suggest_names(
    error: str,
    table_keys: Iterable[str],
    columns_by_table: Mapping[str, Iterable[str]],
    referenced_tables: Iterable[str] = (),
    *,
    dialect: str | None = None,
) -> str | None:
    """Return a hint such as ``did you mean sales.orders?`` or ``did you mean "Mixed Col" (s."T 1")?`` for an
    unknown table or column error, each name written as ``dialect`` (by default, the error's) must write it."""
    found = _missing(error)
    if found is None:
        return None
    kind, name, worded_by = found
    if not name or _MASKED in name:
        return None
    written = dialect or worded_by
    if kind == "table":
        matches = _close_tables(name, list(table_keys), written)
        return _phrase([quote_table(table, None, written) for table in matches])
    read = _resolve(list(referenced_tables), list(columns_by_table))
    options = _close_columns(name, columns_by_table, read)
    hint = _phrase(
        [f"{quote_ident(column, written)} ({quote_table(table, None, written)})" for column, table in options]
    )
    if read and not any(table in read for _, table in options):
        # Nothing close in the tables the query reads: what they do have (a name from another table alone
        # would send the caller to a table the query does not read).
        listed = "; of ".join(
            f"{quote_table(table, None, written)}: {_listing(columns_by_table.get(table, ()), written)}"
            for table in read[:_MAX_LISTED_TABLES]
        )
        hint = f"{hint + ' ' if hint else ''}The columns of {listed}"
    return hint


def _listing(columns: Iterable[str], dialect: str) -> str:
    names = [quote_ident(column, dialect) for column in columns]
    shown = ", ".join(names[:_MAX_LISTED_COLUMNS])
    more = len(names) - _MAX_LISTED_COLUMNS
    return f"{shown} and {more} more" if more > 0 else shown or "(none)"


def _close_tables(name: str, table_keys: list[str], dialect: str) -> list[str]:
    """Match the bare name against each key's bare name, preferring keys in the same schema."""
    wanted = name.lower()
    wanted_schema, _, wanted_bare = wanted.rpartition(".")
    scored: dict[str, float] = {}
    for key in table_keys:
        key_schema, _, key_bare = key.lower().rpartition(".")
        if key.lower() == wanted:
            # the table itself, written as one name ("s.t" for s.t): offered when it is written otherwise
            if quote_table(key, None, dialect) != name:
                scored[key] = 1.0
            continue
        score = difflib.SequenceMatcher(None, wanted_bare, key_bare).ratio()
        if score < _CUTOFF:
            continue
        if wanted_schema and key_schema and key_schema != wanted_schema:
            score -= 0.05  # same table in another schema: still a good hint, but a worse one
        scored[key] = score
    return _best(scored)


def _close_columns(
    name: str, columns_by_table: Mapping[str, Iterable[str]], read: list[str]
) -> list[tuple[str, str]]:
    """Match a column name against the columns of the tables read first, then every table's: (column, table)."""
    wanted = name.lower().rsplit(".", 1)[-1]
    for tables in (read, list(columns_by_table)):
        scored: dict[tuple[str, str], float] = {}
        for table in tables:
            for column in columns_by_table.get(table, ()):
                score = difflib.SequenceMatcher(None, wanted, column.lower()).ratio()
                if score >= _CUTOFF and column.lower() != wanted:
                    scored[(column, table)] = score
        if scored:
            return _best(scored)
    return []


def _best(scored: dict[_Option, float]) -> list[_Option]:
    if not scored:
        return []
    top = max(scored.values())
    ranked = sorted((item for item in scored if scored[item] >= top - _SPREAD), key=lambda i: (-scored[i], i))
    return ranked[:_MAX_SUGGESTIONS]


def _resolve(referenced: list[str], table_keys: list[str]) -> list[str]:
    """Map table references as written (bare or qualified, any case) to known table keys."""
    resolved: list[str] = []
    for reference in referenced:
        lowered = reference.lower().replace('"', "").replace("`", "")
        for key in table_keys:
            key_lower = key.lower()
            if key_lower == lowered or key_lower.rsplit(".", 1)[-1] == lowered.rsplit(".", 1)[-1]:
                resolved.append(key)
    return list(dict.fromkeys(resolved))


def _phrase(options: list[str]) -> str | None:
    if not options:
        return None
    if len(options) == 1:
        return f"did you mean {options[0]}?"
    return f"did you mean {', '.join(options[:-1])} or {options[-1]}?"
