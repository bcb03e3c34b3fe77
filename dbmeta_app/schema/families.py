"""Date-sharded table families: detection, dates in a request → shards, rendering. Pure, no I/O.

A warehouse often keeps one table per period: ``events_20210131``, ``ga_sessions_20170801``,
``month._202204``, ``gsod2019``, ``trips_2015_q3``. Those shards are one logical table: retrieval
indexes the family once (its newest shard's columns under the name pattern, e.g.
``events_YYYYMMDD``), answers with the shard(s) a request's dates resolve to, and the renderer
shows the family (pattern, count, first and last shard, how to query it) instead of N copies.

A family is two or more tables of one schema whose names differ only in one date run of digits
(YYYYMMDD, YYYYMM, YYYY or YYYY + quarter) at the same place.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from dbmeta_app.schema.models import Snapshot, Table
from dbmeta_app.schema.printable import visible

DAY, MONTH, QUARTER, YEAR = "day", "month", "quarter", "year"

# The date run: not preceded or followed by another digit. Years 1900-2099; month and day may be
# separated from the year by "_" or "-" (the same separator throughout: 2024_01_15, 2024-01).
_SHARD = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})"
    r"(?:(?P<q>_?[qQ][1-4])|(?P<s>[_-]?)(?P<m>0[1-9]|1[0-2])(?:(?P=s)(?P<d>0[1-9]|[12]\d|3[01]))?)?(?!\d)"
)


@dataclass(frozen=True, slots=True)
class Shard:
    """One table of a family and the period it holds."""

    key: str
    suffix: str  # the date run as written in the name ("20230118", "2019_q3")
    start: date
    end: date  # inclusive


@dataclass(frozen=True, slots=True)
class Family:
    """Tables of one schema sharded by a date in their name; ``shards`` oldest first."""

    key: str  # "schema.pattern": the family's key in the index
    schema: str | None
    pattern: str  # the name with the date run replaced by its placeholder ("events_YYYYMMDD")
    prefix: str  # the name before the date run (for BigQuery's wildcard)
    grain: str  # DAY | MONTH | QUARTER | YEAR
    shards: tuple[Shard, ...]

    @property
    def newest(self) -> Shard:
        return self.shards[-1]

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.shards)

    def resolve(self, periods: list[tuple[date, date]]) -> list[str]:
        """The shards whose period overlaps any of ``periods`` (oldest first)."""
        return [
            s.key for s in self.shards if any(s.start <= end and start <= s.end for start, end in periods)
        ]


def _parse(name: str) -> tuple[str, str, str, str, str, date, date] | None:
    """(prefix, suffix run, rest, placeholder, grain, start, end) for a name holding exactly one date run."""
    matches = list(_SHARD.finditer(name))
    if len(matches) != 1:
        return None
    m = matches[0]
    year = int(m["y"])
    sep = m["s"] or ""
    if m["q"]:
        quarter = int(m["q"][-1])
        start = date(year, 3 * quarter - 2, 1)
        end = _month_end(year, 3 * quarter)
        grain, placeholder = QUARTER, "YYYY_qN"
    elif m["d"]:
        try:
            start = end = date(year, int(m["m"]), int(m["d"]))
        except ValueError:
            return None
        grain, placeholder = DAY, f"YYYY{sep}MM{sep}DD"
    elif m["m"]:
        start, end = date(year, int(m["m"]), 1), _month_end(year, int(m["m"]))
        grain, placeholder = MONTH, f"YYYY{sep}MM"
    else:
        start, end, grain, placeholder = date(year, 1, 1), date(year, 12, 31), YEAR, "YYYY"
    return name[: m.start()], m.group(0), name[m.end() :], placeholder, grain, start, end


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def detect_families(snapshot: Snapshot) -> dict[str, Family]:
    """Find the date-sharded families of a snapshot, keyed by family key (once per snapshot)."""
    return snapshot.derived("families", _detect_families)


def _detect_families(snapshot: Snapshot) -> dict[str, Family]:
    groups: dict[tuple[str | None, str, str, str], list[Shard]] = {}
    for key, table in snapshot.tables.items():
        if table.kind != "table":
            continue
        parsed = _parse(table.name)
        if parsed is None:
            continue
        prefix, suffix, rest, placeholder, grain, start, end = parsed
        pattern = f"{prefix}{placeholder}{rest}"
        groups.setdefault((table.schema, pattern, prefix, grain), []).append(Shard(key, suffix, start, end))
    families: dict[str, Family] = {}
    for (schema, pattern, prefix, grain), shards in groups.items():
        if len(shards) < 2:
            continue
        key = f"{schema}.{pattern}" if schema else pattern
        if key in snapshot.tables:
            continue  # a real table already has that name
        ordered = tuple(sorted(shards, key=lambda s: (s.start, s.key)))
        families[key] = Family(key, schema, pattern, prefix, grain, ordered)
    return families


def family_of(snapshot: Snapshot) -> dict[str, Family]:
    """Map each shard's table key to its family (once per snapshot: every rendering asks)."""
    return snapshot.derived(
        "family_of", lambda snap: {key: f for f in detect_families(snap).values() for key in f.members}
    )


