"""Render ranked tables within a token budget. Pure: snapshot, ranking and budget in, text out.

When the plain rendering (``render.render_schema``) fits, it is returned unchanged. Otherwise:
- every table keeps its header, its key columns (primary key, foreign keys, columns a foreign key of
  another selected table points at, and inferred join keys: an ``id``/``*_id``/``*_key`` column
  whose name another selected table shares or that names another selected table), and a summary of
  what it does not show ("… 212 more columns: 180 INTEGER, 30 STRING, 2 DATE");
- the other columns fill the rest of the budget: first those the request makes relevant (the
  caller's column relevance, best first, across tables), then the rest round-robin in column order,
  so every table shows its leading columns;
- nested fields (dotted names, ``a.b.c``) are shown grouped under their parent (``a``): under the parent's
  own line when it is a column too (a record), else under a heading; a field shown brings its record's line;
- a table with exactly the columns and keys of one already written (a shard, a partition) is written as
  its header and "same columns as …";
- sample rows are dropped, and when even the tables' minimal forms do not fit, the lowest-ranked
  tables are left out (the first one always stays, so a budget below its minimal form is exceeded).

Token counts are an estimate (``estimate_tokens``), not a tokenizer: see its docstring.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from dbmeta_app.schema.models import Column, Snapshot, Table
from dbmeta_app.schema.printable import visible
from dbmeta_app.schema.render import (
    Block,
    blocks_of,
    column_line,
    quote_ident,
    quote_table,
    render_blocks,
    table_header,
)

#: Named in every budgeted answer's metadata so a change of estimate is visible to callers.
ESTIMATOR = "wordpiece-like-v1"
_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]")
_JOIN_NAME = re.compile(r"(?:^|_)(?:id|key)$", re.IGNORECASE)
_BASE_TYPE = re.compile(r"\(.*$")
SUMMARY_TYPES = 4
SUMMARY_PARENTS = 3
SUMMARY_SLACK = 8


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of text the way a subword tokenizer splits it.

    Every punctuation character is a token, a run of digits one per 3 digits, a run of letters one per
    6 letters (common words are one piece, long identifiers split). Whitespace is free, so the estimate of
    lines joined by newlines is the sum of theirs. Against MiniLM's WordPiece on the budgeted texts of ``bench/spider2_budget.py``: median ratio 1.0,
    0.84–1.25 per text.
    """
    total = 0
    for piece in _PIECES.findall(text):
        if piece[0].isalpha():
            total += math.ceil(len(piece) / 6)
        elif piece[0].isdigit():
            total += math.ceil(len(piece) / 3)
        else:
            total += 1
    return total


@dataclass(frozen=True, slots=True)
class TableFit:
    """What one table shows of its columns."""

    key: str
    total: int
    shown: tuple[str, ...]  # column names, in table order
    omitted_types: Mapping[str, int] = field(default_factory=dict)
    samples: bool = False

    def metadata(self) -> dict[str, object]:
        return {
            "columns": self.total,
            "shown": len(self.shown),
            "omitted": self.total - len(self.shown),
            "omitted_types": dict(self.omitted_types),
        }


@dataclass(frozen=True, slots=True)
class Fitted:
    """A rendering within a budget: the text, the tables it shows and what each shows."""

    text: str
    tokens: int
    truncated: bool
    tables: tuple[TableFit, ...]
    omitted_tables: tuple[str, ...] = ()

    def metadata(self, max_tokens: int | None) -> dict[str, object]:
        """The ``budget`` entry of a prompt item's metadata."""
        data: dict[str, object] = {
            "max_tokens": max_tokens,
            "estimated_tokens": self.tokens,
            "estimator": ESTIMATOR,
            "truncated": self.truncated,
        }
        if self.truncated:
            data["tables"] = {t.key: t.metadata() for t in self.tables}
            data["omitted_tables"] = list(self.omitted_tables)
        return data


def parent_of(name: str) -> str | None:
    """The parent of a nested field (``a`` for ``a.b.c``); None for a top-level column."""
    head, dot, _ = name.partition(".")
    return head if dot and head else None


