"""The PostgreSQL fingerprint: both query forms (row hashes summed on 14+, md5 over sorted rows before) change
with every kind of DDL that introspection would see, and with nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.schema import fingerprint as fp


@pytest.fixture
def pg_schema(pg_url: str, unique: str) -> Iterator[tuple[sa.Engine, str]]:
    engine = sa.create_engine(pg_url)
    schema = f"fp {unique} é%"  # an odd name: spaces, unicode, %  (text() escapes % for the driver)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".a (id int PRIMARY KEY, name text)'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".b (id int PRIMARY KEY, a_id int)'))
    yield engine, schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.mark.parametrize("form", ["hashed", "md5"])
def test_each_kind_of_ddl_changes_the_fingerprint(
    pg_schema: tuple[sa.Engine, str], form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, schema = pg_schema
    if form == "md5":  # what a server before 14 runs
        monkeypatch.setattr(fp, "_PG_QUERY", fp._PG_QUERY_MD5)
    s = f'"{schema}"'
    changes = [
        f"ALTER TABLE {s}.a ADD COLUMN vip boolean",
        f"ALTER TABLE {s}.a ALTER COLUMN name TYPE varchar(40)",
        f"ALTER TABLE {s}.a ALTER COLUMN name TYPE varchar(80)",  # only the type modifier changes
        f"ALTER TABLE {s}.a ALTER COLUMN name SET NOT NULL",
        f"ALTER TABLE {s}.a RENAME COLUMN vip TO is_vip",
        f"ALTER TABLE {s}.b ADD FOREIGN KEY (a_id) REFERENCES {s}.a (id)",
        f"COMMENT ON COLUMN {s}.a.name IS 'the full name'",
        f"COMMENT ON TABLE {s}.b IS 'links'",
        f"ALTER TABLE {s}.b RENAME TO c",
        f"CREATE VIEW {s}.v AS SELECT id FROM {s}.a",
        f"ALTER TABLE {s}.a DROP COLUMN is_vip",
        f"DROP TABLE {s}.c",
    ]
    seen = {fp.schema_fingerprint(engine, (schema,))}
    for ddl in changes:
        with engine.begin() as conn:
            conn.execute(sa.text(ddl))
        now = fp.schema_fingerprint(engine, (schema,))
        assert now and now not in seen, ddl
        assert fp.schema_fingerprint(engine, (schema,)) == now  # stable while nothing changes
        seen.add(now)
    # what introspection does not read leaves it alone: data, statistics, another schema
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {s}.a (id, name) VALUES (1, 'x')"))
        conn.execute(sa.text(f"ANALYZE {s}.a"))
        conn.execute(sa.text(f'CREATE TABLE "{schema}_other" (id int)'))
    try:
        assert fp.schema_fingerprint(engine, (schema,)) == now
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE "{schema}_other"'))


def test_servers_before_14_get_the_md5_form(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert fp._pg_query(conn) is fp._PG_QUERY  # this machine runs 15
            real = conn.dialect.server_version_info
            conn.dialect.server_version_info = (13, 9)
            try:
                assert fp._pg_query(conn) is fp._PG_QUERY_MD5
            finally:
                conn.dialect.server_version_info = real
    finally:
        engine.dispose()
