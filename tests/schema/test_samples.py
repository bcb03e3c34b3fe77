"""Sample rows: read from base tables only (views when allow-listed), read-only, bounded, never a side effect.

Each database gets objects whose mere reading changes something (a view over a function that inserts, a
view that terminates another session, a file_fdw foreign table that runs a program), and a state check
after every read that would catch the effect.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbmeta_app.db.admission import Admission
from dbmeta_app.errors import BusyError
from dbmeta_app.schema import introspect
from dbmeta_app.schema.samples import SamplePolicy, sample_rows, sampleable
from tests._scratch import run_child
from tests.conftest import MYSQL_URL, PG_ADMIN_URL

# --- SQLite ------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, blob BLOB)")
        conn.exec_driver_sql("INSERT INTO docs VALUES (1, ?, ?)", ("x" * 100_000, b"\x00" * 50_000))
        conn.exec_driver_sql("CREATE VIEW v_docs AS SELECT id, length(body) AS n FROM docs")
    yield engine
    engine.dispose()


def _tables(engine: sa.Engine) -> dict[str, Any]:
    return introspect(engine, "p").tables


def test_views_are_not_read_unless_allow_listed(sqlite_engine: sa.Engine) -> None:
    tables = list(_tables(sqlite_engine).values())
    read = sample_rows(sqlite_engine, tables, 3)
    assert set(read) == {"docs"}
    allowed = sample_rows(sqlite_engine, tables, 3, SamplePolicy(allowed_views=("v_docs",)))
    assert set(allowed) == {"docs", "v_docs"} and allowed["v_docs"][0][1] == "100000"


def test_values_are_cut_on_the_server(sqlite_engine: sa.Engine) -> None:
    rows = sample_rows(sqlite_engine, list(_tables(sqlite_engine).values()), 3)["docs"]
    assert rows == (("1", "x" * 59 + "…", "<50000 bytes>"),)


def test_sample_reads_take_a_slot_and_say_busy_when_none_is_free(sqlite_engine: sa.Engine) -> None:
    tables = list(_tables(sqlite_engine).values())
    admission = Admission(slots=1, queue=0, wait=0.1)
    assert admission.enter_blocking()  # a preflight holds the only slot
    with pytest.raises(BusyError) as raised:
        sample_rows(sqlite_engine, tables, 3, SamplePolicy(admission=admission, retry_after=2))
    assert raised.value.status_code == 503 and raised.value.headers == {"Retry-After": "2"}
    admission.release()
    assert set(sample_rows(sqlite_engine, tables, 3, SamplePolicy(admission=admission))) == {"docs"}
    assert admission.busy == 0


def test_the_relation_check_is_asked_once_for_the_whole_table_set(sqlite_engine: sa.Engine) -> None:
    tables = list(_tables(sqlite_engine).values())
    calls: list[list[str]] = []

    def check(conn: sa.Connection, candidates: Any) -> dict[str, str]:
        calls.append([t.key for t in candidates])
        return {"docs": "row-level security policy"}

    policy = SamplePolicy(allowed_views=("v_docs",), relation_check=check)
    assert set(sample_rows(sqlite_engine, tables, 3, policy)) == {"v_docs"}
    assert calls == [["docs", "v_docs"]]


# --- PostgreSQL --------------------------------------------------------------------------------------


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[tuple[sa.Engine, str]]:
    """A private database (extensions are per database) with objects that act when read."""
    name = f"dbmeta_samples_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(pg_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield engine, name
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.integration
def test_postgres_objects_that_act_when_read_are_never_read(pg_database: tuple[sa.Engine, str]) -> None:
    engine, name = pg_database
    marker = Path(f"/tmp/dbmeta_fdw_{name}")
    victim = engine.connect()
    victim_pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE sentinel (id int, note text)")
            conn.exec_driver_sql("INSERT INTO sentinel VALUES (1, 'kept')")
            conn.exec_driver_sql(
                "CREATE FUNCTION writes() RETURNS int VOLATILE LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO sentinel VALUES (99, 'written'); RETURN 1; END $$"
            )
            conn.exec_driver_sql("CREATE VIEW v_writes AS SELECT writes() AS x")
            conn.exec_driver_sql(f"CREATE VIEW v_kills AS SELECT pg_terminate_backend({victim_pid}) AS x")
            conn.exec_driver_sql("CREATE EXTENSION file_fdw")
            conn.exec_driver_sql("CREATE SERVER files FOREIGN DATA WRAPPER file_fdw")
            conn.exec_driver_sql(
                f"CREATE FOREIGN TABLE runs_program (x text) SERVER files OPTIONS (program 'touch {marker}')"
            )
        snapshot = introspect(engine, "p", data_examples=3, sample_policy=SamplePolicy())
        assert snapshot.tables["public.sentinel"].sample_rows == (("1", "kept"),)
        for key in ("public.v_writes", "public.v_kills", "public.runs_program"):
            assert snapshot.tables[key].sample_rows == ()
        # allow-listed, the writing view is read inside a read-only transaction: refused, nothing written
        allowed = SamplePolicy(allowed_views=("public.v_writes",))
        assert "public.v_writes" not in sample_rows(engine, list(snapshot.tables.values()), 3, allowed)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM sentinel").scalar_one() == 1
        assert victim.exec_driver_sql("SELECT 1").scalar_one() == 1  # still alive
        time.sleep(0.2)
        assert not marker.exists()
        assert [t.key for t in sampleable(engine, snapshot.tables.values())] == ["public.sentinel"]
    finally:
        victim.close()
        if marker.exists():
            os.unlink(marker)


# --- MariaDB -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_mariadb_views_that_write_are_never_read(mysql_url: str) -> None:
    database = f"dbmeta_samples_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT").execution_options(no_parameters=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
        conn.exec_driver_sql(f"CREATE TABLE `{database}`.sentinel (id INT, note TEXT)")
        conn.exec_driver_sql(f"INSERT INTO `{database}`.sentinel VALUES (1, 'kept')")
        conn.exec_driver_sql(
            f"CREATE FUNCTION `{database}`.writes() RETURNS INT MODIFIES SQL DATA "
            f"BEGIN INSERT INTO `{database}`.sentinel VALUES (99, 'written'); RETURN 1; END"
        )
        conn.exec_driver_sql(f"CREATE VIEW `{database}`.v_writes AS SELECT `{database}`.writes() AS x")
    engine = sa.create_engine(MYSQL_URL.rsplit("/", 1)[0] + f"/{database}")
    try:
        snapshot = introspect(engine, "p", include_schemas=(database,), data_examples=3)
        assert snapshot.tables[f"{database}.sentinel"].sample_rows == (("1", "kept"),)
        assert snapshot.tables[f"{database}.v_writes"].sample_rows == ()
        allowed = SamplePolicy(allowed_views=("v_writes",))
        assert f"{database}.v_writes" not in sample_rows(engine, list(snapshot.tables.values()), 3, allowed)
        with admin.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT count(*) FROM `{database}`.sentinel").scalar_one() == 1
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin.dispose()


# --- generated columns computed on read (audit #3, #5) ----------------------------------------------------


def test_sqlite_virtual_generated_columns_are_not_computed(tmp_path: Path) -> None:
    """SQLite computes a VIRTUAL column to read it (``hex(zeroblob(2e8))`` from an 8 KB file: 1.3 GB): not read.
    A STORED one is read from the record like any column."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE g (id INTEGER PRIMARY KEY, n INTEGER, "
                "v TEXT GENERATED ALWAYS AS (hex(zeroblob(n))) VIRTUAL, "
                "st TEXT GENERATED ALWAYS AS ('s' || n) STORED)"
            )
            conn.exec_driver_sql("INSERT INTO g (id, n) VALUES (1, 4)")
        rows = sample_rows(engine, list(_tables(engine).values()), 3)
    finally:
        engine.dispose()
    assert rows["g"] == (("1", "4", "<generated>", "s4"),)