def family_table(family: Family, snapshot: Snapshot) -> Table:
    """The family as one logical table: the newest shard's columns under the pattern name.

    Its text does not depend on the number of shards, so a new shard re-embeds nothing unless
    the newest columns changed.
    """
    newest = snapshot.tables[family.newest.key]
    note = f"one table per {family.grain} ({family.pattern})"
    comment = f"{newest.text.strip()} ({note})" if newest.text else note.capitalize()
    return Table(
        schema=family.schema,
        name=family.pattern,
        columns=newest.columns,
        primary_key=newest.primary_key,
        foreign_keys=newest.foreign_keys,
        comment=comment,
    )


def collapse(snapshot: Snapshot, families: dict[str, Family]) -> Snapshot:
    """The snapshot with every family replaced by its logical table (what is indexed and ranked)."""
    if not families:
        return snapshot
    members = {key for f in families.values() for key in f.members}
    tables = [t for key, t in snapshot.tables.items() if key not in members]
    tables.extend(family_table(f, snapshot) for f in families.values())
    return Snapshot.build(snapshot.profile, snapshot.dialect, tables)


# ---- dates in a request -------------------------------------------------------------------

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTH_WORD = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
_ORDINAL_QUARTER = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}

_DAY_PATTERNS = (
    re.compile(_MONTH_WORD + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+" + _YEAR, re.I),
    re.compile(r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_WORD + r",?\s+" + _YEAR, re.I),
    re.compile(_YEAR + r"[-/](?P<month>\d{1,2})[-/](?P<day>\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<month>\d{1,2})/(?P<day>\d{1,2})/" + _YEAR),
)
_MONTH_PATTERNS = (
    re.compile(_MONTH_WORD + r",?\s+(?:of\s+)?" + _YEAR, re.I),
    re.compile(r"(?<![\d-])" + _YEAR + r"-(?P<month>0[1-9]|1[0-2])(?![-\d])"),
)
_QUARTER_PATTERNS = (
    re.compile(r"\bQ(?P<q>[1-4])(?:\s+of)?[\s,]+" + _YEAR, re.I),
    re.compile(_YEAR + r"[\s-]*Q(?P<q>[1-4])\b", re.I),
    re.compile(r"\b(?P<ord>first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter\s+(?:of\s+)?" + _YEAR, re.I),
)
# Two dates read as one period from the first to the second: "from X to Y", "between X and Y", "X through Y".
_RANGE_OPEN = re.compile(r"\b(?:from|between)\s*$", re.I)
_RANGE_JOIN = re.compile(r"\s*(?:to|through|thru|until|till|-|–|—)\s*", re.I)
_RANGE_AND = re.compile(r"\s*and\s*", re.I)
_BARE_YEAR = re.compile(r"(?<![\d.$,])" + _YEAR + r"(?![\d,.]\d)")
_RELATIVE = re.compile(
    r"\b(?:last|past|previous|recent)\s+(?P<n>\d+|one|two|three|four|five|six|seven|ten|twelve|thirty)?\s*"
    r"(?P<unit>day|week|month|quarter|year)s?\b",
    re.I,
)


def without_relative_modifiers(text: str) -> str:
    """The request with "last 7" / "past" / "previous" of each relative period cut, its unit kept.

    "churned last quarter" is a filter on a date, not a table or column called ``last_*``: lexical
    matching sees "churned quarter".
    """
    return _RELATIVE.sub(lambda m: m.group("unit"), text)


_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "ten": 10,
    "twelve": 12,
}
_NUMBERS["thirty"] = 30


