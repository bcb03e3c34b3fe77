r"""Snapshot → prompt text. Pure functions: no I/O, deterministic output for the same input.

The text is compact and reads like a schema an engineer would write on a whiteboard:

    # sales.orders — One row per customer order.
    order_id integer PK
    customer_id integer NOT NULL → sales.customers.customer_id — Who placed the order
    status varchar(20) — Fulfilment status; e.g. pending, shipped
    sample rows (CSV):
    order_id,customer_id,status
    1,17,shipped

Identifiers are shown exactly as they must be written in SQL for the dialect (quoted when needed).

The database is untrusted, so nothing of its text reaches the prompt or a terminal as a control character:
every name, type, comment and sample value goes through :func:`visible` (C0, DEL, C1 and the Unicode
line/bidi controls become ``\x1b``-style escapes; line breaks and tabs in comments become spaces). A name
with such a character: PostgreSQL gets its own escaped form, ``U&"orders\001B[2K"`` (valid SQL for that name);
other dialects get the quoted name with ``\x1b`` escapes and its backslashes doubled (not SQL: they have no
escapes in identifiers). A name without one is written exactly, backslashes included (MySQL reads `` `a\b` ``
as the name a\b).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dbmeta_app.dialects import dialect_family
from dbmeta_app.schema.families import detect_families, family_header, family_of, shard_list
from dbmeta_app.schema.models import Column, Layout, Snapshot, Table
from dbmeta_app.schema.printable import CONTROL, visible

_PLAIN = {
    # unquoted identifiers fold to lower case in PostgreSQL, so anything else needs quotes there
    "postgresql": re.compile(r"^[a-z_][a-z0-9_$]*$"),
    "mysql": re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$"),
    "mariadb": re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$"),
    # a Nested column's fields are written name.field
    "clickhouse": re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"),
}
_DEFAULT_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset(
    """
    all and any as asc between by case check column constraint create
    cross current_date current_time default delete desc distinct drop else end except exists
    false fetch for foreign from full grant group having in inner insert
    intersect into is join key leading left like limit natural not null
    offset on or order outer primary references right select table then to
    true union unique update user using values when where window with
    """.split()
)
MAX_EXAMPLES_SHOWN = 5


def _escaped_ident(name: str, dialect: str) -> str:
    """A name holding control characters, written so that no two names look alike."""
    if dialect_family(dialect) == "postgresql":
        # PostgreSQL's Unicode-escaped identifier: the exact name, in SQL the database accepts
        out = []
        for char in name.replace("\\", "\\\\"):
            code = ord(char)
            if CONTROL.match(char) is None or char == "\\":
                out.append(char.replace('"', '""'))
            else:
                out.append(f"\\{code:04X}" if code <= 0xFFFF else f"\\+{code:06X}")
        return 'U&"' + "".join(out) + '"'
    escaped = visible(name.replace("\\", "\\\\"))
    if dialect in ("mysql", "mariadb"):
        return "`" + escaped.replace("`", "``") + "`"
    return '"' + escaped.replace('"', '""') + '"'


@functools.lru_cache(maxsize=65_536)
def quote_ident(name: str, dialect: str) -> str:
    """Quote an identifier for the dialect when it is not a plain, non-reserved name."""
    plain = _PLAIN.get(dialect_family(dialect), _DEFAULT_PLAIN)
    if plain.match(name) and name.lower() not in _RESERVED:
        return name
    if CONTROL.search(name):
        return _escaped_ident(name, dialect)
    if dialect in ("mysql", "mariadb"):
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def quote_table(key: str, table: Table | None, dialect: str) -> str:
    """Render a table key (schema.table) as it is written in SQL."""
    if table is not None:
        parts = [table.schema, table.name] if table.schema else [table.name]
    else:
        parts = key.split(".", 1) if "." in key else [key]
    return ".".join(quote_ident(p, dialect) for p in parts if p is not None)


def _one_line(text: str) -> str:
    return visible(" ".join(text.split()))


def column_line(col: Column, fk_targets: dict[str, str], dialect: str) -> str:
    """Render one column: name, type, PK/NOT NULL, FK target, description and example values."""
    # ClickHouse types say Nullable(...): no NOT NULL noise there
    typed_nulls = dialect_family(dialect) == "clickhouse"
    parts = [quote_ident(col.name, dialect), visible(col.type)]
    if col.primary_key:
        parts.append("PK")
    elif not col.nullable and not typed_nulls:
        parts.append("NOT NULL")
    target = fk_targets.get(col.name)
    if target:
        parts.append(f"→ {target}")
    line = " ".join(parts)
    notes = []
    if col.text:
        notes.append(_one_line(col.text))
    if col.examples:
        notes.append("e.g. " + ", ".join(_one_line(e) for e in col.examples[:MAX_EXAMPLES_SHOWN]))
    if notes:
        line += " — " + "; ".join(notes)
    return line


def _layout_line(table: Table, layout: Layout, dialect: str) -> str:
    """One line on how an analytical table is stored: what a query should filter on, and how to read it."""
    if table.kind == "dictionary":
        return f"read with dictGet('{visible(table.key)}', 'column', key); no foreign keys declared"
    if table.kind == "materialized_view":
        where = f"writes to {visible(layout.target)}" if layout.target else "keeps its rows in an inner table"
        return f"materialized view: {where}; no foreign keys declared"
    if table.kind == "view":
        return "view; no foreign keys declared"
    parts = [f"engine {visible(layout.engine)}"]
    for label, value in (
        ("ORDER BY", layout.sorting_key),
        ("PRIMARY KEY", layout.primary_key),
        ("PARTITION BY", layout.partition_key),
        ("SAMPLE BY", layout.sampling_key),
    ):
        if value:
            value = _one_line(value)
            parts.append(f"{label} ({value})" if "," in value else f"{label} {value}")
    parts.append("no foreign keys declared")
    return "; ".join(parts)


def table_header(table: Table, dialect: str) -> str:
    """Render a table's heading: its name as written in SQL, its kind and description, and its layout line
    (how an analytical table is stored) when it has one."""
    header = "# " + quote_table(table.key, table, dialect)
    if table.kind != "table":
        header += f" ({visible(table.kind.replace('_', ' '))})"
    if table.text:
        header += " — " + _one_line(table.text)
    if table.layout is not None:
        header += "\n" + _layout_line(table, table.layout, dialect)
    return header


def render_table(table: Table, snapshot: Snapshot, with_samples: bool = True) -> str:
    """Render one table (name, description, columns with PK/FK markers, optional CSV sample rows)."""
    dialect = snapshot.dialect
    lines = [table_header(table, dialect)]
    single: dict[str, str] = {}
    composite: list[str] = []
    for fk in table.foreign_keys:
        ref = quote_table(fk.ref_table, snapshot.tables.get(fk.ref_table), dialect)
        if len(fk.columns) == 1:
            single[fk.columns[0]] = f"{ref}.{quote_ident(fk.ref_columns[0], dialect)}"
        else:
            cols = ", ".join(quote_ident(c, dialect) for c in fk.columns)
            refs = ", ".join(quote_ident(c, dialect) for c in fk.ref_columns)
            composite.append(f"FK ({cols}) → {ref} ({refs})")
    lines.extend(column_line(c, single, dialect) for c in table.columns)
    if len(table.primary_key) > 1:
        lines.append("PK (" + ", ".join(quote_ident(c, dialect) for c in table.primary_key) + ")")
    lines.extend(composite)
    if with_samples and table.sample_rows:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([visible(c.name) for c in table.columns])
        for row in table.sample_rows:
            writer.writerow(["" if v is None else visible(v) for v in row])
        lines.append("sample rows (CSV):")
        lines.append(buf.getvalue().rstrip("\n"))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a rendering: a table, or a date-sharded family written once as one of its shards."""

    table: Table  # the table whose columns are written (a family's newest shard, or newest asked one)
    keys: tuple[str, ...]  # the asked keys it stands for (a family's asked shards, request order)
    header: str = ""  # a family's lines above the table ("" for a table alone)


