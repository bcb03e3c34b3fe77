"""Turn an unknown-table or unknown-column error into a "did you mean" hint. Pure: no I/O."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal

__all__ = ["missing_name", "suggest_names"]

_Kind = Literal["table", "column"]

# PostgreSQL, MySQL/MariaDB and SQLite wordings of "no such table / column".
_PATTERNS: Final[tuple[tuple[_Kind, re.Pattern[str]], ...]] = (
    ("table", re.compile(r'relation "([^"]+)" does not exist')),
    ("table", re.compile(r'missing FROM-clause entry for table "([^"]+)"')),
    ("column", re.compile(r'column "([^"]+)" does not exist')),
    ("column", re.compile(r"column ([\w$.\"]+) does not exist")),
    ("table", re.compile(r"Table '([^']+)' doesn't exist")),
    ("column", re.compile(r"Unknown column '([^']+)' in '[^']*'")),
    ("table", re.compile(r"no such table: ([^\s,;]+)")),
    ("column", re.compile(r"no such column: ([^\s,;]+)")),
)
_CUTOFF: Final = 0.6
# Offer only names nearly as close as the best one: a long list of so-so matches is noise.
_SPREAD: Final = 0.2
_MAX_SUGGESTIONS: Final = 3


def missing_name(error: str) -> tuple[_Kind, str] | None:
    """Return ("table" | "column", name) parsed from a database's unknown-name error, or None."""
    for kind, pattern in _PATTERNS:
        match = pattern.search(error)
        if match:
            return kind, match.group(1).replace('"', "")
    return None


def suggest_names(
    error: str,
    table_keys: Iterable[str],
    columns_by_table: Mapping[str, Iterable[str]],
    referenced_tables: Iterable[str] = (),
) -> str | None:
    """Return a hint such as `did you mean "sales.orders"?` for an unknown table or column error."""
    found = missing_name(error)
    if found is None:
        return None
    kind, name = found
    if kind == "table":
        matches = _close_tables(name, list(table_keys))
        return _phrase([f'"{table}"' for table in matches])
    return _phrase(_close_columns(name, columns_by_table, list(referenced_tables)))


def _close_tables(name: str, table_keys: list[str]) -> list[str]:
    """Match the bare name against each key's bare name, preferring keys in the same schema."""
    wanted = name.lower()
    wanted_schema, _, wanted_bare = wanted.rpartition(".")
    scored: dict[str, float] = {}
    for key in table_keys:
        key_schema, _, key_bare = key.lower().rpartition(".")
        if key.lower() == wanted:
            continue
        score = difflib.SequenceMatcher(None, wanted_bare, key_bare).ratio()
        if score < _CUTOFF:
            continue
        if wanted_schema and key_schema and key_schema != wanted_schema:
            score -= 0.05  # same table in another schema: still a good hint, but a worse one
        scored[key] = score
    return _best(scored)


def _close_columns(
    name: str, columns_by_table: Mapping[str, Iterable[str]], referenced: list[str]
) -> list[str]:
    """Match a column name against the referenced tables' columns first, then every table's."""
    wanted = name.lower().rsplit(".", 1)[-1]
    all_tables = list(columns_by_table)
    for tables in (_resolve(referenced, all_tables), all_tables):
        scored: dict[str, float] = {}
        for table in tables:
            for column in columns_by_table.get(table, ()):
                score = difflib.SequenceMatcher(None, wanted, column.lower()).ratio()
                if score >= _CUTOFF and column.lower() != wanted:
                    scored[f'"{column}" ({table})'] = score
        if scored:
            return _best(scored)
    return []


def _best(scored: dict[str, float]) -> list[str]:
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
