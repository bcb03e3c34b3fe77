"""Cache keys from an explicit scope: the one place every key and every index name gets its identity.

A value derived from a database is scoped by ``Scope(client, env, profile, database)``, where ``database`` is
the identity of the database the profile reads (``database_identity``): its dialect, host, port, database
name and user, and the URL's query parameters that can change what is read — never the password. So a
``DATABASE_URL`` that now names another database, a database that does not exist, or another deployment's
database sharing the same Redis and the same ``CLIENT``/``ENV``, can never reach a value it did not compute.

Key layout: ``dbmeta:v2:<kind>:<scope>:<sha256>`` where ``<scope>`` is the first 16 hex digits of a sha256 over
the scope (so ``Scope.prefix(kind)`` finds and drops all of one scope's values of a kind) and ``<sha256>`` is
taken over a canonical JSON encoding (sorted keys) of the scope and every other input of the value.
Values that are not derived from a database (the embedding of a request text: model id + text) have no
scope: ``dbmeta:v2:<kind>:<sha256>``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

KEY_NAMESPACE = "dbmeta"
#: v2: the scope names the database (v1 keys named client, env and profile only).
KEY_VERSION = "v2"
#: The kinds of values a profile's scope holds (what admin invalidation and ``dbmeta cache clear`` drop).
SCOPED_KINDS = ("schema", "explain", "examples")

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
# Query parameters that only say how to connect (TLS, timeouts, keep-alives, the name shown to the server):
# the same database answers the same way whatever they are, so they stay out of the identity. Every other
# parameter is kept — search_path options, service files, sockets, charsets may change what is read, and an
# unknown one costing a cache miss is better than another database's answer.
_CONNECTION_ONLY = re.compile(
    r"^(ssl.*|tls.*|.*timeout.*|keepalives.*|application_name|fallback_application_name|"
    r"client_name|pool_.*|echo|autocommit|check_same_thread)$",
    re.IGNORECASE,
)
# Never part of a key, not even hashed: a digest of a secret can be brute-forced offline.
_SECRET = re.compile(r"pass|pwd|secret|token|credential|auth|api_?key|private", re.IGNORECASE)
_REDACT_USERINFO = re.compile(r"^([^:/?#]+://)([^@/?#]*)@")


def digest(parts: Any) -> str:
    """Return the sha256 (hex) of a canonical JSON encoding of parts (sorted keys, ``str()`` for the rest)."""
    canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()


def database_identity(url: str | URL) -> str:
    """Name the database a URL reads, without its password: ``<dialect>:<16 hex digits>``.

    The digest covers the dialect (not the driver: psycopg and psycopg2 read the same database), the host
    (lowercased), the port (the dialect's default when omitted), the database (an absolute path for SQLite
    files, as the process opens them; an in-memory database is this process's own) and the user, and every
    query parameter but connection-only and secret ones.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy reads (it would fail to connect anyway): hash it without its credentials.
        text = _REDACT_USERINFO.sub(r"\1", str(url))
        return f"unparsed:{digest({'url': text})[:16]}"
    dialect = parsed.get_backend_name()
    database = parsed.database or ""
    query = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in sorted(parsed.query.items())
        if not _CONNECTION_ONLY.match(k) and not _SECRET.search(k)
    }
    if dialect == "sqlite":
        database = _sqlite_database(database, query)
    parts = {
        "dialect": dialect,
        "host": (parsed.host or "").lower(),
        "port": parsed.port or _DEFAULT_PORTS.get(dialect),
        "database": database,
        "user": parsed.username or "",
        "query": query,
    }
    return f"{dialect}:{digest(parts)[:16]}"


def _sqlite_database(database: str, query: dict[str, Any]) -> str:
    in_memory = database in ("", ":memory:") or "mode=memory" in database or query.get("mode") == "memory"
    if in_memory:
        # Each process has its own: another process's cached schema of "its" memory database is not ours.
        return f":memory:{os.getpid()}"
    if database.startswith("file:"):  # a SQLite URI (uri=true): the path is what follows, up to the query
        path, sep, rest = database[5:].partition("?")
        return "file:" + os.path.abspath(os.path.expanduser(path)) + sep + rest
    return os.path.abspath(os.path.expanduser(database))


def cache_key(kind: str, **inputs: Any) -> str:
    """Key of a value that no database determines (e.g. an embedding): ``dbmeta:v2:<kind>:<sha256>``.

    Everything derived from a database goes through ``Scope.key`` instead.
    """
    return f"{KEY_NAMESPACE}:{KEY_VERSION}:{kind}:{digest(inputs)}"


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose values these are: the deployment (client, env), the profile and the database it reads."""

    client: str
    env: str
    profile: str
    database: str  # database_identity(...) of the profile's URL; never holds the password

    def _fields(self) -> dict[str, str]:
        return {"client": self.client, "env": self.env, "profile": self.profile, "database": self.database}

    @property
    def digest(self) -> str:
        """The scope's short digest: the part of every key (and Milvus name) that names it."""
        return digest(self._fields())[:16]

    def prefix(self, kind: str) -> str:
        """The prefix shared by every key of this kind in this scope (what invalidation drops)."""
        return f"{KEY_NAMESPACE}:{KEY_VERSION}:{kind}:{self.digest}:"

    def key(self, kind: str, /, **inputs: Any) -> str:
        """Key of a value of this scope: the scope and every other input that changes it are hashed in."""
        return self.prefix(kind) + digest({"scope": self._fields(), "inputs": inputs})
