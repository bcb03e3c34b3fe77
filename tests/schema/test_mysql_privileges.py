"""MySQL/MariaDB: keys never name a table or column the user cannot see.

information_schema lists only the tables and columns the user has a privilege on, but KEY_COLUMN_USAGE lists
every key of a table the user may see, with the schema, table and column it references.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.schema import introspect

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:8]
SHOP, VAULT, USER = f"dbm_shop_{TAG}", f"dbm_vault_{TAG}", f"dbm_u_{TAG}"


@pytest.fixture(scope="module")
def reader(mysql_url: str) -> Iterator[sa.Engine]:
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    statements = [
        f"CREATE DATABASE {SHOP}",
        f"CREATE DATABASE {VAULT}",
        f"CREATE TABLE {VAULT}.bonuses (bonus_id int PRIMARY KEY) ENGINE=InnoDB",
        f"CREATE TABLE {SHOP}.people (id int PRIMARY KEY, ssn int UNIQUE, name text) ENGINE=InnoDB",
        f"CREATE TABLE {SHOP}.orders (id int PRIMARY KEY, bonus_ref int, person_id int, person_ssn int,"
        f" FOREIGN KEY (bonus_ref) REFERENCES {VAULT}.bonuses (bonus_id),"
        f" FOREIGN KEY (person_id) REFERENCES {SHOP}.people (id),"
        f" FOREIGN KEY (person_ssn) REFERENCES {SHOP}.people (ssn)) ENGINE=InnoDB",
        f"CREATE USER '{USER}'@'%'",
        f"GRANT SELECT ON {SHOP}.orders TO '{USER}'@'%'",
        f"GRANT SELECT (id, name) ON {SHOP}.people TO '{USER}'@'%'",
    ]
    try:
        with admin.connect().execution_options(no_parameters=True) as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
        engine = sa.create_engine(sa.make_url(mysql_url).set(username=USER, database=SHOP))
        yield engine
        engine.dispose()
    finally:
        with admin.connect().execution_options(no_parameters=True) as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{USER}'@'%'")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {SHOP}")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {VAULT}")
        admin.dispose()


def test_keys_that_name_what_the_user_cannot_see_are_left_out(reader: sa.Engine) -> None:
    snapshot = introspect(reader, "p")
    orders = snapshot.tables[f"{SHOP}.orders"]
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in orders.foreign_keys] == [
        (("person_id",), f"{SHOP}.people", ("id",))
    ]
    assert [c.name for c in snapshot.tables[f"{SHOP}.people"].columns] == ["id", "name"]
    text = str(snapshot.to_json())
    assert VAULT not in text and "bonus_id" not in text and "'ssn'" not in text
