"""Curated query examples: layered YAML packs, validated at load, cached per profile.

Layers, merged in this order (a later layer adds, replaces or hides an example by its id):

1. ``EXAMPLES_DIR/base/*.yml``
2. ``EXAMPLES_DIR/clients/<CLIENT>/*.yml``
3. ``EXAMPLES_DIR/envs/<ENV>/*.yml``
4. ``EXAMPLES_DIR/profiles/<profile>/*.yml``
5. the profile's own ``examples_file``

A pack is ``examples: [{id, request, response, tables?, tags?, hidden?}]``; ``{id, hidden: true}`` hides an
inherited example.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import sqlglot
import sqlglot.errors
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlglot import exp

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.config import Settings
from dbmeta_app.curated import UNREADABLE, CuratedFiles
from dbmeta_app.errors import ConfigError
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.profiles import ProfileRuntime
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.schema.render import NameIndex
from dbmeta_app.search.bm25 import Bm25
from dbmeta_app.search.documents import lexical_terms, request_terms


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    request: str | None = Field(default=None, max_length=5_000)
    response: str | None = Field(default=None, max_length=50_000)
    tables: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    hidden: bool = False

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class _Pack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueryExample:
    """One request → SQL pair an orchestrator can show the LLM."""

    id: str
    request: str
    response: str
    tables: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request": self.request,
            "response": self.response,
            "tables": list(self.tables),
            "tags": list(self.tags),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryExample:
        return cls(
            id=data["id"],
            request=data["request"],
            response=data["response"],
            tables=tuple(data.get("tables", ())),
            tags=tuple(data.get("tags", ())),
            source=data.get("source", ""),
        )


def example_layers(settings: Settings, rt: ProfileRuntime) -> list[Path]:
    """List the pack files of a profile, in merge order."""
    layers: list[Path] = []
    root = settings.examples_dir
    if root is not None:
        for folder in (
            root / "base",
            root / "clients" / settings.client,
            root / "envs" / settings.env,
            root / "profiles" / rt.name,
        ):
            if folder.is_dir():
                layers.extend(sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]))
    if rt.profile.examples_file is not None:
        layers.append(rt.profile.examples_file)
    return layers


def _read_pack(path: Path, files: CuratedFiles) -> list[_Entry]:
    pack = files.load(path, _Pack, "examples file").value
    entries = []
    for index, item in enumerate(pack.examples):
        where = f"examples file {str(path)!r}, entry {index + 1}"
        if isinstance(item, dict) and "id" in item:
            where += f" (id {item['id']!r})"
        try:
            entry = _Entry.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "entry"
            raise ConfigError(f"{where}: {field}: {err['msg']}") from None
        if not entry.hidden and (not entry.request or not entry.response):
            raise ConfigError(f"{where}: needs both 'request' and 'response' (or 'hidden: true')")
        entries.append(entry)
    return entries


def load_examples(paths: list[Path], files: CuratedFiles | None = None) -> list[QueryExample]:
    """Merge packs in order: a later entry with the same id replaces (or, with hidden, removes) an earlier one.

    Blocking; ``files`` is the profile's loader (a fresh one when None).
    """
    files = files if files is not None else CuratedFiles()
    merged: dict[str, QueryExample] = {}
    for path in paths:
        seen: set[str] = set()
        for entry in _read_pack(path, files):
            if entry.id in seen:
                raise ConfigError(f"examples file {str(path)!r}: id {entry.id!r} appears twice")
            seen.add(entry.id)
            if entry.hidden:
                merged.pop(entry.id, None)
                continue
            assert entry.request is not None and entry.response is not None
            merged.pop(entry.id, None)  # a replaced example takes its new place in the order
            merged[entry.id] = QueryExample(
                id=entry.id,
                request=entry.request.strip(),
                response=entry.response.strip(),
                tables=tuple(entry.tables),
                tags=tuple(entry.tags),
                source=path.name,
            )
    return list(merged.values())


def _packs(settings: Settings, rt: ProfileRuntime) -> tuple[list[Path], str]:
    """The profile's pack files and one digest of their paths and contents (blocking: a worker thread)."""
    paths = example_layers(settings, rt)
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path).encode())
        digest = rt.files.digest(path)
        h.update(bytes.fromhex(digest) if digest != UNREADABLE else b"unreadable")
    return paths, h.hexdigest()


async def get_query_examples(settings: Settings, cache: RedisCache, rt: ProfileRuntime) -> list[QueryExample]:
    """Return a profile's merged examples (cached; any edit to a pack file changes the key)."""
    paths, digest = await anyio.to_thread.run_sync(_packs, settings, rt)
    if not paths:
        return []
    key = rt.scope.key("examples", files=digest)

    async def compute() -> list[QueryExample]:
        return await anyio.to_thread.run_sync(load_examples, paths, rt.files)

    def decode(raw: bytes) -> list[QueryExample]:
        return [QueryExample.from_json(x) for x in orjson.loads(raw)]

    examples, _ = await cache.get_or_compute(
        "examples", key, compute, lambda xs: [x.to_json() for x in xs], decode
    )
    return examples


