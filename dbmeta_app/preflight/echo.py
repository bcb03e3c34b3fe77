"""What a preflight answer may repeat of the database's words: the caller's own literals and names, and the schema's.

A planner may compute values from rows while planning: MariaDB reads the rows a unique key finds ("const
tables") and evaluates constant subqueries (``ExtractValue(.., (SELECT secret FROM t))``), ClickHouse runs
scalar subqueries. Those values then appear in the plan's conditions (``'hunter2' is not null``, ``x in
['hunter2']``) and in error messages (``XPATH syntax error: 'hunter2'``, ``Scale 31337 is out of bounds``).
The preflight answers plans, not data. So a quoted value in an error message or a plan is repeated only when
it is, whole, one of the caller's string literals, a name the caller wrote (``t.x``, ``custmer_id``) or a
name of the schema (``sales.orders``, ``orders.amount``); otherwise it becomes ``'…'``. A number in a plan's
expression, and on the planners that read rows any number in an error message (ClickHouse's ``Code: N`` kept),
is repeated only when it is one of the caller's numeric literals; otherwise it becomes ``?``.

A value that equals, whole, something the caller wrote tells the caller that it does (a membership test, like
the "Impossible WHERE" a MariaDB plan shows for a const row that fails a condition): what the docs admit.
Nothing lets a value through piecewise (its words, its characters).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["PLANNERS_READING_ROWS", "Echo"]

#: Dialect families whose planner reads rows (so a plan's text may carry values of the data).
PLANNERS_READING_ROWS: Final = frozenset({"mysql", "mariadb", "clickhouse"})

# A quoted value: '…' or "…" (or `…`) with doubled or backslash-escaped quotes inside; ClickHouse and MariaDB cut
# long values short in messages, so an unterminated quote runs to the end of the text. A quote right after a
# letter is an apostrophe (doesn't), not a value's start.
_QUOTED: Final = re.compile(
    r"(?<!\w)'(?:[^'\\]|\\.|'')*(?:'|$)|(?<!\w)\"(?:[^\"\\]|\\.|\"\")*(?:\"|$)|(?<!\w)`(?:[^`]|``)*(?:`|$)",
    re.S,
)
_NUMBER: Final = re.compile(r"(?<![\w.$@])(?<!Code: )\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w$])")
_VALUE: Final = re.compile(f"(?P<quoted>{_QUOTED.pattern})|(?P<number>{_NUMBER.pattern})", re.S)
_STRING_LITERAL: Final = re.compile(r"'((?:[^'\\]|\\.|'')*)'", re.S)
_QUOTED_NAME: Final = re.compile(r"\"((?:[^\"]|\"\")+)\"|`((?:[^`]|``)+)`")
_NAME: Final = re.compile(r"[\w$]+(?:\s*\.\s*[\w$]+)*")
_SPACE: Final = re.compile(r"\s+")
#: Plan fields that hold expressions (MariaDB's attached_condition, const_condition, ref …; ClickHouse's
#: Condition): their numbers may be values read from rows. Other fields' numbers are the plan's own (key_length).
_EXPRESSION_FIELD: Final = re.compile(r"condition|filter|having|^ref$", re.I)
_REDACTED: Final = "…"


class Echo:
    """Decides which values of a database's text an answer may repeat, for one statement."""

    def __init__(
        self, statement: str, names: Callable[[], Iterable[str]] | None = None, *, reads_rows: bool = False
    ) -> None:
        literals = [m.group(1) for m in _STRING_LITERAL.finditer(statement)]
        self._literals = {value.replace("''", "'") for value in literals} | set(literals)
        code = _STRING_LITERAL.sub("''", statement)  # the statement without its literals: names and numbers
        self._numbers = set(_NUMBER.findall(code))
        quoted = {a or b for a, b in _QUOTED_NAME.findall(code)}
        self._written = {_SPACE.sub("", name).lower() for name in _NAME.findall(_QUOTED_NAME.sub(" ", code))}
        self._written |= {name.lower() for name in quoted}
        self._names = names
        self._known: set[str] | None = None
        self._reads_rows = reads_rows

    def _schema_names(self) -> set[str]:
        if self._known is None:  # built only when a value is not the caller's own
            self._known = {name.lower() for name in (self._names() if self._names else ())}
        return self._known

    def allows(self, value: str) -> bool:
        """Tell whether a value may be repeated: whole, a literal or a name the caller wrote, or a schema name."""
        if not value or value in self._literals:
            return True
        lowered = value.lower()
        if lowered in self._written:
            return True
        known = self._schema_names()
        if lowered in known:
            return True
        # a qualified name (db.table, alias.column), of parts the caller wrote or the schema has, one at least
        # the schema's: a value the caller wrote piecewise is not a name of the schema
        parts = lowered.split(".")
        return (
            1 < len(parts) <= 3
            and all(p in known or p in self._written for p in parts)
            and any(p in known for p in parts)
        )

    def message(self, text: str) -> str:
        """An error message with the values the caller did not write replaced (numbers too on planners that
        read rows)."""
        if self._reads_rows:
            return _VALUE.sub(self._value, text)
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
        closed = len(whole) > 1 and whole.endswith(quote)
        inner = whole[1:-1] if closed else whole[1:]
        return whole if closed and self.allows(inner) else f"{quote}{_REDACTED}{quote}"

    def _value(self, match: re.Match[str]) -> str:
        if match.group("quoted") is not None:
            return self._quoted(match)
        return match.group(0) if match.group(0) in self._numbers else "?"
