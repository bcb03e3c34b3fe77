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
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dbmeta_app.cache.redis_cache import RedisCache, cache_key
from dbmeta_app.config import Settings
from dbmeta_app.errors import ConfigError
from dbmeta_app.introspection.models import Snapshot
from dbmeta_app.prompt_items.render import NameIndex
from dbmeta_app.runtime import ProfileRuntime
from dbmeta_app.search.documents import lexical_terms
from dbmeta_app.sql.guard import check_sql


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


def _read_pack(path: Path) -> list[_Entry]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        pack = _Pack.model_validate(raw)
    except OSError as exc:
        raise ConfigError(f"examples file {str(path)!r}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"examples file {str(path)!r}: invalid YAML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"examples file {str(path)!r}: {exc.errors()[0]['msg']}") from None
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


def load_examples(paths: list[Path]) -> list[QueryExample]:
    """Merge packs in order: a later entry with the same id replaces (or, with hidden, removes) an earlier one."""
    merged: dict[str, QueryExample] = {}
    for path in paths:
        seen: set[str] = set()
        for entry in _read_pack(path):
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


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path).encode())
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable")
    return h.hexdigest()


async def get_query_examples(settings: Settings, cache: RedisCache, rt: ProfileRuntime) -> list[QueryExample]:
    """Return a profile's merged examples (cached; any edit to a pack file changes the key)."""
    paths = example_layers(settings, rt)
    if not paths:
        return []
    key = cache_key(
        "examples", client=settings.client, env=settings.env, profile=rt.name, files=_digest(paths)
    )

    async def compute() -> list[QueryExample]:
        return load_examples(paths)

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


def check_examples(examples: list[QueryExample], snapshot: Snapshot) -> dict[str, ExampleCheck]:
    """Check every example's SQL against the current snapshot: read-only, and every table it names exists."""
    index = NameIndex(snapshot)
    out: dict[str, ExampleCheck] = {}
    for example in examples:
        verdict = check_sql(example.response, snapshot.dialect)
        if not verdict.ok:
            out[example.id] = ExampleCheck(example.id, False, f"refused by the guard: {verdict.reason}")
            continue
        ctes = _cte_names(example.response)
        missing = [t for t in verdict.tables if t.lower() not in ctes and index.resolve(t) is None]
        missing += [t for t in example.tables if index.resolve(t) is None]
        if missing:
            names = ", ".join(sorted(set(missing)))
            out[example.id] = ExampleCheck(example.id, False, f"unknown tables: {names}")
        else:
            out[example.id] = ExampleCheck(example.id, True)
    return out


def _cte_names(sql: str) -> set[str]:
    return {
        m.lower()
        for m in re.findall(r"(?i)(?:with|,)\s*(?:recursive\s+)?([A-Za-z_][A-Za-z0-9_]*)\s+as\s*\(", sql)
    }


def example_text(example: QueryExample) -> str:
    """The text an example is found by: its request, tags and tables."""
    return " ".join([example.request, *example.tags, *example.tables])


def rank_examples(
    examples: list[QueryExample],
    query: str,
    top_k: int,
    dense: dict[str, float] | None = None,
) -> list[tuple[QueryExample, float]]:
    """Rank examples by BM25 over their text fused (RRF) with dense similarities when given."""
    if not examples or top_k <= 0:
        return []
    terms = {e.id: Counter(lexical_terms(example_text(e))) for e in examples}
    wanted = set(lexical_terms(query))
    n = len(examples)
    df: Counter[str] = Counter()
    for counts in terms.values():
        df.update(counts.keys())
    lexical: dict[str, float] = {}
    for e in examples:
        score = sum(
            math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * min(terms[e.id][t], 2)
            for t in wanted
            if terms[e.id][t]
        )
        if score > 0:
            lexical[e.id] = score
    fused: dict[str, float] = {}
    for signal in (lexical, dense or {}):
        for rank, (eid, _) in enumerate(sorted(signal.items(), key=lambda x: -x[1])):
            fused[eid] = fused.get(eid, 0.0) + 1.0 / (60 + rank + 1)
    by_id = {e.id: e for e in examples}
    ordered = sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:top_k]
    return [(by_id[eid], round(score * 60 / 2, 6)) for eid, score in ordered]
