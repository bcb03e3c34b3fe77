"""Curated descriptions (a YAML file per profile, read by ``curated.py``) laid over the reflected schema; pure."""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dbmeta_app.schema.models import Table


class ColumnDescription(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    examples: tuple[str, ...] = ()
    hidden: bool = False

    @field_validator("examples", mode="before")
    @classmethod
    def _examples(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value


class TableDescription(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    hidden: bool = False
    columns: dict[str, ColumnDescription] = Field(default_factory=dict)

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: object) -> object:
        # "col: text" is shorthand for "col: {description: text}"
        if isinstance(value, dict):
            return {
                str(k): ({"description": v} if isinstance(v, str) else (v or {})) for k, v in value.items()
            }
        return value


class Descriptions(BaseModel):
    """The parsed descriptions file: table and column texts, examples, hidden flags, whitelist mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    whitelist: bool = False
    tables: dict[str, TableDescription] = Field(default_factory=dict)

    @field_validator("tables", mode="before")
    @classmethod
    def _tables(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                str(k): ({"description": v} if isinstance(v, str) else (v or {})) for k, v in value.items()
            }
        return value


def _lookup(desc: Descriptions, table: Table) -> TableDescription | None:
    exact = desc.tables.get(table.key)
    if exact is not None:
        return exact
    lowered = {k.lower(): v for k, v in desc.tables.items()}
    return lowered.get(table.key.lower()) or lowered.get(table.name.lower())


def apply_descriptions(tables: list[Table], desc: Descriptions) -> list[Table]:
    """Override DB comments with curated texts, drop hidden tables/columns, honour whitelist mode.

    What is dropped is not named elsewhere either: a foreign key pointing at a dropped table or column
    loses its arrow (the column stays).
    """
    kept = _curated(tables, desc)
    dropped_tables = {t.key for t in tables} - {t.key for t in kept}
    dropped_columns: set[tuple[str, str]] = set()
    for table, curated in _pairs(tables, kept):
        shown = {c.name for c in curated.columns}
        dropped_columns.update((table.key, c.name) for c in table.columns if c.name not in shown)
    out = []
    for table in kept:
        fks = tuple(
            fk
            for fk in table.foreign_keys
            if fk.ref_table not in dropped_tables
            and not any((fk.ref_table, c) in dropped_columns for c in fk.ref_columns)
        )
        out.append(table if fks == table.foreign_keys else dataclasses.replace(table, foreign_keys=fks))
    return out


def _pairs(tables: list[Table], kept: list[Table]) -> list[tuple[Table, Table]]:
    by_key = {t.key: t for t in kept}
    return [(t, by_key[t.key]) for t in tables if t.key in by_key]


def _curated(tables: list[Table], desc: Descriptions) -> list[Table]:
    out = []
    for table in tables:
        td = _lookup(desc, table)
        if td is None:
            if not desc.whitelist:
                out.append(table)
            continue
        if td.hidden:
            continue
        hidden = {name.lower() for name, cd in td.columns.items() if cd.hidden}
        by_name = {name.lower(): cd for name, cd in td.columns.items()}
        columns = []
        for col in table.columns:
            if col.name.lower() in hidden:
                continue
            cd = by_name.get(col.name.lower())
            if cd is not None:
                col = dataclasses.replace(
                    col, description=cd.description or col.description, examples=cd.examples or col.examples
                )
            columns.append(col)
        visible = {c.name for c in columns}
        out.append(
            dataclasses.replace(
                table,
                description=td.description or table.description,
                columns=tuple(columns),
                foreign_keys=tuple(fk for fk in table.foreign_keys if set(fk.columns) <= visible),
            )
        )
    return out
