"""The read-only session: whatever one use leaves in a pooled connection is gone for the next, on every
dialect; and the database's errors reach nobody with the service's login or host in them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbmeta_app.config import Profile
from dbmeta_app.db.engines import create_profile_engine
from dbmeta_app.db.session import read_only_session
from dbmeta_app.preflight.explain import run_explain
from tests.conftest import MYSQL_URL, PG_URL

# --- MariaDB -----------------------------------------------------------------------------------------


@pytest.fixture
def maria(mysql_url: str) -> Iterator[tuple[sa.Engine, sa.Engine, str]]:
    """A private database with a table and a stored function, an admin engine and a one-connection pool."""
    database = f"dbmeta_sess_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT").execution_options(no_parameters=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}`")
        conn.exec_driver_sql(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, a INT)")
        conn.exec_driver_sql(f"INSERT INTO `{database}`.t VALUES (1, 1), (2, 2)")
        # Evaluated while optimising (constant arguments, DETERMINISTIC): it runs during EXPLAIN.
        conn.exec_driver_sql(
            f"CREATE FUNCTION `{database}`.leak() RETURNS INT DETERMINISTIC NO SQL "
            "BEGIN SET @dbmeta_leak = 42; SET SESSION sql_mode = 'ANSI_QUOTES'; RETURN 1; END"
        )
    engine = sa.create_engine(MYSQL_URL.rsplit("/", 1)[0] + f"/{database}", pool_size=1, max_overflow=0)
    try:
        yield admin, engine, database
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin.dispose()


@pytest.mark.integration
def test_a_user_variable_set_while_optimising_is_not_visible_to_the_next_preflight(
    maria: tuple[sa.Engine, sa.Engine, str],
) -> None:
    _, engine, _ = maria
    with engine.connect() as conn:
        default_mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar_one()
    result = run_explain(engine, "SELECT * FROM t WHERE id = leak()")
    assert result.ok, result.error
    with engine.connect() as conn:  # the same pooled connection
        assert conn.exec_driver_sql("SELECT @dbmeta_leak").scalar_one() is None
        assert conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar_one() == default_mode


@pytest.mark.integration
def test_session_state_of_every_kind_is_reset_between_uses_mariadb(
    maria: tuple[sa.Engine, sa.Engine, str],
) -> None:
    _, engine, database = maria
    lock = f"dbmeta_lock_{database}"
    with engine.connect() as conn:
        connection_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        wait_timeout = conn.exec_driver_sql("SELECT @@SESSION.wait_timeout").scalar_one()
    # What anything reached during a preflight could do to its session (simulated directly; temporary
    # tables cannot be created in a READ ONLY transaction).
    with read_only_session(engine, 2000) as session:
        session.conn.exec_driver_sql("SET @dbmeta_x = 1")
        session.conn.exec_driver_sql("SET SESSION wait_timeout = 77")
        session.conn.exec_driver_sql("PREPARE dbmeta_stmt FROM 'SELECT 1'")
        session.conn.exec_driver_sql(f"DO GET_LOCK('{lock}', 0)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one() == connection_id  # same session
        assert conn.exec_driver_sql("SELECT @dbmeta_x").scalar_one() is None
        assert conn.exec_driver_sql("SELECT @@SESSION.wait_timeout").scalar_one() == wait_timeout
        assert conn.exec_driver_sql(f"SELECT IS_USED_LOCK('{lock}')").scalar_one() is None
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql("EXECUTE dbmeta_stmt")


@pytest.mark.integration
def test_a_permission_error_does_not_name_the_login_or_its_host(
    maria: tuple[sa.Engine, sa.Engine, str],
) -> None:
    admin, _, database = maria
    user, password = f"dbm_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE `{database}`.secret (id INT)")
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.t TO '{user}'@'%'")
    engine = sa.create_engine(f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/{database}")
    try:
        allowed = run_explain(engine, "SELECT * FROM t")
        denied = run_explain(engine, "SELECT * FROM secret")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%'")
    assert allowed.ok, allowed.error
    assert not denied.ok and denied.error_kind == "sql" and denied.error
    assert "denied" in denied.error.lower()
    for secret in (user, "127.0.0.1", "localhost", password):
        assert secret not in denied.error, denied.error


# --- PostgreSQL --------------------------------------------------------------------------------------


@pytest.fixture
def pg_pool(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.mark.integration
def test_session_state_of_every_kind_is_reset_between_uses_postgres(pg_pool: sa.Engine) -> None:
    key = uuid.uuid4().int % 2**31
    with pg_pool.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        work_mem = conn.exec_driver_sql("SHOW work_mem").scalar_one()
    with read_only_session(pg_pool, 2000) as session:
        session.conn.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
        session.conn.exec_driver_sql("PREPARE dbmeta_stmt AS SELECT 1")
        session.conn.exec_driver_sql("DECLARE dbmeta_cursor CURSOR WITH HOLD FOR SELECT 1")
    # a session-level setting made outside any transaction of ours is reset too
    with pg_pool.connect() as conn:
        conn.exec_driver_sql("SET SESSION work_mem = '77MB'")
        conn.commit()
    with read_only_session(pg_pool, 2000):
        pass
    with pg_pool.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == pid  # same session
        held = conn.exec_driver_sql(
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid}"
        ).scalar_one()
        assert held == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar_one() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar_one() == 0
        assert conn.exec_driver_sql("SHOW work_mem").scalar_one() == work_mem
    # and the pool keeps working, prepared statements of the driver included
    assert all(run_explain(pg_pool, "SELECT 1").ok for _ in range(8))


def test_the_preflight_pool_is_bounded_and_resets_are_not_needed_for_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    sa.create_engine(f"sqlite:///{path}").connect().close()
    sqlite = create_profile_engine(Profile(name="s", database_url=f"sqlite:///{path}"), preflight=True)
    postgres = create_profile_engine(Profile(name="p", database_url=PG_URL), preflight=True, pool_size=3)
    try:
        assert isinstance(sqlite.pool, sa.pool.NullPool)  # a fresh connection each time: nothing left over
        with read_only_session(sqlite, 1000) as session:
            session.conn.exec_driver_sql("PRAGMA cache_size = 7")
        with read_only_session(sqlite, 1000) as session:
            assert session.conn.exec_driver_sql("PRAGMA cache_size").scalar_one() != 7
        assert isinstance(postgres.pool, sa.pool.QueuePool)
        assert postgres.pool.size() == 3 and postgres.pool._max_overflow == 0
    finally:
        sqlite.dispose()
        postgres.dispose()
