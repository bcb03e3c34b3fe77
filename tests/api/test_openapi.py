"""/openapi.json is a valid, typed, example-carrying description of what the service really answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from dbmeta_app.main import create_app

ADMIN = "c4e6a8b0d2f4a6c8e0b2d4f6a8c0e2b4"
OPERATION_IDS = {
    ("get", "/healthz"): "getHealth",
    ("get", "/readyz"): "getReadiness",
    ("get", "/metrics"): "getMetrics",
    ("post", "/v1/prompt-items/schema"): "getSchemaPromptItem",
    ("post", "/v1/prompt-items"): "getPromptItems",
    ("post", "/v1/tables/search"): "searchTables",
    ("post", "/v1/preflight"): "preflightSql",
    ("get", "/v1/cache/stats"): "getCacheStats",
    ("post", "/v1/admin/cache/invalidate"): "invalidateCache",
    ("post", "/v1/admin/cache/warm"): "warmCache",
    ("post", "/v1/admin/schema/check"): "checkSchema",
    ("post", "/v1/admin/index"): "buildIndex",
}


@pytest.fixture
def client(make_settings: Any) -> Iterator[TestClient]:
    app = create_app(make_settings(schema_check_interval=0, admin_token=ADMIN))
    with TestClient(app, base_url="http://localhost") as c:
        yield c


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    # the component schemas resolve through the document itself
    return OAS31Validator({**schema, "components": doc["components"]})


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_operation_ids_and_schema_names_are_stable(doc: dict[str, Any]) -> None:
    found = {(m, p): op["operationId"] for m, p, op in _operations(doc)}
    assert found == OPERATION_IDS
    names = set(doc["components"]["schemas"])
    assert {"TableSearchRequest", "SchemaRequest", "PreflightRequest", "PromptItemsRequest"} <= names
    assert {"CacheStats", "WarmResponse", "InvalidateResponse", "SchemaCheckResponse", "IndexEvent"} <= names
    # no generated names (route + method) and no FastAPI validation model
    assert not [n for n in names if "Post" in n or "Get" in n or n.startswith("Response")]
    assert not {"HTTPValidationError", "ValidationError"} & names


def test_no_documented_schema_is_empty_and_every_answer_is_typed(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                schema = media.get("schema")
                assert schema, (method, path, status, media_type)
                assert schema.get("$ref") or schema.get("type") == "string", (method, path, status, schema)
    for name, schema in doc["components"]["schemas"].items():
        assert schema.get("properties") or schema.get("enum"), name
        for field, prop in schema.get("properties", {}).items():
            assert prop, f"{name}.{field} has no type"


def test_every_route_documents_the_one_error_model_for_the_statuses_it_answers(doc: dict[str, Any]) -> None:
    for _method, path, operation in _operations(doc):
        responses = operation["responses"]
        assert "500" in responses, path
        errors = {s: r for s, r in responses.items() if s[0] in "45"}
        for status, response in errors.items():
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            } or (path == "/readyz" and status == "503"), (path, status)
        if "requestBody" in operation:
            assert {"413", "415", "422"} <= set(responses), path
        else:
            assert not {"413", "415"} & set(responses), path
        if path.startswith("/v1/"):
            assert "401" in responses, path
        if path.startswith("/v1/") and not path.startswith("/v1/admin") and path != "/v1/cache/stats":
            assert {"404", "422", "503"} <= set(responses), path


def test_enums_are_enums(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["PreflightErrorKind"]["enum"] == ["unsafe", "sql", "limit", "timeout", "busy"]
    assert schemas["PromptItem"]["properties"]["type"]["enum"] == [
        "db_struct",
        "query_examples",
        "instructions",
        "sql_dialect",
    ]
    cache = schemas["PromptItemMetadata"]["properties"]["cache"]["anyOf"][0]
    assert cache["enum"] == ["hit", "miss", "stale", "bypass"]


def test_bearer_security_is_declared_optional_on_v1_and_required_on_admin(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    security = {p: op.get("security") for _, p, op in _operations(doc)}
    assert security["/v1/tables/search"] == [{}, {"bearerAuth": []}]
    assert security["/v1/admin/cache/warm"] == [{"bearerAuth": []}]
    assert security["/healthz"] is None and security["/metrics"] is None


def test_metrics_are_documented_as_the_prometheus_text_format(doc: dict[str, Any]) -> None:
    content = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/plain; version=0.0.4" in content and "application/json" not in content


def test_every_request_and_response_has_an_example_that_fits_its_schema(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        bodies = [("request", operation.get("requestBody", {})), *list(operation["responses"].items())]
        for where, body in bodies:
            for media_type, media in body.get("content", {}).items():
                assert "example" in media, (method, path, where, media_type)
                errors = list(_validator(doc, media["schema"]).iter_errors(media["example"]))
                assert not errors, (method, path, where, [e.message for e in errors])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/v1/tables/search", {"query": "orders"}, "200"),
        ("post", "/v1/tables/search", {"query": ""}, "422"),
        ("post", "/v1/tables/search", {"query": "x", "profile": "nope"}, "404"),
        ("post", "/v1/prompt-items/schema", {"user_request": "orders per customer"}, "200"),
        ("post", "/v1/prompt-items", {"user_request": "orders per customer"}, "200"),
        ("post", "/v1/preflight", {"sql": "SELECT count(*) FROM orders"}, "200"),
        ("post", "/v1/preflight", {"sql": "DELETE FROM orders"}, "200"),
        ("get", "/v1/cache/stats", None, "200"),
        ("get", "/healthz", None, "200"),
        ("post", "/v1/admin/cache/warm", {}, "200"),
        ("post", "/v1/admin/cache/invalidate", {}, "200"),
        ("post", "/v1/admin/schema/check", {}, "200"),
        ("post", "/v1/admin/cache/warm", {"profile": 3}, "422"),
    ],
)
def test_real_answers_fit_their_documented_schema(
    client: TestClient, doc: dict[str, Any], method: str, path: str, body: Any, status: str
) -> None:
    headers = {"authorization": f"Bearer {ADMIN}"}
    answer = client.request(method.upper(), path, json=body, headers=headers)
    assert str(answer.status_code) == status, answer.text
    schema = doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    errors = list(_validator(doc, schema).iter_errors(answer.json()))
    assert not errors, [e.message for e in errors]
