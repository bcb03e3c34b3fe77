"""Schemathesis against the app's own OpenAPI document, in process: no 5xx, every answer as documented.

Every operation is fuzzed with generated valid and invalid requests (with the admin token, so the admin
operations are reached too). Checks: no server error, documented status codes, content types, headers,
and response bodies conforming to their schemas. Not checked: ``negative_data_rejection``, since
pydantic's lax mode accepts coercible values on purpose (``"with_examples": 0`` is read as false).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
    from schemathesis.checks import negative_data_rejection
except ImportError:
    pytest.skip("schemathesis is not installed (a dev dependency)", allow_module_level=True)

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app

pytestmark = pytest.mark.fuzz

ADMIN_TOKEN = "fuzz-" + "0123456789abcdef" * 2
#: Examples per operation (valid and invalid together): every field is reached; the file takes < 60 s.
MAX_EXAMPLES = 250

_data_dir = Path(tempfile.mkdtemp(prefix="dbmeta-fuzz-"))
atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
# Keyword table search: Milvus Lite and the model stay out of this process (the fault suite runs them).
_settings = {"data_dir": _data_dir, "redis_cache_enabled": False, "search_backend": "keyword"}
app = create_app(load_settings(**_settings, admin_token=ADMIN_TOKEN))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_without_5xx_and_as_documented(
    case: schemathesis.Case[Any],
) -> None:
    """Send one generated request; its answer must match the OpenAPI document."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = case.call(headers=headers)
    case.validate_response(response, excluded_checks=[negative_data_rejection], headers=headers)


def test_a_body_that_is_not_utf8_is_a_documented_422(tmp_path: Path) -> None:
    """The README promises 422 for an invalid body; bytes that are not UTF-8 are one."""
    other = create_app(load_settings(**{**_settings, "data_dir": tmp_path}))
    with TestClient(other) as client:
        response = client.post(
            "/v1/preflight", content=b'{"sql": "\xff"}', headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
