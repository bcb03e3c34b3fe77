"""A profile with its open resources (engines, curated files, scope, health, memos), opened by the runtime.

Search, preflight, examples and the snapshot store take a ``ProfileRuntime``; only ``runtime.py`` builds them
(see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dbmeta_app.cache.keys import Scope, database_identity
from dbmeta_app.config import Profile, Settings
from dbmeta_app.curated import CuratedFiles
from dbmeta_app.db.admission import Admission
from dbmeta_app.db.engines import create_profile_engine, materialize_clickhouse_sample, materialize_sample
from dbmeta_app.preflight.policy import PLANNED_RELATIONS_PER_RELATION, RoutineGate
from dbmeta_app.preflight.privileges import PrivilegeCheck
from dbmeta_app.preflight.reach import Name
from dbmeta_app.preflight.verdicts import VerdictMemo
from dbmeta_app.schema.descriptions import Descriptions
from dbmeta_app.schema.models import Table
from dbmeta_app.schema.names import SchemaNamesCheck
from dbmeta_app.schema.samples import SAMPLE_TIMEOUT_MS, SamplePolicy
from dbmeta_app.schema.store import DatabaseHealth, SnapshotMemo
from dbmeta_app.search.keyword import KeywordIndex


@dataclass
class ProfileRuntime:
    """A profile with its open resources: the introspection engine, the preflight engine, curated files."""

    profile: Profile
    engine: Engine
    descriptions: Descriptions
    descriptions_digest: str
    #: Whose cached values and indexes these are (deployment, profile, the database's identity): every key
    #: and Milvus name of the profile is built from it.
    scope: Scope
    health: DatabaseHealth = field(default_factory=DatabaseHealth)
    #: The profile's curated files (descriptions, example packs, instructions), parsed once per version.
    files: CuratedFiles = field(default_factory=CuratedFiles)
    #: Decoded snapshots and rendered texts of this profile (schema/store.py).
    memo: SnapshotMemo = field(default_factory=SnapshotMemo)
    #: The in-process keyword ranking of the latest snapshot (search without an index, or degraded).
    keyword_index: KeywordIndex | None = None
    #: The guard's verdicts on this profile's SQL texts (its dialect and budget).
    verdicts: VerdictMemo = field(default_factory=VerdictMemo)
    keys: dict[Any, str] = field(default_factory=dict)  # memoised cache keys (their inputs never change)
    #: The role's latest privilege report (preflight/privileges.py).
    privileges: PrivilegeCheck = field(default_factory=PrivilegeCheck)
    #: Schemas named in include_schemas/exclude_schemas that the database does not have (schema/names.py).
    schema_names: SchemaNamesCheck = field(default_factory=SchemaNamesCheck)
    _routines: RoutineGate | None = None
    # the bound on concurrent EXPLAINs and sample reads, from the profile's preflight limits
    admission: Admission = field(init=False, repr=False)
    _preflight_engine: Engine | None = None
    _limiter: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        limits = self.profile.preflight
        self.admission = Admission(limits.concurrency, limits.queue, limits.queue_wait_ms / 1000)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def preflight_engine(self) -> Engine:
        """A pool kept apart from introspection, created on first use (EXPLAINs and sample reads)."""
        with self._lock:
            if self._preflight_engine is None:
                size = self.profile.preflight.concurrency
                self._preflight_engine = create_profile_engine(self.profile, pool_size=size, preflight=True)
            return self._preflight_engine

    @property
    def routines(self) -> RoutineGate:
        """The routine policy of this profile, with its cached catalog facts (preflight/policy.py)."""
        with self._lock:
            if self._routines is None:
                limits = self.profile.preflight
                self._routines = RoutineGate(
                    self.dialect,
                    limits.allow_functions,
                    max_constant_bytes=limits.max_constant_bytes,
                    max_planned_relations=PLANNED_RELATIONS_PER_RELATION * limits.max_relations,
                )
            return self._routines

    def thread_limiter(self) -> anyio.CapacityLimiter:
        """Worker threads for this profile's database work, apart from the process's shared ones (per loop)."""
        loop = asyncio.get_running_loop()
        held = self._limiter
        if held is None or held[0] is not loop:
            held = self._limiter = (loop, anyio.CapacityLimiter(self.profile.preflight.concurrency))
        return held[1]

    def ping_database(self) -> None:
        """Connect and run ``SELECT 1`` (blocking), noting the outcome in ``health``; raise on failure."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            self.health.record(exc)
            raise
        self.health.record(None)

    def sample_policy(self) -> SamplePolicy:
        """Sample reads share the preflight's pool, read-only session and concurrency bound (samples.py)."""
        limits = self.profile.preflight
        return SamplePolicy(
            timeout_ms=min(limits.timeout_ms, SAMPLE_TIMEOUT_MS),
            allowed_views=limits.sample_views,
            admission=self.admission,
            retry_after=max(1, math.ceil(limits.timeout_ms / 1000)),
            relation_check=self._relation_refusals,
        )

    def sample_refusals(self, tables: Sequence[Table]) -> dict[str, str]:
        """Refuse every table's sample rows while a profile that requires a least-privilege role has more."""
        if not self.profile.preflight.require_least_privilege:
            return {}
        report = self.privileges.report(self.engine)
        if report.least_privilege:
            return {}
        why = "; ".join(report.problems) if report.checked else str(report.error)
        reason = f"the profile requires a least-privilege database role, but its role can: {why}"
        return dict.fromkeys((t.key for t in tables), reason)

    def _relation_refusals(self, conn: Connection, tables: Sequence[Table]) -> dict[str, str]:
        """The routine policy's verdict on reading these tables (attached expressions, view expansion)."""
        names = {Name(t.schema, t.name): t.key for t in tables}
        refused = self.routines.relation_problems(conn, list(names))
        return {names[name]: reason for name, reason in refused.items()}

    def dispose(self) -> None:
        self.engine.dispose()
        if self._preflight_engine is not None:
            self._preflight_engine.dispose()