def blocks_of(snapshot: Snapshot, keys: Sequence[str], named: bool = True) -> list[Block]:
    """Group the asked keys (known ones, in order) into blocks: the shards of a family become one block,
    where its first shard is asked for.

    The family's columns are its newest asked shard's (the newest shard's, in the full schema). An asked
    shard whose columns differ from those (a family whose columns changed over time) is written after it,
    once per set of columns, under a line naming the shards that have them. ``named``: the keys are a
    request's, and the family's header names the shards asked for; otherwise (the full schema) the block
    stands for every shard.
    """
    families = family_of(snapshot)
    asked: dict[str, list[str]] = {}  # family key → the shards asked for, in request order
    for key in keys:
        if key in families and key in snapshot.tables:
            asked.setdefault(families[key].key, []).append(key)
    info = _shard_info(snapshot) if asked else {}

    def position(shard: str) -> int:  # oldest first within its family
        return info[shard][0]

    blocks: list[Block] = []
    for key in keys:
        if key not in snapshot.tables:
            continue
        family = families.get(key)
        if family is None:
            blocks.append(Block(snapshot.tables[key], (key,)))
            continue
        shards = asked[family.key]
        if shards[0] != key:
            continue
        lead = snapshot.tables[max(shards, key=position)]
        by_shape: dict[int, list[str]] = {}
        for shard in shards:
            by_shape.setdefault(info[shard][1], []).append(shard)
        same = tuple(by_shape.pop(info[lead.key][1]))
        quoted = quote_table(lead.key, lead, snapshot.dialect)
        header = family_header(
            family, snapshot.dialect, quoted, shards if named else (), lead.key, others=bool(by_shape)
        )
        blocks.append(Block(lead, same, header))
        for members in by_shape.values():
            note = (
                f"-- family {visible(family.pattern)}: these are the columns of {shard_list(family, members)}"
            )
            blocks.append(Block(snapshot.tables[max(members, key=position)], tuple(members), note))
    return blocks


