"""A small client of the dbmeta HTTP API: what the CLI uses when a server holds the index.

Error answers (``{"error", "detail"}``) become ``ServerError`` with the server's code; a server that does
not answer becomes ``ServerUnreachableError``. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from dbmeta_app.errors import DbmetaError

#: Seconds a request may take (an index request streams progress and may take much longer).
REQUEST_TIMEOUT = 120.0


class ServerError(DbmetaError):
    """The server answered with an error."""

    def __init__(self, code: str, detail: str, status_code: int) -> None:
        super().__init__(detail)
        self.code = code
        self.status_code = status_code


class ServerUnreachableError(DbmetaError):
    code = "server_unreachable"
    status_code = 503


class DbmetaClient:
    """Call one dbmeta server (blocking)."""

    def __init__(
        self, base_url: str, *, token: str | None = None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=5.0),
            transport=transport,
            trust_env=False,  # a loopback server is never reached through a proxy
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DbmetaClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def search(self, query: str, top_k: int, profile: str | None) -> dict[str, Any]:
        """POST /v1/tables/search."""
        return self._post("/v1/tables/search", {"query": query, "top_k": top_k, "profile": profile})

    def schema(self, profile: str | None, tables: list[str] | None, with_examples: bool) -> dict[str, Any]:
        """POST /v1/prompt-items/schema (the full schema without tables)."""
        body: dict[str, Any] = {"profile": profile, "with_examples": with_examples}
        if tables:
            body["tables"] = tables
        return self._post("/v1/prompt-items/schema", body)

    def preflight(self, sql: str, profile: str | None) -> dict[str, Any]:
        """POST /v1/preflight."""
        return self._post("/v1/preflight", {"sql": sql, "profile": profile})

    def cache_stats(self) -> dict[str, Any]:
        """GET /v1/cache/stats."""
        return self._call("GET", "/v1/cache/stats")

    def ready(self) -> dict[str, Any]:
        """GET /readyz (its body, whatever the status)."""
        try:
            answer = self._http.get("/readyz")
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return _json(answer)

    def index(self, profile: str | None, rebuild: bool) -> Iterator[dict[str, Any]]:
        """POST /v1/admin/index: the events of the build, as they come."""
        try:
            with self._http.stream(
                "POST",
                "/v1/admin/index",
                json={"profile": profile, "rebuild": rebuild},
                timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=5.0, read=None),
            ) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    raise _error(answer)
                for line in answer.iter_lines():
                    if line.strip():
                        yield orjson.loads(line)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def clear_cache(self, profile: str | None) -> dict[str, Any]:
        """Drop every cached value of a profile (all profiles: None) on the server (admin token)."""
        return self._post("/v1/admin/cache/invalidate", {"profile": profile, "kind": "all"})

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            answer = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if answer.status_code >= 400:
            raise _error(answer)
        return _json(answer)

    def _unreachable(self, exc: httpx.HTTPError) -> ServerUnreachableError:
        return ServerUnreachableError(
            f"the dbmeta server at {self.base_url} does not answer ({type(exc).__name__})"
        )


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        raise ServerError(
            "bad_answer", f"the server answered HTTP {answer.status_code} without JSON", 502
        ) from None
    if not isinstance(data, dict):
        raise ServerError("bad_answer", "the server answered something other than a JSON object", 502)
    return data


def _error(answer: httpx.Response) -> ServerError:
    try:
        data = answer.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        detail = data.get("detail")
        text = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
        return ServerError(str(data["error"]), text, answer.status_code)
    return ServerError("http_error", f"HTTP {answer.status_code} from the server", answer.status_code)
