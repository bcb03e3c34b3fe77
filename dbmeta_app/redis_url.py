"""What ``REDIS_URL`` names: a pure parse into a ``RedisTopology`` (start-up validation runs it).

URL forms (``[[user]:password@]`` is the data nodes' auth; ``rediss…`` means TLS everywhere):

- ``redis://host:port/db``, ``rediss://…``, ``unix:///path.sock?db=N`` — one server.
- ``redis+sentinel://[[user]:password@]host[:26379][,host[:26379]…]/<service_name>[/<db>]`` — the master
  of ``service_name`` as the sentinels report it (``rediss+sentinel://`` for TLS). The sentinels' own
  password, if any, is ``REDIS_SENTINEL_PASSWORD``.
- ``redis+cluster://[[user]:password@]host[:6379][,host[:6379]…][/]`` — a Redis Cluster, discovered from
  any of the seed nodes (``rediss+cluster://`` for TLS; database 0 only).

TLS forms accept the query options ``ssl_cert_reqs`` (none|optional|required), ``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile`` and ``ssl_check_hostname`` (true|false).

A base-layer module (docs/ARCHITECTURE.md): ``config.py`` validates with it, ``cache/topology.py`` builds
the client from its result.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio.connection import parse_url

from dbmeta_app.errors import ConfigError

Mode = Literal["single", "sentinel", "cluster"]

DEFAULT_SENTINEL_PORT = 26379
DEFAULT_CLUSTER_PORT = 6379
_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "unix": ("single", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_CERT_REQS = {"none", "optional", "required"}
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")


class RedisUrlError(ConfigError):
    """``REDIS_URL`` does not name a deployment we can talk to; the message never contains the password."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid REDIS_URL: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RedisTopology:
    """A parsed ``REDIS_URL``: the kind of deployment, where to find it and how to authenticate."""

    mode: Mode
    tls: bool = False
    #: the sentinels (sentinel mode) or the seed nodes (cluster mode)
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: TLS options from the query string, as (name, value) pairs
    tls_options: tuple[tuple[str, str | bool], ...] = ()
    #: single mode: the URL as given, handed to redis-py's own parser
    url: str | None = field(default=None, repr=False)


def parse_redis_url(url: str) -> RedisTopology:
    """Parse a ``REDIS_URL`` into a topology, or raise ``RedisUrlError`` naming what is wrong."""
    try:
        return _parse(url.strip())
    except RedisUrlError:
        raise
    except ValueError as exc:  # from urllib / redis-py: scrub anything that could echo the password
        raise RedisUrlError(_scrub(str(exc), url)) from None


def _parse(url: str) -> RedisTopology:
    scheme, sep, _ = url.partition("://")
    known = _SCHEMES.get(scheme.lower()) if sep else None
    if known is None:
        raise RedisUrlError(
            "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
            "redis+cluster:// or rediss+cluster://"
        )
    mode, tls = known
    if mode == "single":
        return _parse_single(url, tls)
    parts = urlsplit(url)
    if parts.fragment:
        raise RedisUrlError("must not have a #fragment")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    default_port = DEFAULT_SENTINEL_PORT if mode == "sentinel" else DEFAULT_CLUSTER_PORT
    nodes = tuple(_host_port(item, default_port) for item in hosts.split(","))
    tls_options = _tls_options(parts.query, tls)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
    if mode == "cluster":
        if segments not in ([], ["0"]):
            raise RedisUrlError("a redis+cluster:// URL has no path (a cluster only has database 0)")
        return RedisTopology(
            "cluster", tls, nodes, username=username, password=password, tls_options=tls_options
        )
    if not segments or not segments[0]:
        raise RedisUrlError("a redis+sentinel:// URL must name the service: …/<service_name>[/<db>]")
    if len(segments) > 2:
        raise RedisUrlError("a redis+sentinel:// URL path is /<service_name>[/<db>]")
    db = _db(segments[1]) if len(segments) == 2 else 0
    return RedisTopology(
        "sentinel",
        tls,
        nodes,
        service_name=segments[0],
        db=db,
        username=username,
        password=password,
        tls_options=tls_options,
    )


def _parse_single(url: str, tls: bool) -> RedisTopology:
    parts = urlsplit(url)
    if not url.lower().startswith("unix:"):
        try:
            _ = parts.port
        except ValueError:  # never echo it: a password missing its "@" ends up here
            raise RedisUrlError("the port must be a number from 1 to 65535") from None
        path = unquote(parts.path).strip("/")
        if path and not path.isdigit():
            raise RedisUrlError(f"the path must be the database number, got {path!r}")
    options = parse_url(url)  # redis-py's own parser, the one BlockingConnectionPool.from_url applies
    return RedisTopology("single", tls, db=int(options.get("db") or 0), url=url)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # "user@host": a name, no password (as in redis-py's parser)
        return unquote(user) or None, None
    return unquote(user) or None, unquote(password) or None


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [IPv6]:port
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise RedisUrlError(f"bad host {item!r} (IPv6 addresses look like [::1]:26379)")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise RedisUrlError(f"bad IPv6 address {host!r}") from None
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise RedisUrlError("every host in the list must be host[:port], separated by commas")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        # never echo the port text: a password missing its "@" ends up here
        raise RedisUrlError(f"the port of host {host!r} must be a number from 1 to 65535")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"the database must be a number, got {text!r}")
    return int(text)


def _tls_options(query: str, tls: bool) -> tuple[tuple[str, str | bool], ...]:
    if not query:
        return ()
    if not tls:
        raise RedisUrlError(
            "query options are only accepted with TLS (rediss+sentinel://, rediss+cluster://)"
        )
    out: list[tuple[str, str | bool]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _TLS_OPTIONS:
            raise RedisUrlError(f"unknown option {name!r}; accepted: {', '.join(_TLS_OPTIONS)}")
        if name == "ssl_cert_reqs" and value.lower() not in _CERT_REQS:
            raise RedisUrlError("ssl_cert_reqs must be none, optional or required")
        if name == "ssl_check_hostname":
            if value.lower() not in _BOOLS:
                raise RedisUrlError("ssl_check_hostname must be true or false")
            out.append((name, _BOOLS[value.lower()]))
            continue
        out.append((name, value.lower() if name == "ssl_cert_reqs" else value))
    return tuple(out)


def _scrub(message: str, url: str) -> str:
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for secret in {password, unquote(password)} - {""}:
        message = message.replace(secret, "***")
    return message
