"""What a preflight answer may repeat of the database's words: the caller's own text and the schema's names.

A planner may compute values from rows while planning: MariaDB reads the rows a unique key finds ("const
tables") and evaluates constant subqueries (``ExtractValue(.., (SELECT secret FROM t))``), ClickHouse runs
scalar subqueries. Those values then appear in the plan's conditions (``'hunter2' is not null``, ``x in
['hunter2']``) and in error messages (``XPATH syntax error: 'hunter2'``). The preflight answers plans, not
data: a quoted value in an error or plan text, or a number in a plan's text, that is neither in the caller's
statement nor made of the schema's names is replaced by ``'…'`` (``?`` for a number).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["PLANNERS_READING_ROWS", "Echo"]

#: Dialect families whose planner reads rows (so a plan's text may carry values of the data).
PLANNERS_READING_ROWS: Final = frozenset({"mysql", "mariadb", "clickhouse"})

# A quoted value: '…' or "…" with doubled or backslash-escaped quotes inside; ClickHouse and MariaDB cut long
# values short in messages, so an unterminated quote runs to the end of the text. A quote right after a letter is
# an apostrophe (doesn't), not a value's start.
_QUOTED: Final = re.compile(r"(?<!\w)'(?:[^'\\]|\\.|'')*(?:'|$)|(?<!\w)\"(?:[^\"\\]|\\.|\"\")*(?:\"|$)", re.S)
_NUMBER: Final = re.compile(r"(?<![\w.$@])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w$])")
_VALUE: Final = re.compile(f"(?P<quoted>{_QUOTED.pattern})|(?P<number>{_NUMBER.pattern})", re.S)
#: Plan fields that hold expressions (MariaDB's attached_condition, const_condition, ref …; ClickHouse's
#: Condition): their numbers may be values read from rows. Other fields' numbers are the plan's own (key_length).
_EXPRESSION_FIELD: Final = re.compile(r"condition|filter|having|^ref$", re.I)
_WORD: Final = re.compile(r"\w+")
_REDACTED: Final = "…"


class Echo:
    """Decides which values of a database's text an answer may repeat, for one statement."""

    def __init__(self, statement: str, names: Callable[[], Iterable[str]] | None = None) -> None:
        self._text = statement.lower()
        self._words = {word.lower() for word in _WORD.findall(statement)}
        self._numbers = set(_NUMBER.findall(statement))
        self._names = names
        self._known: set[str] | None = None

    def _named(self, word: str) -> bool:
        if self._known is None:  # built only when a value is not the caller's own
            self._known = {
                w.lower() for name in (self._names() if self._names else ()) for w in _WORD.findall(name)
            }
        return word in self._known

    def allows(self, value: str) -> bool:
        """Tell whether a value may be repeated: the caller wrote it, or every word of it names the schema."""
        lowered = value.lower()
        if not lowered or lowered in self._text:
            return True
        words = [word.lower() for word in _WORD.findall(value)]
        return bool(words) and all(word in self._words or self._named(word) for word in words)

    def message(self, text: str) -> str:
        """An error message with the quoted values the caller did not write replaced."""
        return _QUOTED.sub(self._quoted, text)

    def plan(self, plan: Any, *, expression: bool = False) -> Any:
        """A plan (decoded JSON) with the foreign quoted values of its texts, and the foreign numbers of its
        expressions, replaced."""
        if isinstance(plan, str):
            return _VALUE.sub(self._value, plan) if expression else _QUOTED.sub(self._quoted, plan)
        if isinstance(plan, dict):
            return {
                key: self.plan(value, expression=expression or bool(_EXPRESSION_FIELD.search(str(key))))
                for key, value in plan.items()
            }
        if isinstance(plan, list):
            return [self.plan(value, expression=expression) for value in plan]
        return plan

    def _quoted(self, match: re.Match[str]) -> str:
        whole = match.group(0)
        quote = whole[0]
        inner = whole[1:-1] if len(whole) > 1 and whole.endswith(quote) else whole[1:]
        return whole if self.allows(inner) else f"{quote}{_REDACTED}{quote}"

    def _value(self, match: re.Match[str]) -> str:
        if match.group("quoted") is not None:
            return self._quoted(match)
        return match.group(0) if match.group(0) in self._numbers else "?"
