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

ClickHouse also prints values without quotes (``Cannot load time zone hunter2``, ``Unknown data type family:
hunter2``, a regular expression it cannot compile). So in a ClickHouse error (``DB::Exception``) every word is an
allow-list matter: a word is repeated only when the caller wrote it (outside string literals: names, keywords,
functions), it is a part of a schema name, or it is of the engine's own vocabulary (:data:`CLICKHOUSE_WORDS`, the
words of its messages, its error code names in the final ``(CODE_NAME)``, the service's own SETTINGS); any other
word becomes ``…``. An ordinary mistake keeps its message (``Unknown expression identifier `nosuch```, ``Syntax
error: failed at position ?``).

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
#: A ClickHouse error (through chDB or a server): its words are allow-listed, see the module's doc.
_CLICKHOUSE_ERROR: Final = re.compile(r"\bDB::Exception\b")
#: The final "(CODE_NAME)" of a ClickHouse error.
_ERROR_CODE: Final = re.compile(r"\(([A-Z][A-Z0-9_]*)\)\s*$")
_WORD: Final = re.compile(r"[^\W\d]\w*")
_CHUNK: Final = re.compile(r"\S+")
#: The words of ClickHouse's own messages (what an ordinary mistake's message is made of) and of the SETTINGS
#: clause the service appends: repeated in any ClickHouse error. A value made of these words alone is not
#: secret-shaped (no value of the data is an allow-listed word by accident more than by choice).
CLICKHOUSE_WORDS: Final = frozenset(
    """
    a about after aggregate aggregation alias all allow allow_introspection_functions already also an analyzer
    and another any are argument arguments array as asc at attribute bad be because been begin between but by
    can cannot cast code column columns comma constant contain contains convert could data database db default
    desc dictionary did distinct div do does dot double element elements end enough error escaped example
    except exception exist exists expected expecting expression expressions failed false family fetch file
    first for format found from function functions global group having identifier identifiers if illegal ilike
    in index inner inside instead int integer intersect into is it its join key keys left length less like
    limit literal load look max max_execution_time max_memory_usage max_result_bytes max_result_rows maybe
    meant memory missing mod more must name names near need no not note null number numeric of offset on one
    only or order ornull orzero other out outfile overflow parallel parse parsing please plus position
    prewhere processing qualify query readonly reference regexp regular required resolved result
    result_overflow_mode returns right scalar scope second select sequence setting settings should size some
    string subquery such supported syntax table tables than that the there this throwing time timeout
    timeout_overflow_mode to token too type types unexpected union unknown unsupported use used using value
    values was when where which while window with within wrong you zero zone bound bounds scale precision
    decimal date datetime parameter parameters invalid incorrect mismatch nested nullable tuple map lowcardinality
    uint int float enum boolean bool uuid ipv ipv4 ipv6 https redacted slashes brace opening closing first
    slash escape escaped regex cannot compile re2 optimizedregularexpression aggregatefunction equal equals
    converted conversion implicit explicit common supertype size sizes empty infinite nan overflow division
    many few least most while processing executing subqueries subquery set sets specify have additionally match
    write sql
    """.split()
)


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
        self._words = {word.lower() for word in _WORD.findall(_QUOTED_NAME.sub(" ", code))}
        self._words |= {word.lower() for name in quoted for word in _WORD.findall(name)}
        self._names = names
        self._known: set[str] | None = None
        self._parts: set[str] | None = None
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
        if self._reads_rows and _CLICKHOUSE_ERROR.search(text):
            return self._clickhouse_message(text)
        if self._reads_rows:
            return _VALUE.sub(self._value, text)
        return _QUOTED.sub(self._quoted, text)

    def _clickhouse_message(self, text: str) -> str:
        """A ClickHouse error with quoted values and numbers checked as always, and every other word allow-listed
        (the caller's, the schema's, the engine's); the final (CODE_NAME) kept."""
        code = _ERROR_CODE.search(text)
        body, tail = (text[: code.start()], code.group(0)) if code else (text, "")
        out: list[str] = []
        position = 0
        for match in _VALUE.finditer(body):
            out.append(self._words_of(body[position : match.start()]))
            out.append(self._value(match))
            position = match.end()
        out.append(self._words_of(body[position:]))
        return "".join(out) + tail

    def _words_of(self, text: str) -> str:
        # a run of text that is, whole, one of the caller's literals (a time zone 'Mars/Base') is kept as is
        return _CHUNK.sub(self._chunk, text)

    def _chunk(self, match: re.Match[str]) -> str:
        chunk = match.group(0)
        core = chunk.rstrip(":.,;")
        if core and core in self._literals:
            return chunk
        return _WORD.sub(self._word, chunk)

    def _word(self, match: re.Match[str]) -> str:
        word = match.group(0)
        lowered = word.lower()
        if lowered in CLICKHOUSE_WORDS or lowered in self._words or word in self._literals:
            return word
        known = self._schema_parts()
        return word if lowered in known else _REDACTED

    def _schema_parts(self) -> set[str]:
        if self._parts is None:
            self._parts = {part for name in self._schema_names() for part in _WORD.findall(name)}
        return self._parts

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
