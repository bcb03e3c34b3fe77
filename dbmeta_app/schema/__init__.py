"""Introspection: bulk reflection of a profile's database into a versioned Snapshot."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy.engine import Engine

from dbmeta_app.schema.descriptions import Descriptions, apply_descriptions
from dbmeta_app.schema.fingerprint import schema_fingerprint
from dbmeta_app.schema.models import Column, ForeignKey, Snapshot, Table, qualified_name
from dbmeta_app.schema.reflect import reflect_with_fingerprint
from dbmeta_app.schema.samples import SamplePolicy, read_samples

__all__ = [
    "Column",
    "Descriptions",
    "ForeignKey",
    "SamplePolicy",
    "Snapshot",
    "Table",
    "introspect",
    "qualified_name",
    "schema_fingerprint",
]

log = logging.getLogger(__name__)


def introspect(
    engine: Engine,
    profile: str,
    *,
    include_schemas: tuple[str, ...] = (),
    exclude_schemas: tuple[str, ...] = (),
    descriptions: Descriptions | None = None,
    data_examples: int = 0,
    sample_engine: Engine | None = None,
    sample_policy: SamplePolicy | None = None,
    sample_filter: Callable[[Sequence[Table]], Mapping[str, str]] | None = None,
) -> Snapshot:
    """Read the whole schema of a database (blocking) into a Snapshot, with curated descriptions applied.

    With ``data_examples``, up to that many rows of each table the policy allows are read on
    ``sample_engine`` (by default ``engine``): see :mod:`dbmeta_app.schema.samples`.
    ``sample_filter`` names the tables whose sample rows must not be read, with why (e.g. a routine policy).
    """
    started = time.perf_counter()
    tables, fingerprint = reflect_with_fingerprint(engine, include_schemas, exclude_schemas)
    if descriptions is not None:
        tables = apply_descriptions(tables, descriptions)
    if data_examples > 0:
        refused = sample_filter(tables) if sample_filter is not None else {}
        for key, reason in refused.items():
            log.info("No sample rows for %s: %s", key, reason)
        readable = [t for t in tables if t.key not in refused]
        samples = read_samples(sample_engine or engine, readable, data_examples, sample_policy)
        tables = [
            dataclasses.replace(
                t, sample_rows=samples.rows.get(t.key, ()), sample_note=samples.unsampled.get(t.key)
            )
            for t in tables
        ]
    snapshot = Snapshot.build(profile, engine.dialect.name, tables, fingerprint)
    log.info(
        "Introspected profile=%s: %d tables in %.3fs (version %s)",
        profile,
        len(snapshot.tables),
        time.perf_counter() - started,
        snapshot.version,
    )
    return snapshot
