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
        "CREATE TABLE secret.bonuses (bonus_id int PRIMARY KEY, amount numeric)",
        "CREATE TABLE shop.orders (id int PRIMARY KEY, customer_id int, total numeric,"
        " bonus_ref int REFERENCES secret.bonuses (bonus_id))",
        "CREATE TABLE shop.payroll (id int PRIMARY KEY, salary numeric)",
        "CREATE TABLE shop.people (id int PRIMARY KEY, name text, ssn text UNIQUE)",
        # keys into a table the role cannot read, and from / to a column it cannot read
        "CREATE TABLE shop.refs (id int PRIMARY KEY, pay_id int REFERENCES shop.payroll (id),"
        " person_id int REFERENCES shop.people (id), person_code text REFERENCES shop.people (ssn))",
        "CREATE TABLE shop.audit (secret_code int PRIMARY KEY, note text,"
        " order_id int REFERENCES shop.orders (id))",
        "CREATE TABLE secret.salaries (emp_id int PRIMARY KEY, salary numeric)",
        f"GRANT USAGE ON SCHEMA shop TO {ROLE}",
        f"GRANT SELECT ON shop.orders TO {ROLE}",
        f"GRANT SELECT (id, name) ON shop.people TO {ROLE}",
        f"GRANT SELECT ON shop.refs TO {ROLE}",
        f"GRANT SELECT (note, order_id) ON shop.audit TO {ROLE}",
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
    assert set(snapshot.tables) == {"shop.orders", "shop.people", "shop.refs", "shop.audit"}
    assert [c.name for c in snapshot.tables["shop.people"].columns] == ["id", "name"]
    assert [c.name for c in snapshot.tables["shop.orders"].columns] == [
        "id",
        "customer_id",
        "total",
        "bonus_ref",
    ]


def test_keys_that_name_what_the_role_cannot_read_are_left_out(reader: sa.Engine) -> None:
    """A foreign key into a schema, table or column the role cannot read would name it: it is not shown."""
    snapshot = introspect(reader, "p")
    assert snapshot.tables["shop.orders"].foreign_keys == ()  # its target's schema: no USAGE
    refs = snapshot.tables["shop.refs"]
    # shop.payroll is not readable, shop.people.ssn is not; shop.people.id is
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in refs.foreign_keys] == [
        (("person_id",), "shop.people", ("id",))
    ]
    audit = snapshot.tables["shop.audit"]
    assert audit.primary_key == ()  # its key column is not readable
    assert [fk.ref_table for fk in audit.foreign_keys] == ["shop.orders"]
    text = str(snapshot.to_json())
    for hidden in ("secret.", "bonuses", "bonus_id", "payroll", "ssn", "secret_code"):
        assert hidden not in text