# --------------------------------------------------------------------------- fit and retrieval


@dataclass(frozen=True, slots=True)
class ExampleCheck:
    """Whether an example's SQL still fits the schema (guard verdict and known tables)."""

    id: str
    ok: bool
    reason: str | None = None


def examples_version(snapshot: Snapshot, examples: list[QueryExample]) -> str:
    """Identify a set of examples checked against one schema version (what an example index holds).

    The form is ``<schema version>:<examples digest>``.
    """
    digest = hashlib.sha256(orjson.dumps([e.to_json() for e in examples])).hexdigest()[:24]
    return f"{snapshot.version}:{digest}"


def check_examples(examples: list[QueryExample], snapshot: Snapshot) -> dict[str, ExampleCheck]:
    """Check every example's SQL against a snapshot: the guard accepts it, its tables and columns exist."""
    index = NameIndex(snapshot)
    out: dict[str, ExampleCheck] = {}
    for example in examples:
        out[example.id] = _check_example(example, snapshot, index)
    return out


def _check_example(example: QueryExample, snapshot: Snapshot, index: NameIndex) -> ExampleCheck:
    verdict = check_sql(example.response, snapshot.dialect)
    if not verdict.ok:
        return ExampleCheck(example.id, False, f"refused by the guard: {verdict.reason}")
    read = _defined_names(example.response, snapshot.dialect)
    # sqlglot may not read what the guard accepted: then only the tables are judged
    ctes, defined = read if read is not None else (_cte_names(example.response), None)
    resolved = [(t, index.resolve(t)) for t in verdict.tables if t.lower() not in ctes]
    missing = sorted(
        {t for t, key in resolved if key is None} | {t for t in example.tables if index.resolve(t) is None}
    )
    if missing:
        return ExampleCheck(example.id, False, f"unknown tables: {', '.join(missing)}")
    # A column must belong to one of the tables the query reads, or be a name the query itself defines
    # (an output alias, a CTE or derived-table column). Qualifiers are not resolved: a loose check, but
    # one without false alarms on valid SQL.
    if defined is None:
        return ExampleCheck(example.id, True)
    known = set(defined)
    for _, key in resolved:
        if key is not None:
            known.update(c.name.lower() for c in snapshot.tables[key].columns)
    unknown = sorted(
        {
            c
            for c in (ref.rsplit(".", 1)[-1] for ref in verdict.columns)
            if c.lower() not in known and c != "*"
        }
    )
    if unknown:
        return ExampleCheck(example.id, False, f"unknown columns: {', '.join(unknown)}")
    return ExampleCheck(example.id, True)


_GLOT_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


def _defined_names(sql: str, dialect: str) -> tuple[set[str], set[str]] | None:
    """The CTE names and every name a query defines (aliases, CTE and derived-table columns), lower-cased.

    None when sqlglot cannot read the query.
    """
    try:
        trees = sqlglot.parse(sql, read=_GLOT_DIALECTS.get(dialect, dialect))
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        return None
    ctes: set[str] = set()
    names: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        for node in tree.find_all(exp.Alias, exp.TableAlias, exp.CTE):
            if node.alias:
                names.add(node.alias.lower())
                if isinstance(node, exp.CTE):
                    ctes.add(node.alias.lower())
            if isinstance(node, exp.TableAlias):
                names.update(c.name.lower() for c in node.columns)
    return ctes, names


def _cte_names(sql: str) -> set[str]:
    return {
        m.lower()
        for m in re.findall(r"(?i)(?:with|,)\s*(?:recursive\s+)?([A-Za-z_][A-Za-z0-9_]*)\s+as\s*\(", sql)
    }


def example_text(example: QueryExample) -> str:
    """The text an example is found by: its request, tags and tables."""
    return " ".join([example.request, *example.tags, *example.tables])


def rank_examples(examples: list[QueryExample], query: str, top_k: int) -> list[tuple[QueryExample, float]]:
    """Rank examples by BM25 over their text, in process: the fallback when the example index cannot answer."""
    if not examples or top_k <= 0:
        return []
    by_id = {e.id: e for e in examples}
    bm25 = Bm25.build({e.id: lexical_terms(example_text(e)) for e in examples})
    ordered = sorted(bm25.scores(request_terms(query)).items(), key=lambda x: (-x[1], x[0]))[:top_k]
    return [(by_id[eid], round(score, 6)) for eid, score in ordered]
