"""/docs and /redoc work offline: every asset they load is served by the service itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.main import create_app

# src="…", href="…" and Swagger UI's url: '…' / ReDoc's spec-url="…"
_REFERENCES = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl\s*:\s*["']([^"']+)["']""")


@pytest.fixture
def client(make_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(schema_check_interval=0))) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_reference_only_local_urls_and_each_one_answers(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "http://" not in html and "https://" not in html, "the page points outside the service"
    references = {a or b for a, b in _REFERENCES.findall(html)}
    assert references, html[:500]
    for url in references:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert len(asset.content) > 100, url
    scripts = [u for u in references if u.endswith(".js")]
    assert scripts and all(
        client.get(u).headers["content-type"].startswith("text/javascript") for u in scripts
    )


def test_the_docs_assets_are_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