def _shard_info(snapshot: Snapshot) -> dict[str, tuple[int, int]]:
    """Each shard's (position in its family, shape): the shape (columns and keys) as a number, equal for
    equal shapes. Once per snapshot, so a request for a year of day shards compares numbers, not a year
    of column lists."""

    def compute(snap: Snapshot) -> dict[str, tuple[int, int]]:
        seen: dict[tuple[object, ...], int] = {}
        info: dict[str, tuple[int, int]] = {}
        for family in detect_families(snap).values():
            for position, key in enumerate(family.members):
                table = snap.tables[key]
                shape = seen.setdefault((table.columns, table.primary_key, table.foreign_keys), len(seen))
                info[key] = (position, shape)
        return info

    return snapshot.derived("shard_info", compute)


def rendered_tables(snapshot: Snapshot, keys: Sequence[str]) -> list[str]:
    """The tables whose columns a rendering of ``keys`` writes (a family's shards: one or a few of them);
    what column relevance needs scoring."""
    return [block.table.key for block in blocks_of(snapshot, keys)]


def render_schema(snapshot: Snapshot, tables: Sequence[str] | None = None, with_samples: bool = True) -> str:
    """Render the given tables of the snapshot (all of them, in key order, when tables is None).

    A date-sharded family is rendered once, where its first shard is asked for: a header (pattern,
    count, first and last shard, the shards asked for, how to query several) above its newest shard.
    """
    keys = list(snapshot.tables) if tables is None else tables
    return render_blocks(snapshot, blocks_of(snapshot, keys, named=tables is not None), with_samples)