def key_columns(table: Table, selected: Mapping[str, Table]) -> set[str]:
    """Columns a query needs to join this table with the others: declared and inferred keys."""
    keys = set(table.primary_key)
    for fk in table.foreign_keys:
        keys.update(fk.columns)
    others = [t for k, t in selected.items() if k != table.key]
    for other in others:
        for fk in other.foreign_keys:
            if fk.ref_table == table.key:
                keys.update(fk.ref_columns)
    shared = {c.name.lower() for other in others for c in other.columns if _JOIN_NAME.search(c.name)}
    named = {other.name.lower().rstrip("s") for other in others}
    for column in table.columns:
        lowered = column.name.lower()
        if not _JOIN_NAME.search(lowered) or lowered in keys:
            continue
        stem = _JOIN_NAME.sub("", lowered).rstrip("_").rstrip("s")
        if lowered in shared or (stem and stem in named):
            keys.add(column.name)
    return keys


def _base_type(column: Column) -> str:
    return _BASE_TYPE.sub("", column.type).strip().upper() or "?"


def _summary(omitted: Sequence[Column]) -> str:
    types = Counter(_base_type(c) for c in omitted)
    ordered = sorted(types.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{n} {visible(t)}" for t, n in ordered[:SUMMARY_TYPES]]
    rest = sum(n for _, n in ordered[SUMMARY_TYPES:])
    if rest:
        parts.append(f"{rest} other")
    line = f"… {len(omitted)} more columns: " + ", ".join(parts)
    parents = Counter(p for c in omitted if (p := parent_of(c.name)) is not None)
    if parents:
        top = sorted(parents.items(), key=lambda item: (-item[1], item[0]))[:SUMMARY_PARENTS]
        line += "; nested under " + ", ".join(f"{visible(p)} ({n})" for p, n in top)
    return line


def _parent_line(parent: str, total: int, shown: int, dialect: str) -> str:
    return f"{quote_ident(parent, dialect)}: nested, {shown} of {total} fields"


def _nested_note(total: int, shown: int) -> str:
    return f" (nested: {shown} of {total} fields)"


class _Plan:
    """One table's rendering under construction (lines are estimated as they are chosen)."""

    def __init__(self, block: Block, snapshot: Snapshot, keys: set[str]) -> None:
        self.table = table = block.table
        self.prefix = block.header
        self.dialect = snapshot.dialect
        self.fk_targets: dict[str, str] = {}
        self.composite: list[str] = []
        for fk in table.foreign_keys:
            ref = quote_table(fk.ref_table, snapshot.tables.get(fk.ref_table), self.dialect)
            if len(fk.columns) == 1:
                self.fk_targets[fk.columns[0]] = f"{ref}.{quote_ident(fk.ref_columns[0], self.dialect)}"
            else:
                cols = ", ".join(quote_ident(c, self.dialect) for c in fk.columns)
                refs = ", ".join(quote_ident(c, self.dialect) for c in fk.ref_columns)
                self.composite.append(f"FK ({cols}) → {ref} ({refs})")
        self.children = Counter(p for c in table.columns if (p := parent_of(c.name)) is not None)
        # a record that is a column itself (BigQuery's STRUCT): its fields are written under its line
        self.records = {c.name: c for c in table.columns if c.name in self.children}
        self.shown: set[str] = set()
        self.parents_shown: set[str] = set()
        self.tokens = estimate_tokens(self._header())
        self.tokens += sum(estimate_tokens(line) for line in self._trailer())
        # room for the summary line: the one of all columns, plus slack for other nested parents' names
        self.reserve = estimate_tokens(_summary(table.columns)) + SUMMARY_SLACK
        self.tokens += self.reserve
        for column in table.columns:
            if column.name in keys:
                self.tokens += self.cost(column)
                self.add(column)

    def _header(self) -> str:
        head = table_header(self.table, self.dialect)
        return f"{self.prefix}\n{head}" if self.prefix else head

    def _trailer(self) -> list[str]:
        lines = []
        if len(self.table.primary_key) > 1:
            lines.append(
                "PK (" + ", ".join(quote_ident(c, self.dialect) for c in self.table.primary_key) + ")"
            )
        return lines + self.composite

    def line(self, column: Column, children: int = 0) -> str:
        text = column_line(column, self.fk_targets, self.dialect)
        if column.name in self.children:
            text += _nested_note(self.children[column.name], children)
        if parent_of(column.name) is None:
            return text
        # a field is written as its path is in SQL: record.field, each part quoted only when it must be
        quoted = quote_ident(column.name, self.dialect)
        path = ".".join(quote_ident(part, self.dialect) for part in column.name.split("."))
        return "  " + path + text[len(quoted) :]

    def _group_line(self, parent: str, shown: int) -> str:
        record = self.records.get(parent)
        if record is not None:
            return self.line(record, shown)
        return _parent_line(parent, self.children[parent], shown, self.dialect)

    def cost(self, column: Column) -> int:
        """Tokens that showing the column adds (its parent's line the first time a child is shown)."""
        if column.name in self.records:
            return 0 if column.name in self.parents_shown else self._group_cost(column.name)
        cost = estimate_tokens(self.line(column))
        parent = parent_of(column.name)
        if parent is not None and parent not in self.parents_shown:
            cost += self._group_cost(parent)
        return cost

    def _group_cost(self, parent: str) -> int:
        return estimate_tokens(self._group_line(parent, self.children[parent]))

    def add(self, column: Column) -> None:
        self.shown.add(column.name)
        parent = parent_of(column.name) or (column.name if column.name in self.records else None)
        if parent is not None:
            self.parents_shown.add(parent)
            if parent in self.records:
                self.shown.add(parent)

    def render(self) -> tuple[str, TableFit]:
        table = self.table
        lines = [self._header()]
        shown = [c for c in table.columns if c.name in self.shown]
        by_parent: dict[str, list[Column]] = {}
        for column in shown:
            parent = parent_of(column.name)
            if parent is not None:
                by_parent.setdefault(parent, []).append(column)
        for column in shown:
            parent = parent_of(column.name)
            if column.name in self.records:
                children = by_parent.get(column.name, [])
                lines.append(self._group_line(column.name, len(children)))
                lines.extend(self.line(child) for child in children)
            elif parent is None:
                lines.append(self.line(column))
            elif parent not in self.records and column is by_parent[parent][0]:
                # a group without a record column is written where its first shown field is
                children = by_parent[parent]
                lines.append(self._group_line(parent, len(children)))
                lines.extend(self.line(child) for child in children)
        omitted = [c for c in table.columns if c.name not in self.shown]
        if omitted:
            lines.append(_summary(omitted))
        lines.extend(self._trailer())
        types = Counter(_base_type(c) for c in omitted)
        fit = TableFit(
            table.key, len(table.columns), tuple(c.name for c in shown), dict(sorted(types.items()))
        )
        return "\n".join(lines), fit


def _fill(candidates: Sequence[tuple[_Plan, Column]], used: int, max_tokens: int) -> int:
    """Show the candidate columns, in order, that still fit."""
    for plan, column in candidates:
        if column.name in plan.shown:
            continue
        cost = plan.cost(column)
        if used + cost <= max_tokens:
            plan.add(column)
            used += cost
    return used


def _show_whole_if_it_fits(plan: _Plan, used: int, max_tokens: int) -> int:
    """Show all of a cut table's columns when they fit in the room its summary line no longer needs, or
    when they are no longer than that summary line."""
    missing = [c for c in plan.table.columns if c.name not in plan.shown]
    if not missing:
        return used - plan.reserve
    saved = (set(plan.shown), set(plan.parents_shown))
    extra = 0
    for column in missing:
        extra += plan.cost(column)
        plan.add(column)
    # it fits, or it is no longer than the summary it replaces (a first table kept over the budget)
    if used - plan.reserve + extra <= max_tokens or extra <= estimate_tokens(_summary(missing)):
        return used - plan.reserve + extra
    plan.shown, plan.parents_shown = saved
    return used


def render_within(
    snapshot: Snapshot,
    keys: Sequence[str],
    max_tokens: int | None,
    relevance: Mapping[str, Mapping[str, float]] | None = None,
    with_samples: bool = False,
) -> Fitted:
    """Render the tables (best first) within ``max_tokens`` estimated tokens (None or 0: no limit).

    ``relevance`` scores columns per table key for the request (higher first, absent = 0); it is computed
    by the caller, so this stays pure. The same inputs always give the same text.
    """
    blocks = blocks_of(snapshot, keys)
    text = render_blocks(snapshot, blocks, with_samples)
    tokens = estimate_tokens(text)
    if not max_tokens or tokens <= max_tokens:
        whole = tuple(
            TableFit(
                key,
                len(b.table.columns),
                tuple(c.name for c in b.table.columns),
                {},
                bool(with_samples and b.table.sample_rows),
            )
            for b in blocks
            for key in b.keys
        )
        return Fitted(text, tokens, False, whole)
    selected = {b.table.key: b.table for b in blocks}
    plans: list[_Plan] = []
    twins: dict[str, tuple[str, str]] = {}  # key -> (the planned table it repeats, its text)
    first_of: dict[tuple[object, ...], str] = {}
    order: list[Block] = []
    used = 0
    for block in blocks:
        table = block.table
        shape = (table.columns, table.primary_key, table.foreign_keys)
        twin = first_of.get(shape)
        if twin is not None:
            # a copy, another family of the same shape: its columns are another selected table's, written once
            text = f"{table_header(table, snapshot.dialect)}\nsame columns as {quote_table(twin, None, snapshot.dialect)}"
            text = f"{block.header}\n{text}" if block.header else text
            cost = estimate_tokens(text)
            if used + cost > max_tokens:
                break
            twins[table.key] = (twin, text)
        else:
            plan = _Plan(block, snapshot, key_columns(table, selected))
            if plans and used + plan.tokens > max_tokens:
                break  # this table's minimal form does not fit: it and every lower-ranked one are left out
            plans.append(plan)
            first_of.setdefault(shape, table.key)
            cost = plan.tokens
        order.append(block)
        used += cost
    scores = relevance or {}
    relevant: list[tuple[float, int, int, _Plan, Column]] = []
    rest: list[tuple[int, int, _Plan, Column]] = []
    for rank, plan in enumerate(plans):
        table_scores = scores.get(plan.table.key, {})
        for position, column in enumerate(plan.table.columns):
            if column.name in plan.shown:
                continue
            score = table_scores.get(column.name, 0.0)
            if score > 0:
                relevant.append((-score, rank, position, plan, column))
            else:
                rest.append((position, rank, plan, column))
    relevant.sort(key=lambda item: item[:3])
    rest.sort(key=lambda item: item[:2])
    candidates = [(p, c) for *_, p, c in relevant] + [(p, c) for *_, p, c in rest]
    used = _fill(candidates, used, max_tokens)
    # a table shown whole needs no summary line: the room kept for it goes to the others
    for plan in plans:
        used = _show_whole_if_it_fits(plan, used, max_tokens)
    _fill(candidates, used, max_tokens)
    rendered = {plan.table.key: plan.render() for plan in plans}
    blocks_text: list[str] = []
    fits: list[TableFit] = []
    for block in order:
        key = block.table.key
        if key in twins:
            twin, text = twins[key]
            shown = rendered[twin][1]
            fit = TableFit(key, shown.total, shown.shown, shown.omitted_types)
        else:
            text, fit = rendered[key]
        blocks_text.append(text)
        fits.extend(replace(fit, key=asked) for asked in block.keys)  # a family: each shard asked for
    text = "\n\n".join(blocks_text)
    omitted = tuple(key for block in blocks[len(order) :] for key in block.keys)
    return Fitted(text, estimate_tokens(text), True, tuple(fits), omitted)
