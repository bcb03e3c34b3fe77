"""Cache keys: one scope per (deployment, profile, database); the database's identity never holds its password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbmeta_app.cache.keys import KEY_VERSION, Scope, cache_key, database_identity

PG = "postgresql+psycopg://app:s3cret@db.example.com:5432/sales"


def scope(**changes: str) -> Scope:
    fields = {"client": "c", "env": "prod", "profile": "p", "database": database_identity(PG)}
    fields.update(changes)
    return Scope(**fields)


def test_scoped_keys_are_namespaced_versioned_sha256_under_the_scope_prefix() -> None:
    key = scope().key("schema", with_examples=False)
    namespace, version, kind, short, digest = key.split(":")
    assert (namespace, version, kind) == ("dbmeta", KEY_VERSION, "schema")
    assert len(short) == 16 and len(digest) == 64 and int(digest, 16) >= 0
    assert key.startswith(scope().prefix("schema"))
    assert scope().key("schema", a=1, b=2) == scope().key("schema", b=2, a=1)
    assert scope().key("schema", a=1) != scope().key("schema", a=2)


@pytest.mark.parametrize("field", ["client", "env", "profile", "database"])
def test_every_part_of_the_scope_changes_the_prefix_and_the_key(field: str) -> None:
    other = scope(**{field: "other"})
    assert other.prefix("schema") != scope().prefix("schema")
    assert other.key("schema", x=1) != scope().key("schema", x=1)


def test_unscoped_keys_have_no_scope_part_and_no_naive_join_collisions() -> None:
    key = cache_key("embedding", model="m", text="t")
    assert key.startswith(f"dbmeta:{KEY_VERSION}:embedding:") and len(key.split(":")) == 4
    assert cache_key("k", x="a:b", y="c") != cache_key("k", x="a", y="b:c")
    assert cache_key("k", profile='ünïcødé %s "q"') != cache_key("k", profile="unicode")


def test_the_database_identity_never_depends_on_the_password() -> None:
    same = [
        PG,
        "postgresql+psycopg://app:other-password@db.example.com:5432/sales",
        "postgresql+psycopg://app@db.example.com/sales",  # the default port
        "postgresql+psycopg2://app:x@DB.example.com:5432/sales",  # another driver, the host's case
        "postgresql+psycopg://app@db.example.com:5432/sales?sslmode=require&connect_timeout=3",
        "postgresql+psycopg://app@db.example.com:5432/sales?password=also-secret&application_name=x",
    ]
    assert len({database_identity(url) for url in same}) == 1
    identity = database_identity(PG)
    assert identity.startswith("postgresql:") and "s3cret" not in identity


@pytest.mark.parametrize(
    "other",
    [
        "postgresql+psycopg://app:s3cret@db.example.com:5432/hr",  # another database
        "postgresql+psycopg://app:s3cret@db2.example.com:5432/sales",  # another host
        "postgresql+psycopg://app:s3cret@db.example.com:5433/sales",  # another port
        "postgresql+psycopg://reporting:s3cret@db.example.com:5432/sales",  # another user sees other tables
        "mysql+pymysql://app:s3cret@db.example.com:5432/sales",  # another dialect
        "postgresql+psycopg://app:s3cret@db.example.com:5432/sales?options=-csearch_path%3Dhr",
        "postgresql+psycopg://app@/sales?host=/var/run/postgresql",  # a socket, not a host
        "postgresql+psycopg://app:s3cret@db.example.com:5432/sales?service=replica",
    ],
)
def test_anything_that_can_change_what_is_read_changes_the_identity(other: str) -> None:
    assert database_identity(other) != database_identity(PG)


def test_sqlite_files_are_named_by_their_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = database_identity("sqlite:///warehouse.db")
    assert relative == database_identity(f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert relative != database_identity(f"sqlite:///{tmp_path / 'other.db'}")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the same relative URL now opens another file
    assert database_identity("sqlite:///warehouse.db") != relative


def test_an_in_memory_database_is_this_process_own() -> None:
    identity = database_identity("sqlite://")
    assert identity == database_identity("sqlite:///:memory:")
    assert identity != database_identity("sqlite:///data.db")
    assert str(os.getpid()) not in identity  # hashed like everything else


def test_a_url_sqlalchemy_cannot_read_is_hashed_without_its_credentials() -> None:
    a = database_identity("not a url://user:pw1@host/db")
    b = database_identity("not a url://user:pw2@host/db")
    assert a == b and a.startswith("unparsed:") and "pw1" not in a