def request_periods(text: str, today: date | None = None) -> list[tuple[date, date]]:
    """The date periods a request names: days, months, quarters, years, ranges, "last N days".

    Two dates joined as a range ("from X to Y", "between X and Y", "X through Y") are one period
    from the start of the first to the end of the second, whatever their precision. Relative
    periods ("last 7 days") end on ``today`` (the newest shard's day for a family); without
    ``today`` they are ignored. Each span of text is read once, most precise form first; the
    periods are in the order the text names them.
    """
    found: list[tuple[int, int, date, date]] = []  # (span start, span end, period start, period end)

    def free(m: re.Match[str]) -> bool:
        return all(m.end() <= a or m.start() >= b for a, b, _, _ in found)

    def add(m: re.Match[str], start: date, end: date) -> None:
        found.append((m.start(), m.end(), start, end))

    for pattern in _DAY_PATTERNS:
        for m in pattern.finditer(text):
            month = _MONTHS[m["mon"].lower()] if "mon" in m.groupdict() and m["mon"] else int(m["month"])
            try:
                day = date(int(m["year"]), month, int(m["day"]))
            except ValueError:
                continue
            if free(m):
                add(m, day, day)
    for pattern in _QUARTER_PATTERNS:
        for m in pattern.finditer(text):
            q = int(m["q"]) if m.groupdict().get("q") else _ORDINAL_QUARTER[m["ord"].lower()]
            year = int(m["year"])
            if free(m):
                add(m, date(year, 3 * q - 2, 1), _month_end(year, 3 * q))
    for pattern in _MONTH_PATTERNS:
        for m in pattern.finditer(text):
            month = _MONTHS[m["mon"].lower()] if m.groupdict().get("mon") else int(m["month"])
            year = int(m["year"])
            if free(m):
                add(m, date(year, month, 1), _month_end(year, month))
    for m in _BARE_YEAR.finditer(text):
        year = int(m["year"])
        if free(m):
            add(m, date(year, 1, 1), date(year, 12, 31))
    periods = _join_ranges(text, sorted(found))
    if today is not None:
        # "the last 99999 years" reaches back past the calendar's first day: it starts there
        reach = (today - date.min).days
        periods.extend((today - timedelta(days=min(days - 1, reach)), today) for _, days in _relative(text))
    return periods


_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "quarter": 91, "year": 365}
_UNIT_GRAIN = {"day": DAY, "week": DAY, "month": MONTH, "quarter": QUARTER, "year": YEAR}


def _relative(text: str) -> list[tuple[str, int]]:
    """Each relative period a request names, as (the grain it counts in, its length in days): "last 7 days" →
    (day, 7), "past two weeks" → (day, 14)."""
    found = []
    for m in _RELATIVE.finditer(text):
        raw = (m["n"] or "one").lower()
        digits = raw.lstrip("0") or "0"
        # past nine digits a period is longer than the calendar anyway (and int() refuses 4,300 digits)
        n = (int(digits) if len(digits) <= 9 else 10**9) if raw.isdigit() else _NUMBERS[raw]
        unit = m["unit"].lower()
        found.append((_UNIT_GRAIN[unit], _UNIT_DAYS[unit] * n))
    return found


_COARSER = {DAY: 0, MONTH: 1, QUARTER: 2, YEAR: 3}


def dated_families(families: Mapping[str, Family], text: str) -> list[str]:
    """The families a request's dates name in their own terms: a date or period that starts where one of
    its shards starts and ends where one ends ("January 18, 2023" → a day family holding it; "April 2022" → a
    month family), or a relative period counted in its grain ("the last 7 days" → a day family, "the past 3
    months" → a month family). Where families of several grains fit, only the coarsest (a month family for
    "April 2022", not the day family that holds its 30 days). Keys sorted.
    """
    if not families:
        return []
    absolute = request_periods(text)
    relative = {grain for grain, _ in _relative(text)}
    if not absolute and not relative:
        return []
    fit: dict[str, int] = {}
    for key, family in families.items():
        starts = {shard.start for shard in family.shards}
        ends = {shard.end for shard in family.shards}
        if family.grain in relative or any(start in starts and end in ends for start, end in absolute):
            fit[key] = _COARSER[family.grain]
    coarsest = max(fit.values(), default=None)
    return sorted(key for key, grain in fit.items() if grain == coarsest)


