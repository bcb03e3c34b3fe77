"""A view definition too large to parse is never fetched nor parsed: a query reading it is refused, others
are not slowed. The cap is lowered here (the service's is view_memo.VIEW_DEFINITION_MAX characters)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight import catalog_postgres, view_memo
from tests._scratch import pg_database, pg_gate

pytestmark = pytest.mark.integration

IN_LIST = ",".join(str(i) for i in range(3000))
SETUP: list[str] = [
    "CREATE TABLE orders (id int PRIMARY KEY, amount numeric)",
    f"CREATE VIEW big_v AS SELECT id FROM orders WHERE id IN ({IN_LIST})",
    "CREATE VIEW small_v AS SELECT id, amount FROM orders WHERE id > 3",
    "CREATE VIEW over_big AS SELECT id FROM big_v",
    "CREATE VIEW deep_v AS SELECT " + "(1 + " * 150 + "1" + ")" * 150 + " AS one",
]


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[sa.Engine]:
    yield from pg_database(pg_url, SETUP, "vsize")


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(view_memo, "VIEW_DEFINITION_MAX", 5_000, raising=False)


_check = pg_gate


def test_a_view_over_the_size_cap_is_refused_and_named(engine: sa.Engine, small_cap: None) -> None:
    reason = _check(engine, "SELECT id FROM big_v")
    assert reason is not None and "view public.big_v" in reason and "5,000" in reason, reason
    reason = _check(engine, "SELECT id FROM over_big")
    assert reason is not None and "view public.big_v" in reason, reason


def test_a_query_reading_no_big_view_is_unaffected(engine: sa.Engine, small_cap: None) -> None:
    assert _check(engine, "SELECT id FROM orders WHERE id = 7") is None
    assert _check(engine, "SELECT id FROM small_v") is None


def test_a_view_nested_too_deep_is_refused(engine: sa.Engine) -> None:
    reason = _check(engine, "SELECT one FROM deep_v")
    assert reason is not None and "view public.deep_v" in reason and "nested" in reason, reason


def test_a_big_definition_is_never_fetched_nor_parsed(engine: sa.Engine, small_cap: None) -> None:
    memo = view_memo.ViewMemo()
    with engine.connect() as conn:
        fingerprint = catalog_postgres.read_fingerprint(conn)
        catalog = catalog_postgres.load_catalog(conn, fingerprint, memo)
        big = conn.exec_driver_sql("SELECT 'big_v'::regclass::oid").scalar_one()
        small = conn.exec_driver_sql("SELECT 'small_v'::regclass::oid").scalar_one()
        conn.rollback()
    assert catalog.relations[big].problem, catalog.relations[big]
    assert not catalog.relations.get(small) or not catalog.relations[small].problem
    assert all(key[0] != big for key in memo.parsed) and all(key[0] != big for key in memo.errors)
    assert any(key[0] == small for key in memo.parsed)