def render_blocks(snapshot: Snapshot, blocks: Sequence[Block], with_samples: bool = True) -> str:
    """Render blocks (``blocks_of``) whole: each family's header above its table."""
    return "\n\n".join(
        (b.header + "\n" if b.header else "") + render_table(b.table, snapshot, with_samples) for b in blocks
    )


class NameIndex:
    """Lookups from the names people and LLMs write to a snapshot's keys (build once per snapshot)."""

    def __init__(self, snapshot: Snapshot, *, families: bool = False) -> None:
        self.keys = snapshot.tables
        self.lowered: dict[str, list[str]] = {}
        self.bare: dict[str, list[str]] = {}
        self.bare_lowered: dict[str, list[str]] = {}
        for table_key, table in snapshot.tables.items():
            self.lowered.setdefault(table_key.lower(), []).append(table_key)
            self.bare.setdefault(table.name, []).append(table_key)
            self.bare_lowered.setdefault(table.name.lower(), []).append(table_key)
        # ``families``: a date-sharded family by the name a search answers for it (``events_YYYYMMDD``) is its
        # newest shard, which renders as the family. For asking a schema, not for SQL: no table has that name.
        self.families: dict[str, str] = {}
        for family in detect_families(snapshot).values() if families else ():
            newest = family.newest.key
            self.families[family.key] = newest
            self.lowered.setdefault(family.key.lower(), []).append(newest)
            self.bare.setdefault(family.pattern, []).append(newest)
            self.bare_lowered.setdefault(family.pattern.lower(), []).append(newest)

    def resolve(self, name: str) -> str | None:
        """Return the key for one name, the first way that names exactly one table (else None).

        Exact (quotes as SQL writes them removed), case-insensitive, a bare name as spelled, a bare name in
        any case: ``customers`` beside ``"Customers"`` is the one spelled so, ``CUSTOMERS`` is neither. With
        ``families``, a family's name (``events_YYYYMMDD``, as a search answers it) is its newest shard.
        """
        name = name.strip()
        if name in self.keys:
            return name
        parts = _name_parts(name)
        plain = ".".join(parts)
        if plain in self.keys:
            return plain
        if plain in self.families:
            return self.families[plain]
        tail = parts[-1] if parts else plain
        for found in (
            self.lowered.get(plain.lower(), []),
            self.bare.get(
                tail, []
            ),  # "main.orders" for SQLite's bare keys, or a bare name for a qualified key
            self.bare_lowered.get(tail.lower(), []),
        ):
            if len(found) == 1:
                return found[0]
            if found:
                return None  # several tables answer to it: not guessed
        return None


_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|\[([^\]]*)\]|([^."`\[]+)')


def _name_parts(name: str) -> list[str]:
    """``sales."Order Lines"`` → ["sales", "Order Lines"]: each part unquoted as SQL writes it."""
    parts: list[str] = []
    for m in _NAME_PART.finditer(name):
        if m[1] is not None:
            parts.append(m[1].replace('""', '"'))
        elif m[2] is not None:
            parts.append(m[2].replace("``", "`"))
        elif m[3] is not None:
            parts.append(m[3])
        elif m[4].strip():
            parts.append(m[4].strip())
    return parts


def resolve_table_names(
    snapshot: Snapshot, names: Iterable[str], index: NameIndex | None = None
) -> tuple[list[str], list[str]]:
    """Map requested names to snapshot keys (exact, case-insensitive, or a unique bare name).

    Returns (resolved keys in request order without duplicates, names that matched nothing).
    """
    index = index or NameIndex(snapshot, families=True)
    resolved: list[str] = []
    unknown: list[str] = []
    for raw in names:
        key = index.resolve(raw)
        if key is None:
            unknown.append(raw)
        elif key not in resolved:
            resolved.append(key)
    return resolved, unknown
