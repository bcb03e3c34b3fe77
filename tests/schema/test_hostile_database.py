"""A hostile database: what it stores must not cost its server, or the service, more than a bounded amount.

- sample reads never materialise a whole large value on the server (PostgreSQL TOAST, MariaDB virtual columns);
- comments are cut to ``COMMENT_MAX`` in the catalog query;
- all the sample reads of one snapshot share one deadline (locked tables do not add up);
- control characters never reach the prompt text (see also tests/schema/test_render.py).

Integration tests use scratch databases named ``test_<x>`` that they drop; values stay ≤ 100 MB, one at a time.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbmeta_app.schema import introspect, samples
from dbmeta_app.schema.samples import SamplePolicy, sample_rows
from tests._scratch import pg_database
from tests.conftest import MYSQL_URL

pytestmark = pytest.mark.integration

COMMENT_MAX = 2_000  # documented (README, "Untrusted databases"); dbmeta_app.schema.models.COMMENT_MAX


@pytest.fixture
def pg_scratch(pg_url: str) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """A scratch PostgreSQL database: (an AUTOCOMMIT engine for set-up, the engine under test)."""
    for owner in pg_database(pg_url, (), "hostile"):
        setup = sa.create_engine(owner.url, isolation_level="AUTOCOMMIT")
        # one pooled connection: every read runs in the same backend, whose peak RSS the test reads
        engine = sa.create_engine(owner.url, poolclass=sa.pool.StaticPool)
        try:
            yield setup, engine
        finally:
            engine.dispose()
            setup.dispose()


def _peak_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("the PostgreSQL server is not on this machine: its backend's memory cannot be read")
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_postgres_large_values_are_cut_without_detoasting_them(
    pg_scratch: tuple[sa.Engine, sa.Engine],
) -> None:
    setup, engine = pg_scratch
    with setup.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE big_text (id int, body text)")
        conn.exec_driver_sql("INSERT INTO big_text SELECT 1, repeat('abcdefghij', 10000000)")  # 100 MB
        conn.exec_driver_sql("CREATE TABLE big_doc (id int, doc jsonb)")
        conn.exec_driver_sql(
            "INSERT INTO big_doc SELECT 1, jsonb_build_object('k', repeat('abcdefghij', 5000000))"  # 50 MB
        )
        conn.exec_driver_sql("CREATE TABLE small_doc (id int, doc jsonb)")
        conn.exec_driver_sql("""INSERT INTO small_doc VALUES (1, '{"a": 1}')""")
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    tables = introspect(engine, "p").tables
    before = _peak_mb(pid)
    rows = {}
    for key in ("public.big_text", "public.big_doc", "public.small_doc"):  # one large value at a time
        rows.update(sample_rows(engine, [tables[key]], 3))
    after = _peak_mb(pid)
    # the value's text would be 100 MB (its output 200+ MB more): a few MB is the prefix and the plan
    assert after - before < 32, f"backend peak RSS {before} → {after} MB"
    assert rows["public.big_text"] == (("1", "abcdefghij" * 5 + "abcdefghi…"),)
    (doc,) = rows["public.big_doc"]
    assert doc[0] == "1" and doc[1] is not None and doc[1].endswith(" bytes stored>"), doc
    assert rows["public.small_doc"] == (("1", '{"a": 1}'),)
    # a snapshot that calls the jsonb column text (stale) does not decide: the live catalog does
    stale = dataclasses.replace(
        tables["public.big_doc"],
        columns=tuple(dataclasses.replace(c, type="text") for c in tables["public.big_doc"].columns),
    )
    assert sample_rows(engine, [stale], 3)["public.big_doc"] == rows["public.big_doc"]
    assert _peak_mb(pid) - before < 32


def test_postgres_comments_are_cut_in_the_catalog_query(pg_scratch: tuple[sa.Engine, sa.Engine]) -> None:
    setup, engine = pg_scratch
    with setup.connect().execution_options(no_parameters=True) as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id int, body text)")
        conn.exec_driver_sql(
            "DO $$ BEGIN EXECUTE format('COMMENT ON TABLE notes IS %L', repeat('t', 3000000)); END $$"
        )
        conn.exec_driver_sql(
            "DO $$ BEGIN EXECUTE format('COMMENT ON COLUMN notes.body IS %L', repeat('c', 3000000)); END $$"
        )
        conn.exec_driver_sql("COMMENT ON COLUMN notes.id IS 'the key'")
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    table = introspect(engine, "p").tables["public.notes"]
    assert table.comment == "t" * (COMMENT_MAX - 1) + "…"
    assert table.columns[1].comment == "c" * (COMMENT_MAX - 1) + "…"
    assert table.columns[0].comment == "the key"
    # the fingerprint hashes comments on the server; the reads that bring them back cut them there
    reads = [s for s in statements if "pg_description" in s and "hash_record_extended" not in s]
    assert reads and all(f'pg_catalog."left"(d.description, {COMMENT_MAX + 1})' in s for s in reads)


def test_postgres_sample_reads_share_one_deadline(pg_scratch: tuple[sa.Engine, sa.Engine]) -> None:
    setup, _ = pg_scratch
    engine = sa.create_engine(setup.url)  # a pool: the lock holder is another connection
    names = [f"lk{i}" for i in range(1, 7)]
    with setup.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f"CREATE TABLE {name} (id int)")
            conn.exec_driver_sql(f"INSERT INTO {name} VALUES (1)")
    tables = introspect(engine, "p").tables
    holder = setup.connect()
    try:
        holder.exec_driver_sql("BEGIN")
        for name in names[1:]:  # the first table stays readable
            holder.exec_driver_sql(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        # each read may wait its 1 s lock timeout; the call as a whole has 2.5 s
        policy = SamplePolicy(timeout_ms=1_000, budget_ms=2_500)
        read = samples.read_samples(engine, [tables[f"public.{n}"] for n in names], 3, policy)
        elapsed = time.monotonic() - started
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
        engine.dispose()
    assert read.rows == {"public.lk1": (("1",),)}
    assert elapsed < 3.5, f"{elapsed:.1f} s for five locked tables (5 s without a deadline)"
    # every locked table is said: those read before the deadline timed out on their own, the rest had no time
    assert set(read.unsampled) == {f"public.{n}" for n in names[1:]}
    assert read.unsampled["public.lk6"] == samples.DEADLINE_NOTE
    assert set(read.unsampled.values()) == {samples.TIMEOUT_NOTE, samples.DEADLINE_NOTE}


def test_a_snapshot_says_which_tables_the_deadline_left_unsampled(
    pg_scratch: tuple[sa.Engine, sa.Engine],
) -> None:
    setup, _ = pg_scratch
    engine = sa.create_engine(setup.url)
    with setup.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE free (id int)")
        conn.exec_driver_sql("CREATE TABLE locked (id int)")
    holder = setup.connect()
    try:
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        policy = SamplePolicy(timeout_ms=1_000, budget_ms=800)
        snapshot = introspect(engine, "p", data_examples=3, sample_policy=policy)
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
        engine.dispose()
    assert snapshot.tables["public.locked"].sample_note == samples.DEADLINE_NOTE
    assert snapshot.tables["public.free"].sample_note is None


def test_a_table_whose_own_read_times_out_is_labelled_too(pg_scratch: tuple[sa.Engine, sa.Engine]) -> None:
    """Well within the call's deadline, a locked table's read hits its own timeout: it is said, not dropped."""
    setup, _ = pg_scratch
    engine = sa.create_engine(setup.url)
    with setup.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE open_t (id int)")
        conn.exec_driver_sql("INSERT INTO open_t VALUES (1)")
        conn.exec_driver_sql("CREATE TABLE locked_t (id int)")
    holder = setup.connect()
    try:
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE")
        policy = SamplePolicy(timeout_ms=300, budget_ms=10_000)
        snapshot = introspect(engine, "p", data_examples=3, sample_policy=policy)
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
        engine.dispose()
    assert snapshot.tables["public.locked_t"].sample_note == samples.TIMEOUT_NOTE
    assert samples.TIMEOUT_NOTE in samples.RETRY_NOTES  # read again at the next refresh
    assert snapshot.tables["public.open_t"].sample_note is None
    assert snapshot.tables["public.open_t"].sample_rows == (("1",),)


# --- MariaDB -----------------------------------------------------------------------------------------


@pytest.fixture
def mysql_scratch(mysql_url: str) -> Iterator[tuple[sa.Engine, str]]:
    database = f"test_hostile_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT").execution_options(no_parameters=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
    try:
        yield admin, database
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin.dispose()


def test_mariadb_virtual_generated_columns_are_not_computed(mysql_scratch: tuple[sa.Engine, str]) -> None:
    admin, database = mysql_scratch
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE `{database}`.g (id INT, s TEXT, "
            "v LONGTEXT AS (REPEAT(s, 3)) VIRTUAL, p TEXT AS (CONCAT(s, '!')) PERSISTENT)"
        )
        conn.exec_driver_sql(f"INSERT INTO `{database}`.g (id, s) VALUES (1, 'ab')")
    engine = sa.create_engine(MYSQL_URL.rsplit("/", 1)[0] + f"/{database}")
    try:
        snapshot = introspect(engine, "p", include_schemas=(database,), data_examples=3)
    finally:
        engine.dispose()
    # the stored generated column is read; the virtual one would be computed in full for every row read
    assert snapshot.tables[f"{database}.g"].sample_rows == (("1", "ab", "<generated>", "ab!"),)


def test_the_deadline_grows_with_the_tables_to_read(tmp_path: Path) -> None:
    """A warehouse of many tables is read whole (a read takes milliseconds); only waiting tables lose theirs."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'many.db'}")
    with engine.begin() as conn:
        for i in range(40):
            conn.exec_driver_sql(f"CREATE TABLE t{i} (id int)")
            conn.exec_driver_sql(f"INSERT INTO t{i} VALUES ({i})")
    tables = introspect(engine, "p").tables
    policy = SamplePolicy(budget_ms=0, table_ms=250)  # no time but each table's own
    read = samples.read_samples(engine, list(tables.values()), 3, policy)
    engine.dispose()
    assert read.unsampled == {}
    assert len(read.rows) == 40 and read.rows["t7"] == (("7",),)