def profile_scope(settings: Settings | None, profile: Profile, engine: Engine | None = None) -> Scope:
    """The cache scope of a profile: this deployment's CLIENT and ENV, the profile, its database's identity."""
    client = settings.client if settings is not None else Settings.model_fields["client"].default
    env = settings.env if settings is not None else Settings.model_fields["env"].default
    url = engine.url if engine is not None else profile.database_url.get_secret_value()
    return Scope(client=client, env=env, profile=profile.name, database=database_identity(url))


def open_profile(
    profile: Profile, settings: Settings | None = None, *, engine: Engine | None = None
) -> ProfileRuntime:
    """Open (without connecting) a profile's engines and read its descriptions file.

    ``settings`` names the deployment (CLIENT, ENV) in the profile's cache scope (their defaults without it);
    ``engine``, when given, is used instead of one created from the profile's URL, and its URL is the identity.
    """
    url = profile.database_url.get_secret_value()
    if profile.sample and profile.dialect != "chdb":
        materialize_sample(Path(url.split(":///", 1)[1]))
    serving = engine if engine is not None else create_profile_engine(profile)
    if profile.sample and profile.dialect == "chdb":
        materialize_clickhouse_sample(url, serving)
    # Descriptions are part of the snapshot's key: read when the profile opens, by the same loader.
    files = CuratedFiles()
    path = profile.descriptions_file
    descriptions = files.load(path, Descriptions, "descriptions file") if path is not None else None
    return ProfileRuntime(
        profile=profile,
        engine=serving,
        descriptions=descriptions.value if descriptions is not None else Descriptions(),
        descriptions_digest=descriptions.digest if descriptions is not None else "",
        files=files,
        scope=profile_scope(settings, profile, engine),
    )
