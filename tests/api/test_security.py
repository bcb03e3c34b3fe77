"""API_TOKEN on /v1 and /mcp, and the MCP endpoint's Host/Origin (DNS-rebinding) checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.config import load_settings
from dbmeta_app.errors import ConfigError
from dbmeta_app.main import create_app

TOKEN = "3b9d1f0e7c5a4b2d8e6f1a3c5e7b9d0f"
ADMIN = "a1c3e5b7d9f0e2c4a6b8d0f1e3c5a7b9"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
MCP = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
LOCAL = "http://localhost"


def _client(make_settings: Any, **overrides: Any) -> TestClient:
    return TestClient(create_app(make_settings(schema_check_interval=0, **overrides)), base_url=LOCAL)


def test_without_api_token_the_api_and_mcp_are_open(make_settings: Any) -> None:
    with _client(make_settings) as client:
        assert client.post("/v1/tables/search", json={"query": "orders"}).status_code == 200
        assert client.post("/mcp", json=INITIALIZE, headers=MCP).status_code == 200


def test_api_token_is_required_on_v1_and_mcp_and_answers_401_with_the_bearer_challenge(
    make_settings: Any,
) -> None:
    with _client(make_settings, api_token=TOKEN) as client:
        for path, body, headers in (
            ("/v1/tables/search", {"query": "orders"}, {}),
            ("/v1/prompt-items/schema", {}, {}),
            ("/v1/preflight", {"sql": "SELECT 1"}, {}),
            ("/mcp", INITIALIZE, MCP),
        ):
            r = client.post(path, json=body, headers={**headers, "x-request-id": "gate-1"})
            assert r.status_code == 401, (path, r.text)
            assert r.json() == {"error": "unauthorized", "detail": r.json()["detail"]}
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.headers["x-request-id"] == "gate-1"
            wrong = client.post(path, json=body, headers={**headers, "authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong bearer token"
            ok = client.post(path, json=body, headers={**headers, "authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200, (path, ok.text)
        assert client.get("/v1/cache/stats").status_code == 401


def test_health_metrics_and_docs_stay_open_with_api_token(make_settings: Any) -> None:
    with _client(make_settings, api_token=TOKEN) as client:
        for path in ("/healthz", "/readyz?allow_degraded=true", "/metrics", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 200, path


def test_with_api_token_readyz_tells_an_anonymous_probe_only_whether_it_is_ready(make_settings: Any) -> None:
    """The roles' rights, the schema names and the data paths are for the token's holders."""
    with _client(make_settings, api_token=TOKEN) as client:
        anonymous = client.get("/readyz?allow_degraded=true")
        full = client.get("/readyz?allow_degraded=true", headers={"authorization": f"Bearer {TOKEN}"})
    assert anonymous.status_code == full.status_code == 200
    assert anonymous.json()["ready"] is full.json()["ready"] is True
    assert set(anonymous.json()["checks"]) == {"database", "cache", "search"}
    assert anonymous.json()["checks"]["database"] == {"ok": True}
    assert {"privileges", "schemas"} <= set(full.json()["checks"])
    assert "privileges" not in anonymous.text and str(make_settings().data_dir) not in anonymous.text


def test_admin_token_opens_the_api_but_api_token_never_opens_admin_routes(make_settings: Any) -> None:
    with _client(make_settings, api_token=TOKEN, admin_token=ADMIN) as client:
        admin = {"authorization": f"Bearer {ADMIN}"}
        assert client.post("/v1/tables/search", json={"query": "x"}, headers=admin).status_code == 200
        assert client.post("/v1/admin/cache/warm", json={}, headers=admin).status_code == 200
        api = {"authorization": f"Bearer {TOKEN}"}
        r = client.post("/v1/admin/cache/warm", json={}, headers=api)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"host": "evil.example"}, "Host"),
        ({"host": "evil.example:8000"}, "Host"),
        ({"origin": "http://evil.example"}, "Origin"),
        ({"origin": "http://localhost.evil.example"}, "Origin"),
    ],
)
def test_a_foreign_host_or_origin_is_refused_with_403_by_default(
    make_settings: Any, headers: dict[str, str], detail: str
) -> None:
    with _client(make_settings) as client:
        r = client.post("/mcp", json=INITIALIZE, headers={**MCP, **headers, "x-request-id": "dns-1"})
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "forbidden" and detail in r.json()["detail"]
        assert r.headers["x-request-id"] == "dns-1"


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "localhost:8000"},
        {"host": "127.0.0.1:41234", "origin": "http://127.0.0.1:41234"},
        {"host": "[::1]:8000", "origin": "https://localhost:3000"},
    ],
)
def test_loopback_hosts_and_origins_are_served_by_default(
    make_settings: Any, headers: dict[str, str]
) -> None:
    with _client(make_settings) as client:
        r = client.post("/mcp", json=INITIALIZE, headers={**MCP, **headers})
        assert r.status_code == 200, r.text


def test_allowed_hosts_and_origins_come_from_the_settings(make_settings: Any) -> None:
    with _client(
        make_settings, mcp_allowed_hosts="dbmeta:8000,dbmeta", mcp_allowed_origins="https://agent.example"
    ) as client:
        ok = {**MCP, "host": "dbmeta:8000", "origin": "https://agent.example"}
        assert client.post("/mcp", json=INITIALIZE, headers=ok).status_code == 200
        assert client.post("/mcp", json=INITIALIZE, headers={**MCP, "host": "localhost"}).status_code == 403
        other = {**ok, "origin": "http://dbmeta:8000"}  # explicit origins replace the derived ones
        assert client.post("/mcp", json=INITIALIZE, headers=other).status_code == 403


def test_a_star_turns_the_host_and_origin_checks_off(make_settings: Any) -> None:
    with _client(make_settings, mcp_allowed_hosts="*") as client:
        headers = {**MCP, "host": "anything.example", "origin": "http://else.example"}
        assert client.post("/mcp", json=INITIALIZE, headers=headers).status_code == 200


def test_the_host_check_concerns_mcp_only(make_settings: Any) -> None:
    with _client(make_settings) as client:
        r = client.post("/v1/tables/search", json={"query": "orders"}, headers={"host": "dbmeta:8000"})
        assert r.status_code == 200


def test_placeholder_api_tokens_are_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="API_TOKEN"):
        load_settings(data_dir=tmp_path, api_token="REPLACE_ME_with_a_token")


def test_settings_are_read_from_files_in_secrets_dir_and_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "API_TOKEN").write_text(TOKEN + "\n")
    (secrets / "ADMIN_TOKEN").write_text(ADMIN)
    monkeypatch.setenv("SECRETS_DIR", str(secrets))
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.setenv("ADMIN_TOKEN", "e" * 32)
    settings = load_settings(data_dir=tmp_path / "data")
    assert settings.api_token is not None and settings.api_token.get_secret_value() == TOKEN
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == "e" * 32


def test_a_missing_secrets_dir_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="SECRETS_DIR"):
        load_settings(data_dir=tmp_path)


def test_a_profiles_file_reference_is_read_from_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "WAREHOUSE_URL").write_text(f"sqlite:///{tmp_path / 'w.db'}\n")
    profiles = tmp_path / "profiles.yml"
    profiles.write_text("profiles:\n  warehouse:\n    database_url: ${WAREHOUSE_URL}\n")
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(secrets))
    settings = load_settings(data_dir=tmp_path, profiles_file=profiles, default_profile="warehouse")
    url = settings.profile("warehouse").database_url.get_secret_value()
    assert url == f"sqlite:///{tmp_path / 'w.db'}"
