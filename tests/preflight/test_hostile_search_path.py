"""A database that sets its own search_path cannot turn the service's own statements against it.

The database (``ALTER DATABASE … SET search_path = hj, pg_catalog, public``) puts a schema of look-alikes
before pg_catalog: ``hj.set_config``, ``hj.current_setting``, ``hj."left"``, ``hj.format`` with the built-ins'
exact signatures, and ``hj.unnest(text[])``, which matches a ``text[]`` argument better than the built-in
``unnest(anyarray)`` even where pg_catalog comes first. Each records its call through dblink (the row commits
on its own) and then does what the built-in does, so nothing fails visibly. A user-defined cast of an enum to
text does the same. The service runs its session set-up, catalog reads and sample reads with pg_catalog alone;
the caller's statement still resolves its names on the database's path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests._scratch import pg_database, service

pytestmark = pytest.mark.integration


@dataclass
class Hostile:
    db: str
    sup: sa.Engine

    def calls(self) -> list[str]:
        with self.sup.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT what FROM ops.effects ORDER BY n")]


def _setup(db: str) -> list[str]:
    conninfo = f"dbname={db} user=postgres host=127.0.0.1 port=5432"
    record = "PERFORM ext.dblink_exec('" + conninfo + "', 'INSERT INTO ops.effects (what) VALUES (' || "
    body = "LANGUAGE plpgsql SET search_path = pg_catalog AS $$ BEGIN "
    return [
        "CREATE SCHEMA ext",
        "CREATE EXTENSION dblink SCHEMA ext",
        "CREATE SCHEMA ops",
        "CREATE TABLE ops.effects (n serial PRIMARY KEY, what text)",
        "CREATE SCHEMA hj",
        f"""CREATE FUNCTION hj.unnest(a text[]) RETURNS SETOF text {body}
            {record} quote_literal('unnest') || ')'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$""",
        f"""CREATE FUNCTION hj.set_config(n text, v text, l boolean) RETURNS text {body}
            {record} quote_literal('set_config ' || n) || ')'); RETURN pg_catalog.set_config(n, v, l); END $$""",
        f"""CREATE FUNCTION hj.current_setting(n text) RETURNS text {body}
            {record} quote_literal('current_setting ' || n) || ')'); RETURN pg_catalog.current_setting(n); END $$""",
        f"""CREATE FUNCTION hj."left"(t text, n integer) RETURNS text {body}
            {record} quote_literal('left') || ')'); RETURN pg_catalog."left"(t, n); END $$""",
        # what introspection, fingerprints and SQLAlchemy's first queries call
        f"""CREATE FUNCTION hj.unnest(a smallint[]) RETURNS SETOF smallint {body}
            {record} quote_literal('unnest smallint[]') || ')'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$""",
        f"""CREATE FUNCTION hj.cardinality(a text[]) RETURNS integer {body}
            {record} quote_literal('cardinality') || ')'); RETURN pg_catalog.cardinality(a); END $$""",
        f"""CREATE FUNCTION hj.current_schema() RETURNS name {body}
            {record} quote_literal('current_schema') || ')'); RETURN pg_catalog.current_schema(); END $$""",
        f"""CREATE FUNCTION hj.md5(t text) RETURNS text {body}
            {record} quote_literal('md5') || ')'); RETURN pg_catalog.md5(t); END $$""",
        "CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')",
        f"""CREATE FUNCTION ops.mood_text(m public.mood) RETURNS text {body}
            {record} quote_literal('mood cast') || ')'); RETURN pg_catalog.textin(pg_catalog.enum_out(m)); END $$""",
        "CREATE CAST (public.mood AS text) WITH FUNCTION ops.mood_text(public.mood)",
        "CREATE TABLE public.t (id int PRIMARY KEY, name text, m public.mood)",
        "INSERT INTO public.t VALUES (1, 'alpha', 'ok'), (2, 'beta', 'happy'), (3, 'gamma', 'sad')",
        "CREATE TABLE public.u (id int PRIMARY KEY, t_id int REFERENCES public.t (id))",
        "GRANT USAGE ON SCHEMA hj, ops, ext TO PUBLIC",
        f"ALTER DATABASE {db} SET search_path = hj, pg_catalog, public",
        "ANALYZE",
    ]


@pytest.fixture(scope="module")
def hostile(pg_url: str) -> Iterator[Hostile]:
    for sup in pg_database(pg_url, _setup("{db}"), "hj"):
        yield Hostile(db=str(sup.url.database), sup=sup)


@pytest.fixture(scope="module")
def client(hostile: Hostile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service(hostile.sup, tmp_path_factory.mktemp("hostile_path"), data_examples=3) as c:
        yield c


def _post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_look_alikes_are_what_the_database_resolves(hostile: Hostile) -> None:
    """The canary: on the database's own path, the look-alikes run (so the tests below can see them)."""
    with hostile.sup.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM unnest(ARRAY['a', 'b']::text[])").scalar_one()
        conn.rollback()
    assert "unnest" in hostile.calls()
    with hostile.sup.begin() as conn:
        conn.exec_driver_sql("TRUNCATE ops.effects")


def test_introspection_runs_none_of_the_databases_look_alikes(hostile: Hostile, client: TestClient) -> None:
    schema = _post(client, "/v1/prompt-items/schema", {})
    assert "# public.u" in schema["text"] and "t_id integer → public.t.id" in schema["text"], schema["text"]
    assert hostile.calls() == []  # nor did the start-up (the privilege report, SQLAlchemy's first queries)


def test_a_preflight_runs_none_of_the_databases_look_alikes(hostile: Hostile, client: TestClient) -> None:
    before = hostile.calls()
    answer = _post(client, "/v1/preflight", {"sql": "SELECT id, name FROM t WHERE id IN (1, 2)"})
    assert answer["ok"], answer  # the caller's unqualified `t` still resolves on the database's path
    refused = _post(client, "/v1/preflight", {"sql": "SELECT unnest(ARRAY['a']::text[])"})
    assert not refused["ok"] and "hj.unnest" in refused["error"]  # the caller's own call is judged as ever
    assert hostile.calls() == before


def test_sample_rows_run_no_look_alike_and_no_user_cast(hostile: Hostile, client: TestClient) -> None:
    before = hostile.calls()
    answer = _post(client, "/v1/prompt-items/schema", {"tables": ["public.t"], "with_examples": True})
    assert "alpha" in answer["text"] and "happy" in answer["text"], answer["text"]
    assert hostile.calls() == before
