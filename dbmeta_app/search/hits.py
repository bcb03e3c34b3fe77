"""What a table search answers: one hit per logical table, a date-sharded family named by its shards. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dbmeta_app.schema.families import Family, listed_shards, resolve_shards
from dbmeta_app.schema.printable import visible


@dataclass(frozen=True, slots=True)
class TableHit:
    """One retrieved table: its snapshot key and its relevance score.

    A hit on a date-sharded family names a real shard (the one the request's dates resolve to
    first, else the newest) and carries the family's key and every resolved shard.
    """

    name: str
    score: float
    family: str | None = None
    shards: tuple[str, ...] = ()

    @property
    def tables(self) -> tuple[str, ...]:
        """The snapshot keys the hit stands for: a family's resolved shards, else its name."""
        return self.shards or (self.name,)

    def to_json(self) -> dict[str, object]:
        """The hit as answered by the API: name and score, plus the family when there is one."""
        data: dict[str, object] = {"name": self.name, "score": self.score}
        if self.family is not None:
            data["family"] = self.family
            data["shards"] = list(self.shards)
        return data


def table_hit(families: Mapping[str, Family], query: str, key: str, score: float) -> TableHit:
    """The hit for a ranked key: a table as it is, a family as the shard(s) the request's dates need."""
    family = families.get(key)
    if family is None:
        return TableHit(key, score)
    shards = resolve_shards(family, query)
    return TableHit(shards[0] if shards else family.newest.key, score, family.key, tuple(shards))


def family_note(hit: Mapping[str, object]) -> str:
    """What a family hit of an answer stands for, for text answers (MCP, CLI): "" for a table; else its
    family and the shards the request's dates need (a long list as its ends and count)."""
    family = hit.get("family")
    if not family:
        return ""
    listed = hit.get("shards")
    shards = [str(s) for s in listed] if isinstance(listed, list | tuple) else []
    note = f"one shard of the date-sharded family {visible(str(family))}"
    if shards:
        note += "; the request's dates need " + listed_shards([visible(n) for n in shards])
    return note