def test_postgres_values_whose_text_outgrows_their_size_are_not_converted(
    pg_scratch: tuple[sa.Engine, sa.Engine],
) -> None:
    """A numeric keeps 16,383 decimal places in a few bytes, and an array of them compresses to nothing: the
    text of a 2 KB stored value would be hundreds of MB, built whole before any cut."""
    setup, engine = pg_scratch
    with setup.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE ledger (id int, amounts numeric[], doc jsonb, small int[])")
        # 2,000 numbers of 16,384 characters: 33 MB of text from ~100 bytes stored, compressed
        conn.exec_driver_sql(
            "INSERT INTO ledger SELECT 1, array_fill(('0.' || repeat('0', 16383))::numeric, ARRAY[2000]),"
            " to_jsonb(array_fill(('0.' || repeat('0', 16383))::numeric, ARRAY[2000])), ARRAY[1, 2, 3]"
        )
        stored = conn.exec_driver_sql("SELECT pg_column_size(amounts), pg_column_size(doc) FROM ledger").one()
    assert max(stored) < 8_192  # under the flat types' bound: only the nested rule stops it
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    table = introspect(engine, "p").tables["public.ledger"]
    before = _peak_mb(pid)
    (row,) = sample_rows(engine, [table], 3)["public.ledger"]
    assert _peak_mb(pid) - before < 16, f"backend peak RSS {before} → {_peak_mb(pid)} MB"
    assert row[0] == "1" and row[3] == "{1,2,3}", row  # small nested values are still shown
    assert row[1].endswith(" bytes stored>") and row[2].endswith(" bytes stored>"), row


def test_postgres_compressed_values_of_flat_types_are_not_converted(
    pg_scratch: tuple[sa.Engine, sa.Engine],
) -> None:
    """Compression hides size: 5,000,000 zero bits of varbit are 7 KB stored and 5,000,000 characters of text."""
    setup, engine = pg_scratch
    with setup.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE bits (id int, b varbit, doc json, small varbit)")
        conn.exec_driver_sql(
            "INSERT INTO bits SELECT 1, repeat('0', 5000000)::varbit, ('[' || repeat('0,', 300000) || '0]')::json,"
            " B'101'"
        )
        stored = conn.exec_driver_sql("SELECT pg_column_size(b), pg_column_size(doc) FROM bits").one()
    assert max(stored) < 8_192  # under the stored-size bound: only compression says it is large
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    table = introspect(engine, "p").tables["public.bits"]
    before = _peak_mb(pid)
    (row,) = sample_rows(engine, [table], 3)["public.bits"]
    assert _peak_mb(pid) - before < 4, f"backend peak RSS {before} → {_peak_mb(pid)} MB"
    assert row[3] == "101" and row[1].endswith(" bytes stored>") and row[2].endswith(" bytes stored>"), row
