"""What a preflight answer may repeat of the database's words: the caller's own literals and names, and the schema's.

A planner may compute values from rows while planning: MariaDB reads the rows a unique key finds ("const
tables") and evaluates constant subqueries (``ExtractValue(.., (SELECT secret FROM t))``), ClickHouse runs
scalar subqueries. Those values then appear in the plan's conditions (``'hunter2' is not null``, ``x in
['hunter2']``) and in error messages (``XPATH syntax error: 'hunter2'``, ``Scale 31337 is out of bounds``).
The preflight answers plans, not data. So a quoted value in an error message or a plan is repeated only when
it is, whole, one of the caller's string literals, a name the caller wrote (``t.x``, ``custmer_id``) or a
name of the schema (``sales.orders``, ``orders.amount``); otherwise it becomes ``'…'``. A number in a plan's
expression, and any number in an error message (ClickHouse's ``Code: N`` kept), is repeated only when it is one of
the caller's numeric literals; otherwise it becomes ``?``. Every planner computes values it was not shown:
PostgreSQL folds stable functions while estimating, so ``chr(<three bytes of current_setting('app.api_key')> +
1114112)`` fails with "requested character too large for encoding: 8678189", the setting's bytes as a number.

ClickHouse also prints values without quotes (``Cannot load time zone hunter2``, ``Unknown data type family:
hunter2``, a regular expression it cannot compile). So in a ClickHouse error (``DB::Exception``) every word is an
allow-list matter: a word is repeated only when the caller wrote it (outside string literals: names, keywords,
functions), it is a part of a schema name, or it is of the engine's own vocabulary (:data:`CLICKHOUSE_WORDS`, the
words of its messages, its error code names in the final ``(CODE_NAME)``, the service's own SETTINGS); any other
word becomes ``…``. An ordinary mistake keeps its message (``Unknown expression identifier `nosuch```, ``Syntax
error: failed at position ?``).

Words the caller wrote are the caller's vocabulary, as large as the caller likes (``1 AS correct, 1 AS horse, …``),
so they are not allowed word by word: that would spell a value back in order (``Cannot load time zone correct
horse battery staple``). In a ClickHouse error a word that is admitted only because the caller wrote it (as a name,
a keyword, or a string literal), and a stretch of text that is, whole, one of the caller's literals (``Mars/Base``),
is kept in two cases only:

- it is part of an *echo*: :data:`MIN_ECHO_WORDS` or more consecutive words of the message (punctuation ignored)
  that are consecutive words of the caller's statement, in its order (ClickHouse repeats the statement: ``In
  scope SELECT nosuch FROM t``);
- it is the only such word (or literal) of the whole message outside echoes (``Unknown data type family:
  mytype``): one membership test, as for a quoted value.

Any other such word becomes ``…``. The engine's vocabulary and the schema's name parts are kept as before.

The SETTINGS clause the service appends to the caller's statement (its limits) is not repeated: ClickHouse's
"In scope …" echo shows the caller's statement as the caller wrote it, and a "Maybe you meant: ['…']" whose every
name is masked is left out (the answer's "did you mean" comes from the snapshot, ``preflight/suggest.py``).

A value that equals, whole, something the caller wrote tells the caller that it does (a membership test, like
the "Impossible WHERE" a MariaDB plan shows for a const row that fails a condition): what the docs admit.
Nothing lets a value through piecewise (its words, its characters).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from dbmeta_app.preflight.mysql_builtins import BUILTINS_UNQUOTED

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
#: A number: decimal, or hexadecimal as PostgreSQL names the bytes of an invalid sequence (``0xf0 0x68``).
_NUMBER: Final = re.compile(
    r"(?<![\w.$@])(?:0[xX][0-9A-Fa-f]+|(?<!Code: )\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w$])"
)
_VALUE: Final = re.compile(f"(?P<quoted>{_QUOTED.pattern})|(?P<number>{_NUMBER.pattern})", re.S)
_STRING_LITERAL: Final = re.compile(r"'((?:[^'\\]|\\.|'')*)'", re.S)
_QUOTED_NAME: Final = re.compile(r"\"((?:[^\"]|\"\")+)\"|`((?:[^`]|``)+)`")
_NAME: Final = re.compile(r"[\w$]+(?:\s*\.\s*[\w$]+)*")
_SPACE: Final = re.compile(r"\s+")
#: Plan fields that hold expressions (MariaDB's attached_condition, const_condition, ref, sort_key …; ClickHouse's
#: Condition): their numbers may be values read from rows, and on MySQL/MariaDB their words too (a BIT column of a
#: const row is printed raw: ``t.qty = secret12``). On planners that read rows a number anywhere else is masked
#: too, but in the fields that are the plan's own sizes (:data:`_PLAN_SIZES`).
_EXPRESSION_FIELD: Final = re.compile(
    r"condition|filter|having|^ref$|sort_key|expression|group_by|partition", re.I
)
_PLAN_SIZES: Final = frozenset(
    {"key_length", "buffer_size", "rows", "filtered", "cost", "r_rows", "r_filtered"}
)
#: The words MySQL/MariaDB print in a plan's expressions of their own (besides its built-in functions and
#: keywords, ``mysql_builtins``): the optimiser's wrappers and rewrites (``<in_optimizer>``, ``trigcond``, UPPER
#: as ``ucase``, NOW() as ``current_timestamp``), character sets and collations, internal tables.
_MYSQL_PLAN_WORDS: Final = frozenset(
    """
    cache in_optimizer exists trigcond expr_cache subquery materialize primary_index_lookup if
    outer_field_is_not_null multiple equal const func rowid_filter charset collate signed unsigned binary
    interval day month year hour minute second microsecond week quarter day_hour day_minute day_second
    year_month and or xor not is null in like between as case when then else end true false unknown escape
    distinct all any some asc desc on using join left right inner outer cross natural straight_join select from
    where group order by limit having with recursive over partition rows range preceding following current row
    unbounded no_key no_of primary index_subquery unique_subquery first_match loosescan semijoin materialized
    """.split()
)
_MYSQL_PLAN_NAMES: Final = re.compile(
    r"_?(?:utf8\w*|utf16\w*|utf32\w*|ucs2\w*|latin\d\w*|ascii\w*|binary|cp\d+\w*)|"
    r"(?:derived|subquery|key|union|materialized|temporary|table)\d+",
    re.I,
)
_REDACTED: Final = "…"
#: A message with the hint the service appends to it (``explain._pg_message``).
_HINTED: Final = re.compile(r"(.*?) \(hint: (.*)\)", re.S)
_QUOTES: Final = "'\"`"
#: An apostrophe of an English contraction in a message (doesn't, can't, it's): not a value's quote.
_CONTRACTION: Final = re.compile(r"(?<=[A-Za-z])'(?:t|s|re|ll|ve|d|m)\b")
#: A message's own quoting, at most (see ``Echo._framing``): quoted values, and the words between two of them.
_MAX_QUOTED: Final = 3
_MAX_CONNECTING: Final = 3
_CONNECTORS: Final = frozenset(
    "in of for and or at on to from with by is not as has no relation column table type function operator schema "
    "database index constraint view key field clause".split()
)
#: A ClickHouse error (through chDB or a server): its words are allow-listed, see the module's doc.
_CLICKHOUSE_ERROR: Final = re.compile(r"\bDB::Exception\b")
#: The final "(CODE_NAME)" of a ClickHouse error.
_ERROR_CODE: Final = re.compile(r"\(([A-Z][A-Z0-9_]*)\)\s*$")
#: The SETTINGS clause the service appends to the caller's statement (``db.session.clickhouse_limits``), which
#: ClickHouse repeats in its "In scope …" echo: the service's words, not the caller's problem; left out.
_SERVICE_SETTINGS: Final = re.compile(
    r"\s+SETTINGS\s+readonly\s*=\s*\d+(?:\s*,\s*[A-Za-z_]\w*\s*=\s*(?:\d+|'[^'\\]*'))*"
)
#: ClickHouse's own "Maybe you meant: ['…']." once every name in it is masked: noise (the answer's suggestion is
#: made from the snapshot).
_MASKED_HINT: Final = re.compile(r"\s*Maybe you meant:?\s*\[\s*'…'(?:\s*,\s*'…')*\s*\]\.?")
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


#: How many consecutive words of the statement, in its order, make an echo of it (see the module's doc).
MIN_ECHO_WORDS: Final = 3
#: Steps spent finding echoes in one message; past it, no more echoes are found (their words are masked).
_ECHO_WORK: Final = 200_000


class Echo:
    """Decides which values of a database's text an answer may repeat, for one statement."""

    def __init__(
        self,
        statement: str,
        names: Callable[[], Iterable[str]] | None = None,
        *,
        reads_rows: bool = False,
        plan_words: bool = False,
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
        # the statement's words in order (literals left out, quoted names' words in place): what an echo matches
        sequence = [w.lower() for w in _WORD.findall(code.replace("`", " ").replace('"', " "))]
        self._sequence = sequence
        self._at: dict[str, list[int]] = {}
        for index, word in enumerate(sequence):
            self._at.setdefault(word, []).append(index)
        self._names = names
        self._known: set[str] | None = None
        self._parts: set[str] | None = None
        self._reads_rows = reads_rows
        self._plan_words = plan_words  # a plan's expressions' words are allow-listed too (MySQL/MariaDB)

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
        """An error message with the values and the numbers the caller did not write replaced."""
        if self._reads_rows and _CLICKHOUSE_ERROR.search(text):
            checked = self._clickhouse_message(_SERVICE_SETTINGS.sub("", text))
            return _MASKED_HINT.sub("", checked)
        hinted = _HINTED.fullmatch(text)
        if hinted:  # the database's message and its hint, as the service joins them: each its own sentence
            return f"{self.message(hinted.group(1))} (hint: {self.message(hinted.group(2))})"
        start = self._framing(text)
        if start is None:
            return _VALUE.sub(self._value, text)
        # from the first doubtful quote to the last quote of the message: one value
        last = max(text.rfind(quote) for quote in _QUOTES)
        quote, tail = text[start], text[last + 1 :] if last > start else ""
        return (
            f"{_VALUE.sub(self._value, text[:start])}{quote}{_REDACTED}{quote}{_VALUE.sub(self._value, tail)}"
        )

    def _framing(self, text: str) -> int | None:
        """Where a message's quoting stops telling values from the message's own words (None: it never does).

        PostgreSQL and MariaDB print a value between quotes without escaping the quotes it holds, so a value can
        end its quotes early and go on as unquoted text: ``""hunter2"`` (an empty value, the rest unquoted), ``"a"
        hunter2 "b"`` (framed by the caller's own literals). A message's own quoting is a few quoted values
        (:data:`_MAX_QUOTED`), none empty or cut short or not the caller's or the schema's, each followed by a
        space, punctuation or the end, with only a few connecting words of the message between two of them
        (:data:`_CONNECTORS`: ``'x' in 'field list'``, ``"x" of relation "y"``) and no other quote outside them (an
        apostrophe of an English contraction aside)."""
        spans = list(_QUOTED.finditer(text))
        unquoted = _CONTRACTION.sub("", _QUOTED.sub(" ", text))
        if not spans:
            return None
        if len(spans) > _MAX_QUOTED or any(quote in unquoted for quote in _QUOTES):
            return spans[0].start()
        for index, match in enumerate(spans):
            whole = match.group(0)
            closed = len(whole) > 2 and whole.endswith(whole[0])
            after = text[match.end() : match.end() + 1]
            gap = text[match.end() : spans[index + 1].start()] if index + 1 < len(spans) else ""
            words = gap.split()
            if (
                not closed
                or not self.allows(whole[1:-1])
                or (after and (after.isalnum() or after == "_"))
                or len(words) > _MAX_CONNECTING
                or any(word.lower() not in _CONNECTORS for word in words)
            ):
                return match.start()
        return None

    def _clickhouse_message(self, text: str) -> str:
        """A ClickHouse error with quoted values and numbers checked as always, and every other word allow-listed
        (the engine's, the schema's; the caller's in an echo or alone, see the module's doc); the final
        (CODE_NAME) kept."""
        code = _ERROR_CODE.search(text)
        body, tail = (text[: code.start()], code.group(0)) if code else (text, "")
        pieces: list[str | re.Match[str]] = []
        position = 0
        for match in _VALUE.finditer(body):
            pieces.append(body[position : match.start()])
            pieces.append(match)
            position = match.end()
        pieces.append(body[position:])
        # per unquoted piece: (start, end, replacement or None when it is the caller's, to be decided)
        # echoes run across the values of the message (the statement's words are taken without its literals and
        # numbers too): ``In scope SELECT toDateTime('2020-01-01', x)``
        texts = [piece if isinstance(piece, str) else "" for piece in pieces]
        words = [[w.group(0).lower() for w in _WORD.finditer(t)] for t in texts]
        flat = self._echoed([w for ws in words for w in ws])
        spans: list[list[tuple[int, int, str | None]]] = []
        position = 0
        for text, ws in zip(texts, words, strict=True):
            spans.append(self._spans(text, flat[position : position + len(ws)]))
            position += len(ws)
        callers = sum(1 for found in spans for _, _, out in found if out is None)
        out: list[str] = []
        for piece, found in zip(pieces, spans, strict=True):
            if not isinstance(piece, str):
                out.append(self._value(piece))
                continue
            position = 0
            for start, end, replacement in found:
                out.append(piece[position:start])
                keep = piece[start:end] if callers == 1 else _REDACTED
                out.append(keep if replacement is None else replacement)
                position = end
            out.append(piece[position:])
        return "".join(out) + tail

    def _spans(self, text: str, echoed: list[bool]) -> list[tuple[int, int, str | None]]:
        """The words (and whole-literal chunks) of an unquoted piece to replace: (start, end, replacement); a
        replacement of None marks a caller's word or literal outside an echo (kept only if it is the message's
        only one)."""
        words = list(_WORD.finditer(text))
        out: list[tuple[int, int, str | None]] = []
        index = 0
        for chunk in _CHUNK.finditer(text):
            core = chunk.group(0).rstrip(":.,;")
            inside = []
            while index < len(words) and words[index].start() < chunk.end():
                inside.append(index)
                index += 1
            if core and core in self._literals and not all(echoed[i] for i in inside):
                out.append((chunk.start(), chunk.start() + len(core), None))
                continue
            for i in inside:
                word = words[i].group(0)
                kind = self._kind(word)
                if kind == "foreign":
                    out.append((words[i].start(), words[i].end(), _REDACTED))
                elif kind == "caller" and not echoed[i]:
                    out.append((words[i].start(), words[i].end(), None))
        return out

    def _kind(self, word: str) -> str:
        lowered = word.lower()
        if lowered in CLICKHOUSE_WORDS or lowered in self._schema_parts():
            return "known"
        if lowered in self._words or word in self._literals:
            return "caller"
        return "foreign"

    def _echoed(self, words: list[str]) -> list[bool]:
        """Which of a piece's words are in an echo: a stretch of at least MIN_ECHO_WORDS consecutive words that are
        consecutive words of the statement (greedy, longest first from each word; bounded work)."""
        echoed = [False] * len(words)
        budget = _ECHO_WORK
        i = 0
        while i < len(words):
            starts = self._at.get(words[i], [])
            length = 1 if starts else 0
            while starts and i + length < len(words) and budget > 0:
                budget -= len(starts)
                following = [p for p in starts if p + length < len(self._sequence)]
                starts = [p for p in following if self._sequence[p + length] == words[i + length]]
                if starts:
                    length += 1
            if length >= MIN_ECHO_WORDS:
                for j in range(i, i + length):
                    echoed[j] = True
                i += length
            else:
                i += 1
        return echoed

    def _schema_parts(self) -> set[str]:
        if self._parts is None:
            self._parts = {part for name in self._schema_names() for part in _WORD.findall(name)}
        return self._parts

    def plan(self, plan: Any, *, expression: bool = False, field: str = "") -> Any:
        """A plan (decoded JSON) with the foreign quoted values of its texts, the foreign numbers of its
        expressions (of any text but the plan's own sizes on planners that read rows), and on MySQL/MariaDB the
        foreign words of its expressions, replaced."""
        if isinstance(plan, str):
            if expression:
                masked = _VALUE.sub(self._value, plan)
                return self._plan_expression_words(masked) if self._plan_words else masked
            if self._reads_rows and field.lower() not in _PLAN_SIZES:
                return _VALUE.sub(self._value, plan)
            return _QUOTED.sub(self._quoted, plan)
        if isinstance(plan, dict):
            return {
                key: self.plan(
                    value, expression=expression or bool(_EXPRESSION_FIELD.search(str(key))), field=str(key)
                )
                for key, value in plan.items()
            }
        if isinstance(plan, list):
            return [self.plan(value, expression=expression, field=field) for value in plan]
        return plan

    def _plan_expression_words(self, text: str) -> str:
        """A MySQL/MariaDB plan expression (its values checked already) with every word outside quotes that is
        not the caller's, a part of a schema name, or the server's own (keywords, built-in functions, the
        optimiser's wrappers, character sets) replaced by ``…``."""
        out: list[str] = []
        position = 0
        for quoted in _QUOTED.finditer(text):
            out.append(self._foreign_words(text[position : quoted.start()]))
            out.append(quoted.group(0))
            position = quoted.end()
        out.append(self._foreign_words(text[position:]))
        return "".join(out)

    def _foreign_words(self, text: str) -> str:
        def word(match: re.Match[str]) -> str:
            lowered = match.group(0).lower()
            if (
                lowered in self._words
                or lowered in _MYSQL_PLAN_WORDS
                or lowered.upper() in BUILTINS_UNQUOTED
                or _MYSQL_PLAN_NAMES.fullmatch(lowered)
                or lowered in self._schema_parts()
            ):
                return match.group(0)
            return _REDACTED

        return _WORD.sub(word, text)

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
