"""Table search for one profile: snapshot + embedder + index → the tables a request needs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from dbmeta_app.schema.families import Family, collapse, dated_families, detect_families
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.search.documents import lexical_query
from dbmeta_app.search.hits import TableHit, table_hit
from dbmeta_app.search.milvus_index import Progress, SyncStats, TableIndex, TextEncoder
from dbmeta_app.search.retrieval import RetrievalWeights, SchemaGraph, select_tables

EmbedQuery = Callable[[str], npt.NDArray[np.float32]]

# Candidates fetched per signal (tables + schemas, columns). On BirdUnion 100 ranks as well
# as 300 and keeps each Milvus call under ~10 ms.
DEFAULT_CANDIDATES = 100
MAX_SCHEMA_SLOTS = 100


class TableSearch:
    """Answer "which tables does this request need?"; blocking, run it in a thread."""

    def __init__(
        self,
        snapshot: Snapshot,
        embedder: TextEncoder,
        index: TableIndex,
        *,
        embed_query: EmbedQuery | None = None,
        weights: RetrievalWeights | None = None,
        candidates: int = DEFAULT_CANDIDATES,
        columns: bool = True,
    ) -> None:
        self.snapshot = snapshot
        self._embedder = embedder
        self._index = index
        # The app wraps this with its Redis cache; the default embeds every time.
        self._embed_query = embed_query or (lambda text: embedder.encode([text])[0])
        self._weights = weights or RetrievalWeights()
        self._candidates = candidates
        # Column vectors: +0.4 complete@10 and +1.1 @5 on BirdUnion for one more Milvus call.
        self._columns = columns
        # Date-sharded families are one logical table each: indexed and ranked once.
        self._families: dict[str, Family] = detect_families(snapshot)
        self._graph = SchemaGraph.from_snapshot(
            collapse(snapshot, self._families), inferred=self._weights.inferred_joins
        )
        schemas = len(set(self._graph.schema_of.values()))
        # Schema documents compete with tables for the hybrid call's slots: make room for them
        # (the weakest schemas add nothing, so a very wide warehouse does not need all of its).
        self._schema_slots = min(schemas, MAX_SCHEMA_SLOTS) if schemas > 1 else 0

    def sync(self, progress: Progress | None = None, *, rebuild: bool = False) -> SyncStats:
        """Index the snapshot, embedding only the tables that changed."""
        return self._index.sync(self.snapshot, self._embedder, progress, rebuild=rebuild)

    def search(
        self,
        query: str,
        top_k: int,
        *,
        vector: npt.NDArray[np.float32] | None = None,
    ) -> list[TableHit]:
        """Return the top_k tables for a request, best first; names are snapshot keys.

        ``vector`` is the request's embedding when the caller already has it (cached).
        """
        if top_k <= 0 or not query.strip() or not self.snapshot.tables:
            return []
        if vector is None:
            vector = self._embed_query(query)
        limit = max(self._candidates, top_k)
        signals = self._index.signals(
            lexical_query(query),
            vector,
            limit + self._schema_slots,
            column_limit=limit if self._columns else 0,
        )
        ranked = select_tables(
            signals, self._graph, top_k, self._weights, dated_families(self._families, query)
        )
        return [table_hit(self._families, query, name, round(score, 6)) for name, score in ranked]
