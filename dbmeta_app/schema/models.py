"""The structured schema snapshot: frozen dataclasses with a JSON round trip.

A snapshot is what introspection produces, what the cache stores (as JSON) and what
rendering, retrieval and preflight read. Table keys are qualified names: ``schema.table``
wherever the database has schemas, the bare name in SQLite's main schema.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    default: str | None = None
    comment: str | None = None
    description: str | None = None
    examples: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.primary_key:
            data["primary_key"] = True
        for key in ("default", "comment", "description"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.examples:
            data["examples"] = list(self.examples)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Column:
        return cls(
            name=data["name"],
            type=data["type"],
            nullable=data.get("nullable", True),
            primary_key=data.get("primary_key", False),
            default=data.get("default"),
            comment=data.get("comment"),
            description=data.get("description"),
            examples=tuple(data.get("examples", ())),
        )

    @property
    def text(self) -> str | None:
        """The curated description, else the database comment."""
        return self.description or self.comment


@dataclass(frozen=True, slots=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str  # qualified key of the referenced table, as in Snapshot.tables
    ref_columns: tuple[str, ...]
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "columns": list(self.columns),
            "ref_table": self.ref_table,
            "ref_columns": list(self.ref_columns),
        }
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForeignKey:
        return cls(
            columns=tuple(data["columns"]),
            ref_table=data["ref_table"],
            ref_columns=tuple(data["ref_columns"]),
            name=data.get("name"),
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """How an analytical table stores its rows (ClickHouse): engine and key expressions, as the catalog says."""

    engine: str
    sorting_key: str | None = None  # ORDER BY
    primary_key: str | None = None  # PRIMARY KEY, when it is not the sorting key (a prefix of it)
    partition_key: str | None = None  # PARTITION BY
    sampling_key: str | None = None  # SAMPLE BY
    target: str | None = None  # where a materialized view writes (qualified key), or a dictionary's source

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"engine": self.engine}
        for key in ("sorting_key", "primary_key", "partition_key", "sampling_key", "target"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        return cls(
            engine=data["engine"],
            sorting_key=data.get("sorting_key"),
            primary_key=data.get("primary_key"),
            partition_key=data.get("partition_key"),
            sampling_key=data.get("sampling_key"),
            target=data.get("target"),
        )


@dataclass(frozen=True, slots=True)
class Table:
    schema: str | None
    name: str
    kind: str = "table"  # "table" | "view" | "materialized_view" | "dictionary"
    columns: tuple[Column, ...] = ()
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    comment: str | None = None
    description: str | None = None
    sample_rows: tuple[tuple[str | None, ...], ...] = ()  # values as truncated strings, columns order
    #: Why sample rows were asked for and not read, when that makes the answer incomplete (a time budget ran out).
    sample_note: str | None = None
    #: Physical layout, for analytical engines (ClickHouse): how the data is stored and sorted, which decides
    #: how a query should filter. None where the database has no such notion.
    layout: Layout | None = None

    @property
    def key(self) -> str:
        return qualified_name(self.schema, self.name)

    @property
    def text(self) -> str | None:
        """The curated description, else the database comment."""
        return self.description or self.comment

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": self.schema,
            "name": self.name,
            "kind": self.kind,
            "columns": [c.to_json() for c in self.columns],
        }
        if self.primary_key:
            data["primary_key"] = list(self.primary_key)
        if self.foreign_keys:
            data["foreign_keys"] = [fk.to_json() for fk in self.foreign_keys]
        if self.comment is not None:
            data["comment"] = self.comment
        if self.description is not None:
            data["description"] = self.description
        if self.sample_rows:
            data["sample_rows"] = [list(r) for r in self.sample_rows]
        if self.sample_note is not None:
            data["sample_note"] = self.sample_note
        if self.layout is not None:
            data["layout"] = self.layout.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Table:
        return cls(
            schema=data.get("schema"),
            name=data["name"],
            kind=data.get("kind", "table"),
            columns=tuple(Column.from_json(c) for c in data.get("columns", ())),
            primary_key=tuple(data.get("primary_key", ())),
            foreign_keys=tuple(ForeignKey.from_json(f) for f in data.get("foreign_keys", ())),
            comment=data.get("comment"),
            description=data.get("description"),
            sample_rows=tuple(tuple(r) for r in data.get("sample_rows", ())),
            sample_note=data.get("sample_note"),
            layout=Layout.from_json(data["layout"]) if data.get("layout") else None,
        )


T = TypeVar("T")

#: A database comment (table or column) is cut to this many characters when it is read: in the catalog query
#: where the dialect allows (PostgreSQL, MySQL/MariaDB), so a larger one never crosses the wire.
COMMENT_MAX = 2_000


def cut_comment(text: str | None) -> str | None:
    """A database comment cut to :data:`COMMENT_MAX` characters (an ellipsis marks the cut); None when empty."""
    if not text:
        return None
    return text if len(text) <= COMMENT_MAX else text[: COMMENT_MAX - 1] + "…"


def cut_comments(table: Table) -> Table:
    """The table with its own and its columns' database comments cut (the same table when none is long)."""
    long = (table.comment and len(table.comment) > COMMENT_MAX) or any(
        c.comment and len(c.comment) > COMMENT_MAX for c in table.columns
    )
    if not long:
        return table
    return dataclasses.replace(
        table,
        comment=cut_comment(table.comment),
        columns=tuple(dataclasses.replace(c, comment=cut_comment(c.comment)) for c in table.columns),
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The full structured schema of one profile."""

    profile: str
    dialect: str
    tables: dict[str, Table] = field(default_factory=dict)
    version: str = ""  # hash of the tables' content: what the prompt shows
    fingerprint: str = ""  # the database's cheap schema fingerprint when it was read ("" if none)
    #: Pure derivations of this snapshot (its table families …), computed once on first use: a snapshot
    #: lives for many requests, so nothing a request renders re-derives them. Never serialised or compared.
    _derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def derived(self, name: str, compute: Callable[[Snapshot], T]) -> T:
        """Return ``compute(self)``, computed once per snapshot under ``name`` (it must be pure)."""
        if name not in self._derived:
            self._derived[name] = compute(self)
        return self._derived[name]  # type: ignore[no-any-return]

    @property
    def schema_version(self) -> str:
        """The version answers report (``schema_version``): of the schema alone, so equal with and without
        sample rows, and unchanged by a change of data. ``version`` (what this snapshot's text shows, samples
        included) stays the identity of the process's memos."""
        return self.derived("schema_version", _schema_version)

    def names(self) -> frozenset[str]:
        """Every schema, table and column name of the snapshot (what an answer may name)."""
        return self.derived(
            "names",
            lambda s: frozenset(
                name
                for t in s.tables.values()
                for name in (t.key, t.name, t.schema or "", *(c.name for c in t.columns))
            ),
        )

    def to_json(self) -> dict[str, Any]:
        # profile, dialect, version and fingerprint come first: readers compare the JSON's head to skip decoding
        return {
            "profile": self.profile,
            "dialect": self.dialect,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "tables": [t.to_json() for t in self.tables.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        tables = [Table.from_json(t) for t in data["tables"]]
        return cls(
            profile=data["profile"],
            dialect=data["dialect"],
            tables={t.key: t for t in tables},
            version=data.get("version", ""),
            fingerprint=data.get("fingerprint", ""),
        )

    @classmethod
    def build(cls, profile: str, dialect: str, tables: list[Table], fingerprint: str = "") -> Snapshot:
        """Make a snapshot with tables sorted by key and its content version computed."""
        ordered = sorted(tables, key=lambda t: t.key)
        snap = cls(profile=profile, dialect=dialect, tables={t.key: t for t in ordered})
        return cls(profile, dialect, snap.tables, version=content_version(snap), fingerprint=fingerprint)


def qualified_name(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def content_version(snapshot: Snapshot, *, samples: bool = True) -> str:
    """Hash the snapshot's tables (not its profile) into a short, stable version string; without their
    sample rows and notes when ``samples`` is False."""
    # Table by table: one encoding call for the whole schema would hold the GIL for tens of milliseconds
    # on a large one, and stall the event loop while a refresh runs in a worker thread.
    digest = hashlib.sha256()
    for table in snapshot.tables.values():
        data = table.to_json()
        if not samples:
            data.pop("sample_rows", None)
            data.pop("sample_note", None)
        digest.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _schema_version(snapshot: Snapshot) -> str:
    sampled = any(t.sample_rows or t.sample_note is not None for t in snapshot.tables.values())
    return content_version(snapshot, samples=False) if sampled else snapshot.version
