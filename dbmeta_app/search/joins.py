"""Join keys a warehouse does not declare, inferred from column names and types. Pure, no I/O.

Warehouses (BigQuery datasets, Snowflake shares, OMOP exports) rarely declare foreign keys; their
join structure is in the names. A column ``<thing>_id`` / ``<thing>_key`` (or ``<thing>Id``, with a
role before it: ``from_user_id``, or a number: ``concept_id_2``) of one table references the table
named ``<thing>`` (singular or plural, same schema first) when that table holds the same column or an
``id`` / ``key`` column of a compatible type; ``*_concept_id`` references ``concept`` (the OMOP
vocabulary). The result is directed: table → the tables it references.

Where no table is named after a key (Cybersyn's ``id_rssd``, ``geo_id``), tables of one schema holding the
same key column, and name siblings sharing a column, are linked without a direction (``shared_key_links``):
enough to bridge ``x_entities`` and ``x_attributes`` through ``x_timeseries``, never followed as references.
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
    """The table names a key-named column may point at: ``from_user_id`` → from_user, fromuser, user.

    Numbers are a role, not a name: ``concept_id_1`` / ``concept_id_2`` (OMOP's concept_relationship),
    ``player_1_id``, ``inventor_id_20170808`` are keys of their table like ``concept_id``.
    """
    words = [word for word in split_identifier(column) if not word.isdigit()]
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


_KEY_WORDS = ("id", "key", "code")
# More tables than this sharing one key column: a generic column name, not a join structure.
_MAX_SHARED = 30


def _key_like(column: str) -> bool:
    """A join-key name: ``id_rssd``, ``geo_id``, ``fips_code`` (a bare ``id`` / ``key`` is every table's own)."""
    words = split_identifier(column)
    return len(words) >= 2 and (words[-1] in _KEY_WORDS or words[0] in _KEY_WORDS)


def _names_a_table(column: str, names: set[str]) -> bool:
    return any(name in names for stem in _key_stems(column) for name in _stems(stem))


def shared_key_links(snapshot: Snapshot) -> set[tuple[str, str]]:
    """Undirected links between tables of one schema that a key column or a name stem ties together.

    - the same key-named column (``id_rssd``, ``geo_id``) of a compatible type in both tables, when
      no table is named after it (that case is a reference, ``inferred_references``);
    - siblings: names that differ only in their last word (``financial_institution_entities`` /
      ``…_timeseries``) and share a column.
    Neither direction is known, so these are links for bridging and neighbour scores, never references.
    """
    names = {table.name.lower() for table in snapshot.tables.values()}
    by_column: dict[tuple[str | None, str, str], list[str]] = {}
    by_stem: dict[tuple[str | None, str], list[Table]] = {}
    for key, table in snapshot.tables.items():
        for column in table.columns:
            if _key_like(column.name) and not _names_a_table(column.name, names):
                by_column.setdefault((table.schema, column.name.lower(), _family(column.type)), []).append(
                    key
                )
        words = split_identifier(table.name)
        if len(words) >= 2:
            by_stem.setdefault((table.schema, "_".join(words[:-1])), []).append(table)
    links: set[tuple[str, str]] = set()
    for keys in by_column.values():
        if 2 <= len(keys) <= _MAX_SHARED:
            links.update((a, b) for i, a in enumerate(keys) for b in keys[i + 1 :])
    for tables in by_stem.values():
        if not 2 <= len(tables) <= _MAX_SHARED:
            continue
        columns = [{c.name.lower() for c in t.columns} for t in tables]
        for i, a in enumerate(tables):
            for j in range(i + 1, len(tables)):
                if columns[i] & columns[j]:
                    links.add((a.key, tables[j].key))
    return links
