"""Join keys a warehouse does not declare, inferred from column names and types. Pure, no I/O.

Warehouses (BigQuery datasets, Snowflake shares, OMOP exports) rarely declare foreign keys; their
join structure is in the names. A column ``<thing>_id`` / ``<thing>_key`` (or ``<thing>Id``, or with a
role before it: ``from_user_id``) of one table references the table named ``<thing>`` (singular or plural, same schema first) when that table
holds the same column or an ``id`` / ``key`` column of a compatible type; ``*_concept_id`` references
``concept`` (the OMOP vocabulary). The result is directed: table → the tables it references.
"""

from __future__ import annotations

from collections.abc import Iterable

from dbmeta_app.schema.models import Snapshot, Table
from dbmeta_app.search.documents import split_identifier

_NUMERIC = ("int", "numeric", "decimal", "double", "real", "float", "number")


def _family(sql_type: str) -> str:
    lowered = sql_type.lower()
    if any(word in lowered for word in _NUMERIC):
        return "number"
    if any(word in lowered for word in ("char", "text", "string", "uuid")):
        return "text"
    return lowered


def _stems(stem: str) -> Iterable[str]:
    # "person" → person, persons, people is not guessed; "categories" ↔ "category"
    yield stem
    yield stem + "s"
    yield stem + "es"
    if stem.endswith("y"):
        yield stem[:-1] + "ies"


def _key_stems(column: str) -> list[str]:
    """The table names a key-named column may point at: ``from_user_id`` → from_user, fromuser, user."""
    words = split_identifier(column)
    if len(words) < 2 or words[-1] not in ("id", "key"):
        return []
    if words[-2:] == ["concept", "id"]:
        return ["concept"]
    head = words[:-1]
    stems = ["_".join(head), "".join(head)]
    if len(head) > 1:
        stems.append(head[-1])  # a role prefix: from_user_id, owner_user_id, pickup_location_id
    return list(dict.fromkeys(stems))


def inferred_references(snapshot: Snapshot) -> dict[str, set[str]]:
    """Map each table key to the tables its key-named columns reference (declared FKs excluded)."""
    by_name: dict[str, list[Table]] = {}
    for table in snapshot.tables.values():
        by_name.setdefault(table.name.lower(), []).append(table)
    out: dict[str, set[str]] = {}
    for key, table in snapshot.tables.items():
        declared = {c for fk in table.foreign_keys for c in fk.columns}
        for column in table.columns:
            if column.name in declared:
                continue
            target = None
            for stem in _key_stems(column.name):
                target = _target(table, column.name, column.type, stem, by_name)
                if target is not None:
                    break
            if target is not None and target.key != key:
                out.setdefault(key, set()).add(target.key)
    return out


def _target(
    table: Table, column: str, sql_type: str, stem: str, by_name: dict[str, list[Table]]
) -> Table | None:
    candidates = [t for name in _stems(stem) for t in by_name.get(name, ())]
    # the referencing table's own schema first, then the others in key order
    candidates.sort(key=lambda t: (t.schema != table.schema, t.key))
    wanted = _family(sql_type)
    for candidate in candidates:
        columns = {c.name.lower(): c for c in candidate.columns}
        for name in (column.lower(), "id", "key", f"{stem}_id"):
            match = columns.get(name)
            if match is not None and _family(match.type) == wanted:
                return candidate
    return None
