"""The Redis client for the deployment ``REDIS_URL`` names (parsed by ``dbmeta_app.redis_url``).

``build_client`` creates the client without connecting. The cluster client is adapted so that the cache
can treat it like one server: every failure is a ``RedisError``, multi-key ``DEL`` in a pipeline is split
by hash slot, and a node that fails makes the next call re-read the slot map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, ClusterPubSub, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dbmeta_app.redis_url import RedisTopology

#: What the cache holds: a client of one server (also a Sentinel-managed master) or of a cluster.
RedisClient: TypeAlias = Redis | RedisCluster


class ClusterRoutingError(RedisError):
    """A cluster client failure that redis-py raises outside ``RedisError`` (no reachable node, slot not
    covered), translated so that the cache treats it like any other Redis failure."""


def build_client(
    topology: RedisTopology, options: Mapping[str, Any], *, sentinel_password: str | None = None
) -> RedisClient:
    """Create (without connecting) the client of a topology with the cache's connection options.

    ``options`` are the single-server pool's: ``socket_timeout``, ``socket_connect_timeout``,
    ``health_check_interval``, ``client_name``, ``max_connections``, ``timeout`` (waiting for a free
    connection) and ``retry``.
    """
    if topology.mode == "single":
        assert topology.url is not None
        return Redis(connection_pool=BlockingConnectionPool.from_url(topology.url, **options))
    tls: dict[str, Any] = {"ssl": True, **dict(topology.tls_options)} if topology.tls else {}
    auth: dict[str, Any] = {"username": topology.username, "password": topology.password}
    if topology.mode == "sentinel":
        return _sentinel_master(topology, options, tls, auth, sentinel_password)
    # Cluster nodes each keep their own pool (max_connections is per node) and it cannot block.
    cluster_options = {k: v for k, v in options.items() if k != "timeout"}
    return DbmetaRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],
        **cluster_options,
        **auth,
        **tls,
    )


def _sentinel_master(
    topology: RedisTopology,
    options: Mapping[str, Any],
    tls: dict[str, Any],
    auth: dict[str, Any],
    sentinel_password: str | None,
) -> SentinelRedis:
    assert topology.service_name is not None
    # The sentinels get the same short timeouts, no retries, and their own password.
    to_sentinels = {
        k: v
        for k, v in options.items()
        if k in {"socket_timeout", "socket_connect_timeout", "health_check_interval", "client_name", "retry"}
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(topology.nodes), sentinel_kwargs={**to_sentinels, "password": sentinel_password, **tls}
    )
    client: SentinelRedis = sentinel.master_for(
        topology.service_name,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelConnectionPool,
        db=topology.db,
        **options,
        **auth,
        **tls,
    )
    client.sentinel_manager = sentinel
    return client


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel-managed pool (asks the sentinels for the master on every new connection and after a
    connection error or a READONLY reply) that, like the single-server pool, waits at most ``timeout``
    for a free connection instead of failing at once when all are in use."""


class SentinelRedis(Redis):
    """The master client of a Sentinel deployment; closing it also closes the connections to the sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinel_manager is not None:
                await self.sentinel_manager.aclose()


_SPLIT_BY_SLOT = {"DEL", "UNLINK", "EXISTS", "TOUCH"}
_NODE_FAILURES = (RedisConnectionError, RedisTimeoutError, ClusterDownError)


class DbmetaRedisCluster(RedisCluster):
    """``RedisCluster`` that fails like a single server (``RedisError`` only) and re-reads the slot map
    after a node fails in a pipeline or a subscription, as it already does for single commands."""

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as exc:  # "cannot be connected": no seed node answers
            raise ClusterRoutingError(str(exc)) from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterRoutingError(str(exc)) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # as RedisCluster.pipeline does

    def pubsub(
        self,
        node: ClusterNode | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ClusterPubSub:
        return _ClusterPubSub(self, node=node, host=host, port=port, **kwargs)

    def rediscover(self) -> None:
        """Make the next call re-read the slot map (a node failed: a replica may have taken over)."""
        self._initialize = True


class _ClusterPipeline(ClusterPipeline):
    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        # Keys of one DEL may live on different nodes: one command per slot (replies are per slot too).
        if len(args) > 2 and str(args[0]).upper() in _SPLIT_BY_SLOT and not kwargs:
            return self._split_command_across_slots(str(args[0]), *args[1:])
        return super().execute_command(*args, **kwargs)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        with _rediscover_on_failure(self.cluster_client):
            return await super().execute(raise_on_error, allow_redirections)


class _ClusterPubSub(ClusterPubSub):
    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _rediscover_on_failure(self.cluster):
            # A subscription picks its node from the slot map, which a fresh client has not read yet.
            await self.cluster.initialize()
            return await super().execute_command(*args, **kwargs)


@contextlib.contextmanager
def _rediscover_on_failure(cluster: RedisCluster) -> Iterator[None]:
    """A node that failed makes the next call re-read the slot map; routing failures become RedisErrors."""
    try:
        yield
    except _NODE_FAILURES:
        _rediscover(cluster)
        raise
    except RedisClusterException as exc:
        _rediscover(cluster)
        raise ClusterRoutingError(str(exc)) from exc


def _rediscover(cluster: RedisCluster) -> None:
    if isinstance(cluster, DbmetaRedisCluster):
        cluster.rediscover()
