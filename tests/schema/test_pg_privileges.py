"""PostgreSQL: a role is shown only what it can read (the catalog lists every schema and table to anyone)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.schema import introspect
from tests._scratch import pg_database

pytestmark = pytest.mark.integration

ROLE = f"dbm_reader_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def reader(pg_url: str) -> Iterator[sa.Engine]:
    statements = [
        f"CREATE ROLE {ROLE} LOGIN",
        "CREATE SCHEMA shop",
        "CREATE SCHEMA secret",
        "CREATE TABLE shop.orders (id int PRIMARY KEY, customer_id int, total numeric)",
        "CREATE TABLE shop.payroll (id int PRIMARY KEY, salary numeric)",
        "CREATE TABLE shop.people (id int PRIMARY KEY, name text, ssn text)",
        "CREATE TABLE secret.salaries (emp_id int PRIMARY KEY, salary numeric)",
        f"GRANT USAGE ON SCHEMA shop TO {ROLE}",
        f"GRANT SELECT ON shop.orders TO {ROLE}",
        f"GRANT SELECT (id, name) ON shop.people TO {ROLE}",
        f"GRANT SELECT ON secret.salaries TO {ROLE}",  # but no USAGE on its schema
    ]
    try:
        for owner in pg_database(pg_url, statements, tag="privs"):
            yield sa.create_engine(owner.url.set(username=ROLE))
    finally:
        admin = sa.create_engine(sa.make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {ROLE}")
        admin.dispose()


def test_tables_and_columns_the_role_cannot_read_are_left_out(reader: sa.Engine) -> None:
    snapshot = introspect(reader, "p")
    assert set(snapshot.tables) == {"shop.orders", "shop.people"}
    assert [c.name for c in snapshot.tables["shop.people"].columns] == ["id", "name"]
    assert [c.name for c in snapshot.tables["shop.orders"].columns] == ["id", "customer_id", "total"]
