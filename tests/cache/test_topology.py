"""REDIS_URL topologies: URL parsing (pure), client construction, and the cache on real Sentinel and Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from dbmeta_app.cache.redis_cache import KEY_VERSION, RedisCache, build_redis_client, cache_key
from dbmeta_app.cache.topology import BlockingSentinelConnectionPool, DbmetaRedisCluster, SentinelRedis
from dbmeta_app.config import Settings
from dbmeta_app.errors import ConfigError
from dbmeta_app.redis_url import RedisTopology, RedisUrlError, parse_redis_url
from tests.conftest import free_port, port_open

MakeSettings = Callable[..., Settings]

# --------------------------------------------------------------------------- parsing (pure)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://h1:26379/mymaster",
            RedisTopology("sentinel", nodes=(("h1", 26379),), service_name="mymaster"),
        ),
        (
            "redis+sentinel://:s3cret@h1:26379,h2:26380,h3/mymaster/2",
            RedisTopology(
                "sentinel",
                nodes=(("h1", 26379), ("h2", 26380), ("h3", 26379)),
                service_name="mymaster",
                db=2,
                password="s3cret",
            ),
        ),
        (
            "redis+sentinel://app:p%40ss@[::1]:5000,10.0.0.2/cache-svc/0",
            RedisTopology(
                "sentinel",
                nodes=(("::1", 5000), ("10.0.0.2", 26379)),
                service_name="cache-svc",
                username="app",
                password="p@ss",
            ),
        ),
        (
            "rediss+sentinel://:pw@s1:26379/mymaster/1?ssl_cert_reqs=none&ssl_check_hostname=false",
            RedisTopology(
                "sentinel",
                tls=True,
                nodes=(("s1", 26379),),
                service_name="mymaster",
                db=1,
                password="pw",
                tls_options=(("ssl_cert_reqs", "none"), ("ssl_check_hostname", False)),
            ),
        ),
        ("redis+cluster://n1:7000,n2:7001/", RedisTopology("cluster", nodes=(("n1", 7000), ("n2", 7001)))),
        ("redis+cluster://n1", RedisTopology("cluster", nodes=(("n1", 6379),))),
        (
            "rediss+cluster://:pw@n1:7000/0?ssl_ca_certs=/etc/ca.pem",
            RedisTopology(
                "cluster",
                tls=True,
                nodes=(("n1", 7000),),
                password="pw",
                tls_options=(("ssl_ca_certs", "/etc/ca.pem"),),
            ),
        ),
    ],
)
def test_sentinel_and_cluster_urls_parse_into_a_topology(url: str, expected: RedisTopology) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "tls", "db"),
    [
        ("redis://:pw@cache:6380/3", False, 3),
        ("rediss://cache", True, 0),
        ("unix:///run/redis.sock?db=4", False, 4),
    ],
)
def test_single_server_urls_keep_the_url_for_redis_py(url: str, tls: bool, db: int) -> None:
    topology = parse_redis_url(url)
    assert (topology.mode, topology.tls, topology.db, topology.url) == ("single", tls, db, url)


def test_the_password_is_not_in_the_topology_repr() -> None:
    assert "s3cret" not in repr(parse_redis_url("redis+sentinel://:s3cret@h/mymaster"))
    assert "s3cret" not in repr(parse_redis_url("redis://:s3cret@h/0"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://:s3cret@h:6379", "must start with redis://"),
        ("redis+sentinel://:s3cret@h1:26379", "must name the service"),
        ("redis+sentinel://:s3cret@h1/svc/0/extra", "/<service_name>[/<db>]"),
        ("redis+sentinel://:s3cret@h1/svc/zero", "database must be a number"),
        ("redis+sentinel://:s3cret@h1:0/svc", "must be a number from 1 to 65535"),
        ("redis+sentinel://h1:s3cret/svc", "must be a number from 1 to 65535"),  # a password missing its "@"
        ("redis+sentinel://:s3cret@h1,,h2/svc", "host[:port], separated by commas"),
        ("redis+sentinel://:s3cret@[nothost]:1/svc", "IPv6 address"),
        ("redis+cluster://:s3cret@n1:7000/1", "cluster only has database 0"),
        ("redis+cluster://:s3cret@n1:7000/?ssl_cert_reqs=none", "only accepted with TLS"),
        ("rediss+cluster://:s3cret@n1:7000/?password=x", "unknown option 'password'"),
        ("rediss+cluster://:s3cret@n1:7000/?ssl_cert_reqs=maybe", "ssl_cert_reqs must be"),
        ("redis://:x@h:s3cret/0", "must be a number from 1 to 65535"),
        ("redis://:s3cret@h/zero", "path must be the database number"),
        ("redis://:s3cret@h/0?db=zero", "Invalid value for 'db'"),
    ],
)
def test_a_bad_redis_url_fails_start_up_naming_redis_url_without_the_password(
    make_settings: MakeSettings, url: str, reason: str
) -> None:
    with pytest.raises(RedisUrlError) as direct:
        parse_redis_url(url)
    assert reason in str(direct.value) and "s3cret" not in str(direct.value)
    with pytest.raises(ConfigError) as at_start_up:
        make_settings(redis_url=url)
    message = str(at_start_up.value)
    assert "REDIS_URL" in message and reason in message and "s3cret" not in message


def test_an_empty_redis_url_means_host_and_port(make_settings: MakeSettings) -> None:
    assert make_settings(redis_url="  ", redis_sentinel_password="").redis_url is None


# --------------------------------------------------------------------------- client construction (no I/O)


def test_a_sentinel_url_builds_a_sentinel_managed_client_with_the_cache_timeouts(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(
        redis_cache_enabled=True,
        redis_url="redis+sentinel://:datapw@127.0.0.1:26379,127.0.0.1:26380/mymaster/3",
        redis_sentinel_password="sentinelpw",
        redis_socket_timeout=0.3,
        redis_connect_timeout=0.2,
        client="acme",
        env="prod",
    )
    client = build_redis_client(settings)
    assert isinstance(client, SentinelRedis)
    pool = client.connection_pool
    assert isinstance(pool, BlockingSentinelConnectionPool)
    assert pool.service_name == "mymaster" and pool.is_master
    assert pool.timeout == 0.3 and pool.max_connections == settings.redis_max_connections
    assert type(pool).get_connection is aioredis.BlockingConnectionPool.get_connection  # waits, bounded
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["client_name"]) == (3, "datapw", "dbmeta-acme-prod")
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["health_check_interval"]) == (
        0.3,
        0.2,
        30,
    )
    assert kwargs["retry"].get_retries() == 0
    assert client.sentinel_manager is not None
    sentinels = client.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
    for s in sentinels:
        sk = s.connection_pool.connection_kwargs
        assert (sk["password"], sk["socket_timeout"], sk["socket_connect_timeout"]) == (
            "sentinelpw",
            0.3,
            0.2,
        )


def test_a_cluster_url_builds_a_cluster_client_with_the_cache_timeouts(make_settings: MakeSettings) -> None:
    settings = make_settings(
        redis_cache_enabled=True, redis_url="redis+cluster://:datapw@127.0.0.1:7000,127.0.0.1:7001/"
    )
    client = build_redis_client(settings)
    assert isinstance(client, DbmetaRedisCluster)
    assert client.retry.get_retries() == 0
    assert [(n.host, n.port) for n in client.startup_nodes] == [("127.0.0.1", 7000), ("127.0.0.1", 7001)]
    kwargs = client.connection_kwargs
    assert (kwargs["password"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
        "datapw",
        0.25,
        0.25,
    )
    assert kwargs["max_connections"] == settings.redis_max_connections
    assert kwargs["health_check_interval"] == 30 and kwargs["client_name"] == "dbmeta-default-local"


@pytest.mark.parametrize("scheme", ["redis+sentinel", "redis+cluster"])
async def test_an_unreachable_sentinel_or_cluster_is_a_miss_never_an_error(
    make_settings: MakeSettings, scheme: str
) -> None:
    path = "/mymaster/0" if scheme == "redis+sentinel" else "/"
    settings = make_settings(redis_cache_enabled=True, redis_url=f"{scheme}://127.0.0.1:{free_port()}{path}")
    cache = RedisCache(settings)
    try:
        key = cache_key("schema", topology=scheme)
        assert await cache.get_json("schema", key) is None
        await cache.set_json("schema", key, {"v": 1})
        assert await cache.get_json("schema", key) == {"v": 1}  # from L1
        await cache.delete(key, cache_key("schema", other=1))
        assert cache.backend == "memory-fallback"
        assert await cache.ping() is False
        assert cache.stats.of("schema").errors >= 1
    finally:
        await cache.close()


# --------------------------------------------------------------------------- real processes


@dataclass
class Servers:
    """redis-server processes started by a test; all killed at the end whatever happens."""

    tmp: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, port: int, *args: str, config: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        command = [binary]
        if config is not None:
            conf = self.tmp / f"redis-{port}.conf"
            conf.write_text(config, encoding="utf-8")
            command.append(str(conf))
        command += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.tmp), *args]
        # A session of its own: killing the group also kills a child it forked (an RDB save for a replica).
        log = self.tmp / f"redis-{port}.log"
        with log.open("wb") as out:
            self.procs[port] = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or self.procs[port].poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {port} did not start; its log ends with:\n{tail}")
            time.sleep(0.02)

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # anything of that group still alive?
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def stop_all(self) -> None:
        for port in list(self.procs):
            self.kill(port)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def _wait_coherent(*caches: RedisCache) -> None:
    for _ in range(200):
        if all(c.l1_coherent for c in caches):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("invalidation listener did not subscribe")


@dataclass(frozen=True)
class SentinelDeployment:
    master: int
    replica: int
    sentinels: tuple[int, ...]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/mymaster/0"


@pytest.fixture
def sentinel_deployment(servers: Servers) -> SentinelDeployment:
    master, replica = free_port(), free_port()
    servers.start(master)
    servers.start(replica, "--replicaof", "127.0.0.1", str(master))
    sentinels = tuple(free_port() for _ in range(3))
    for port in sentinels:
        servers.start(
            port,
            "--sentinel",
            config=(
                f"sentinel monitor mymaster 127.0.0.1 {master} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 3000\n"
                "sentinel parallel-syncs mymaster 1\n"
            ),
        )

    def ready() -> bool:
        if redis.Redis(port=replica).info("replication").get("master_link_status") != "up":
            return False
        for port in sentinels:
            state = redis.Redis(port=port).sentinel_master("mymaster")
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                return False
        return True

    _until(ready, 15, "the sentinels to see the replica and each other")
    return SentinelDeployment(master, replica, sentinels)


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_sentinel_failover_keeps_answering_and_then_writes_to_the_promoted_replica(
    make_settings: MakeSettings, servers: Servers, sentinel_deployment: SentinelDeployment
) -> None:
    d = sentinel_deployment
    cache = RedisCache(make_settings(redis_cache_enabled=True, redis_url=d.url))
    replica = aioredis.Redis(port=d.replica)
    try:
        await cache.start()
        await _wait_coherent(cache)
        before = cache_key("schema", failover="before")
        await cache.set_json("schema", before, {"v": "before"})
        assert await aioredis.Redis(port=d.master).get(before) == b'{"v":"before"}'
        assert await cache.get_json("schema", before) == {"v": "before"}
        assert cache.backend == "redis"
        redis.Redis(port=d.master).wait(1, 2000)  # the replica has it too

        servers.kill(d.master)
        after = cache_key("schema", failover="after")
        seen_fallback = False
        deadline = time.monotonic() + 20
        while True:
            started = time.perf_counter()
            assert await cache.get_json("schema", before) == {"v": "before"}  # never a miss, never an error
            assert time.perf_counter() - started < 1.5
            seen_fallback = seen_fallback or cache.backend == "memory-fallback"
            await cache.set_json("schema", after, {"v": "after"})
            if cache.backend == "redis" and await replica.get(after) == b'{"v":"after"}':
                break
            assert time.monotonic() < deadline, "the promoted replica never received the write"
            await asyncio.sleep(0.1)

        assert seen_fallback  # the L1 answered while there was no master
        assert (await replica.info("replication"))["role"] == "master"
        await cache.delete(before)
        assert await replica.exists(before) == 0

        def ours_on_sentinels() -> int:
            return sum(
                c["name"].startswith("dbmeta-")
                for p in d.sentinels
                for c in redis.Redis(port=p).client_list()
            )

        assert ours_on_sentinels() > 0
        await cache.close()  # closes the connections to the sentinels too
        _until(lambda: ours_on_sentinels() == 0, 3, "the sentinel connections to close")
    finally:
        await replica.aclose()
        await cache.close()


def _start_cluster(servers: Servers, nodes: int, replicas: int) -> tuple[int, ...]:
    ports = tuple(free_port() for _ in range(nodes))
    for port in ports:
        servers.start(
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-port",  # the bus port, else port + 10000, which may be taken or out of range
            str(free_port()),
            "--cluster-config-file",
            str(servers.tmp / f"nodes-{port}.conf"),
            "--cluster-node-timeout",
            "1000",
        )
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    hosts = [f"127.0.0.1:{p}" for p in ports]
    subprocess.run(
        [cli, "--cluster", "create", *hosts, "--cluster-replicas", str(replicas), "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=30,
    )

    def ok() -> bool:
        for port in ports:
            node = redis.Redis(port=port)
            if node.cluster("INFO")["cluster_state"] != "ok":
                return False
            if node.info("replication").get("master_link_status", "up") != "up":  # replicas in sync
                return False
        return True

    _until(ok, 15, "cluster_state:ok on every node and replicas in sync")
    return ports


@pytest.fixture
def cluster_ports(servers: Servers) -> tuple[int, ...]:
    return _start_cluster(servers, nodes=3, replicas=0)


def _cluster_settings(make_settings: MakeSettings, ports: tuple[int, ...]) -> Settings:
    # Two seeds are enough: the third node is discovered from the slot map.
    return make_settings(
        redis_cache_enabled=True, redis_url=f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/"
    )


async def _keys_per_node(ports: tuple[int, ...]) -> list[int]:
    counts = []
    for port in ports:
        node = aioredis.Redis(port=port)
        counts.append(len(await node.keys(f"dbmeta:{KEY_VERSION}:*")))
        await node.aclose()
    return counts


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_cluster_spreads_keys_over_every_node_and_deletes_keys_of_different_slots_at_once(
    make_settings: MakeSettings, cluster_ports: tuple[int, ...]
) -> None:
    settings = _cluster_settings(make_settings, cluster_ports)
    writer, reader = RedisCache(settings), RedisCache(settings)
    try:
        keys = [cache_key("schema", n=i) for i in range(60)]
        for i, key in enumerate(keys):
            await writer.set_json("schema", key, {"n": i})
        counts = await _keys_per_node(cluster_ports)
        assert sum(counts) == 60 and all(c > 0 for c in counts), counts

        for i, key in enumerate(keys):  # a second instance: no L1, so from the cluster
            assert await reader.get_bytes("schema", key) == (f'{{"n":{i}}}'.encode(), "redis")

        await writer.delete(*keys[:25])
        assert sum(await _keys_per_node(cluster_ports)) == 35
        assert [await writer.get_json("schema", k) for k in keys[:25]] == [None] * 25
        assert writer.backend == reader.backend == "redis"
        assert await writer.ping() is True

        # The compute lock (SET NX PX, EXISTS, EVAL on <key>:lock) works on the key's node.
        calls = 0

        async def compute() -> dict[str, int]:
            nonlocal calls
            calls += 1
            return {"computed": 1}

        computed = cache_key("schema", computed=True)
        got = [
            await c.get_or_compute("schema", computed, compute, lambda v: v, lambda raw: {"computed": 1})
            for c in (writer, reader)
        ]
        assert got == [({"computed": 1}, "miss"), ({"computed": 1}, "hit")] and calls == 1
        assert sum(await _keys_per_node(cluster_ports)) == 36  # the lock was released (EVAL)
        assert writer.stats.of("lock").errors == 0
    finally:
        await writer.close()
        await reader.close()


@pytest.mark.integration
@pytest.mark.timeout(30)
async def test_l1_stays_coherent_across_two_instances_sharing_a_cluster(
    make_settings: MakeSettings, cluster_ports: tuple[int, ...]
) -> None:
    settings = _cluster_settings(make_settings, cluster_ports)
    a, b = RedisCache(settings), RedisCache(settings)
    try:
        await a.start()
        await b.start()
        await _wait_coherent(a, b)
        keys = [cache_key("schema", coherent=i) for i in range(6)]  # several slots, so several nodes
        for key in keys:
            await a.set_json("schema", key, {"v": 1})
            assert await b.get_json("schema", key) == {"v": 1}  # from the cluster, now in b's L1
        assert await b.get_json("schema", keys[0]) == {"v": 1}
        assert b.stats.of("schema").memory_hits == 1  # no round trip

        for key in keys:
            await a.set_json("schema", key, {"v": 2})

        async def b_sees(expected: list[Any]) -> bool:
            for _ in range(200):
                if [await b.get_json("schema", k) for k in keys] == expected:
                    return True
                await asyncio.sleep(0.01)
            return False

        assert await b_sees([{"v": 2}] * len(keys))
        await a.delete(*keys)
        assert await b_sees([None] * len(keys))
        assert a.l1_coherent and b.l1_coherent
    finally:
        await a.close()
        await b.close()
    assert not a.l1_coherent


@pytest.mark.integration
@pytest.mark.timeout(40)
async def test_cluster_failover_keeps_answering_and_then_writes_to_the_promoted_replica(
    make_settings: MakeSettings, servers: Servers
) -> None:
    ports = _start_cluster(servers, nodes=6, replicas=1)
    masters = [p for p in ports if redis.Redis(port=p).info("replication")["role"] == "master"]
    cache = RedisCache(_cluster_settings(make_settings, tuple(masters)))
    try:
        await cache.start()
        await _wait_coherent(cache)
        keys = [cache_key("schema", failover=i) for i in range(30)]
        for i, key in enumerate(keys):
            await cache.set_json("schema", key, {"n": i})
        victim = masters[-1]  # not a seed node of the URL
        probe = redis.Redis(port=victim, decode_responses=True).keys(f"dbmeta:{KEY_VERSION}:*")[0]
        promoted_port = next(
            p for p in ports if redis.Redis(port=p).info("replication").get("master_port") == victim
        )
        redis.Redis(port=victim).wait(1, 2000)
        promoted = aioredis.Redis(port=promoted_port)

        servers.kill(victim)
        deadline = time.monotonic() + 20
        try:
            while True:
                for i, key in enumerate(keys):
                    if key != probe:  # every value keeps being served, from L1 while its node is away
                        assert await cache.get_json("schema", key) == {"n": i}
                await cache.set_json("schema", probe, {"n": "after"})
                if cache.backend == "redis" and await promoted.get(probe) == b'{"n":"after"}':
                    break
                assert time.monotonic() < deadline, "the promoted replica never received the write"
                await asyncio.sleep(0.1)
            assert (await promoted.info("replication"))["role"] == "master"
        finally:
            await promoted.aclose()
        fresh = RedisCache(_cluster_settings(make_settings, tuple(masters)))
        try:  # no L1: every key is read from the cluster, the victim's slots from the promoted replica
            assert [await fresh.get_bytes("schema", k) for k in keys[:3]] == [
                (f'{{"n":{i}}}'.encode() if k != probe else b'{"n":"after"}', "redis")
                for i, k in enumerate(keys[:3])
            ]
        finally:
            await fresh.close()
    finally:
        await cache.close()
