"""A database that cannot be used answers 503 saying why (without the login or host), never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # PyMySQL fails to connect with an AttributeError on an unknown charset
        ("mysql://root:Secr3tPW@127.0.0.1:3306/test?charset=bogus", "the driver could not connect"),
        ("postgresql://nouser_dbm:Secr3tPW@127.0.0.1:5432/postgres", "authentication failed"),
        ("postgresql://postgres:Secr3tPW@127.0.0.1:5432/no_such_db_dbm", "database does not exist"),
        ("mysql://root@127.0.0.1:3306/no_such_db_dbm", "database does not exist"),
        ("postgresql://postgres:Secr3tPW@127.0.0.1:1/postgres", "connection refused"),
    ],
    ids=["driver_error", "unknown_role", "pg_unknown_database", "mysql_unknown_database", "refused"],
)
def test_every_route_answers_503_naming_the_reason(
    url: str, reason: str, tmp_path: Path, mysql_url: str, pg_url: str
) -> None:
    settings = load_settings(
        database_url=url, data_dir=tmp_path, redis_cache_enabled=False, search_backend="keyword"
    )
    with TestClient(create_app(settings)) as client:
        for path, body in (
            ("/v1/prompt-items/schema", {}),
            ("/v1/tables/search", {"query": "orders"}),
            ("/v1/preflight", {"sql": "SELECT 1"}),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 503, (path, response.text)
            text = response.text
            assert "Secr3tPW" not in text and "127.0.0.1" not in text and "nouser_dbm" not in text
            if path != "/v1/preflight":
                assert reason in response.json()["detail"], (path, response.json())