def _join_ranges(text: str, found: list[tuple[int, int, date, date]]) -> list[tuple[date, date]]:
    """Periods in text order, two of them joined into one where the text makes them a range."""
    periods: list[tuple[date, date]] = []
    i = 0
    while i < len(found):
        a_from, a_to, start, end = found[i]
        if i + 1 < len(found):
            b_from, _, b_start, b_end = found[i + 1]
            between = text[a_to:b_from]
            opened = _RANGE_OPEN.search(text[:a_from]) is not None
            if _RANGE_JOIN.fullmatch(between) or (opened and _RANGE_AND.fullmatch(between)):
                periods.append((min(start, b_start), max(end, b_end)))
                i += 2
                continue
        periods.append((start, end))
        i += 1
    return periods


def resolve_shards(family: Family, text: str) -> list[str]:
    """The shards a request's dates need (oldest first); empty when it names no date they hold."""
    return family.resolve(request_periods(text, today=family.newest.end))


# ---- rendering ----------------------------------------------------------------------------


def how_to_query(family: Family, dialect: str, quote: str) -> str:
    """One line telling the LLM how to read several shards in the dialect.

    ``quote`` is the quoted newest shard (``schema.name`` as written in SQL).
    """
    newest = family.newest
    if dialect == "bigquery":
        head = quote.rsplit(".", 1)[0] + "." if "." in quote else ""
        # _TABLE_SUFFIX is the whole name after the wildcard, what follows the date too ('2003revision')
        skip = len(family.schema) + 1 + len(family.prefix) if family.schema else len(family.prefix)
        first, last = (s.key[skip:] for s in (family.shards[0], newest))
        return (
            f"query several shards with the wildcard `{head}{family.prefix}*` and "
            f"WHERE _TABLE_SUFFIX BETWEEN '{first}' AND '{last}'"
        )
    return f"query several shards with UNION ALL of the shards (e.g. SELECT … FROM {quote} UNION ALL SELECT … FROM …)"


def family_header(
    family: Family,
    dialect: str,
    quote: str,
    asked: Sequence[str] = (),
    shown: str | None = None,
    *,
    others: bool = False,
) -> str:
    """The lines that introduce a family above one shard's columns (``shown``: that shard, the newest by
    default; ``quote``: its name as written in SQL; ``asked``: the shard keys the request needs; ``others``:
    blocks of shards with other columns follow)."""
    first, last = family.shards[0], family.newest
    whose = "the last one's" if shown in (None, last.key) else f"{_bare(shown)}'s"
    if others:
        whose += "; shards with other columns follow"
    lines = [
        f"-- table family {visible(family.pattern)}: {len(family.shards)} shards, one per {family.grain}, "
        f"first {_bare(first.key)}, last {_bare(last.key)} (columns below are {whose})",
        f"-- {visible(how_to_query(family, dialect, quote))}",
    ]
    if asked and list(asked) != [last.key]:
        lines.append("-- shards for this request: " + shard_list(family, asked))
    return "\n".join(lines)


#: A request's shards are listed whole up to this many; a longer run is written as its ends and count.
SHARDS_LISTED = 12


def shard_list(family: Family, asked: Sequence[str]) -> str:
    """Shards of a family (those a request needs, those of one set of columns), as text of a bounded length: a
    year of day shards is its first and last ("events_20170101 through events_20171231 (365 consecutive
    shards)"), not 365 names."""
    consecutive = False
    if len(asked) > SHARDS_LISTED:
        position = {key: i for i, key in enumerate(family.members)}
        at = sorted(position.get(k, -1) for k in asked)
        consecutive = at[0] >= 0 and at == list(range(at[0], at[0] + len(at)))
        asked = sorted(asked, key=position.__getitem__) if consecutive else asked
    return listed_shards([_bare(k) for k in asked], consecutive)


def listed_shards(names: Sequence[str], consecutive: bool = False) -> str:
    """Shard names (as they are to be written) as text of a bounded length: all of them up to
    ``SHARDS_LISTED``; else a consecutive run as its ends and count, any other list as its first ones, the
    last and the count."""
    if len(names) <= SHARDS_LISTED:
        return ", ".join(names)
    if consecutive:
        return f"{names[0]} through {names[-1]} ({len(names)} consecutive shards)"
    return ", ".join(names[: SHARDS_LISTED - 1]) + f", … {names[-1]} ({len(names)} shards)"


def _bare(key: str) -> str:
    return visible(key.rsplit(".", 1)[-1])