@pytest.mark.integration
def test_clickhouse_alias_columns_are_not_computed(chdb_url: str) -> None:
    """An ALIAS column is computed on every read (a ``dictGet`` there reached a URL): not read. A MATERIALIZED
    column is stored and read."""
    engine = sa.create_engine(chdb_url)
    db = "samples_alias_" + uuid.uuid4().hex[:8]
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {db}")
            conn.exec_driver_sql(
                f"CREATE TABLE {db}.t (id UInt64, a String ALIAS concat('computed-', toString(id)), "
                "m String MATERIALIZED 'stored') ENGINE = MergeTree ORDER BY id"
            )
            conn.exec_driver_sql(f"INSERT INTO {db}.t (id) VALUES (1)")
        tables = introspect(engine, "ch", include_schemas=(db,)).tables
        rows = sample_rows(engine, list(tables.values()), 3)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
        engine.dispose()
    table = tables[f"{db}.t"]
    values = dict(zip([c.name for c in table.columns], rows[f"{db}.t"][0], strict=True))
    assert values["id"] == "1" and values["a"] == "<generated>", values
    assert values.get("m", "stored") == "stored"


_TOO_LARGE = r"""
import json, sqlite3, sys
import dbmeta_app.db.engines as engines

engines.SQLITE_HARD_HEAP_LIMIT = 16 * 1024 * 1024  # the service's cap, lowered for a small test
from pydantic import SecretStr
from dbmeta_app.config import Profile
from dbmeta_app.profiles import open_profile
from dbmeta_app.schema import introspect
from dbmeta_app.schema.samples import read_samples

path = sys.argv[1]
with sqlite3.connect(path) as conn:
    conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, s TEXT)")
    conn.execute("INSERT INTO big VALUES (1, ?)", ("y" * 40_000_000,))
    conn.execute("CREATE TABLE small (id INTEGER PRIMARY KEY, s TEXT)")
    conn.execute("INSERT INTO small VALUES (1, 'x')")
conn.close()
rt = open_profile(Profile(name="p", database_url=SecretStr(f"sqlite:///{path}")))
snap = introspect(rt.engine, "p")
read = read_samples(rt.engine, snap.tables.values(), 2, rt.sample_policy())
print(json.dumps({"rows": {k: list(map(list, v)) for k, v in read.rows.items()}, "unsampled": read.unsampled}))
"""


def test_a_value_too_large_for_the_service_s_sqlite_heap_leaves_its_table_unsampled_not_the_snapshot(
    tmp_path: Path,
) -> None:
    # Under the SQLite heap cap (engines.SQLITE_HARD_HEAP_LIMIT) reading a value larger than it is a MemoryError:
    # that table is labelled, the others are read (a 300 MB value made `dbmeta schema --samples` fail whole).
    answer = run_child(_TOO_LARGE, str(tmp_path / "big.db"))
    assert answer["rows"] == {"small": [["1", "x"]]}, answer
    assert answer["unsampled"] == {
        "big": "not sampled: a value is too large to read within the service's memory bound"
    }
