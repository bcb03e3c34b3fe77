"""Who may call the service: the optional API token and the MCP endpoint's Host/Origin checks.

- ``API_TOKEN`` (optional): ``/v1/…`` and ``/mcp`` answer 401 (``WWW-Authenticate: Bearer``) without
  ``Authorization: Bearer <token>``. ``ADMIN_TOKEN`` is accepted wherever ``API_TOKEN`` is (it grants
  everything), and so is the local token of the index owner (the ``dbmeta`` CLI of the same user on the same
  ``DATA_DIR``). ``/healthz``, ``/readyz``, ``/metrics`` and the docs stay open. The admin routes
  (``/v1/admin/…``) are not gated here: they check ``ADMIN_TOKEN`` themselves, so ``API_TOKEN`` alone never
  reaches them.
- ``MCP_ALLOWED_HOSTS`` / ``MCP_ALLOWED_ORIGINS`` (DNS-rebinding protection, loopback names by default): a
  request to ``/mcp`` with another ``Host``, or a browser's ``Origin`` not allowed, is answered 403.
  ``MCP_ALLOWED_HOSTS=*`` turns both checks off (behind a proxy that checks them, or with ``API_TOKEN``).
"""

from __future__ import annotations

import hmac
from typing import Any

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dbmeta_app.config import Settings

MCP_PATH = "/mcp"
ADMIN_PREFIX = "/v1/admin/"


def is_gated(path: str) -> bool:
    """Whether API_TOKEN protects this path (every /v1 route but the admin ones, and /mcp)."""
    if path.startswith("/v1/"):
        return not path.startswith(ADMIN_PREFIX)
    return path == MCP_PATH or path.startswith(MCP_PATH + "/")


def bearer(headers: Any) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, given = str(headers.get("authorization", "")).partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def token_accepted(given: str, accepted: list[str]) -> bool:
    """Compare in constant time with every accepted token (no early exit on the first match)."""
    matches = [hmac.compare_digest(given.encode(), token.encode()) for token in accepted]
    return any(matches)


def accepted_tokens(runtime: Any) -> list[str] | None:
    """The bearer tokens a gated path takes (API_TOKEN, ADMIN_TOKEN, the index owner's); None: no API_TOKEN."""
    settings: Settings | None = getattr(runtime, "settings", None)
    if settings is None or settings.api_token is None:
        return None
    accepted = [settings.api_token.get_secret_value()]
    if settings.admin_token is not None:
        accepted.append(settings.admin_token.get_secret_value())
    anchor = getattr(runtime, "anchor", None)
    owner = anchor.owner() if anchor is not None else None
    if owner is not None:
        accepted.append(owner.token)
    return accepted


def authorized(runtime: Any, headers: Any) -> bool:
    """Whether this caller may see what API_TOKEN protects (always, without an API_TOKEN)."""
    accepted = accepted_tokens(runtime)
    given = bearer(headers)
    return accepted is None or (given is not None and token_accepted(given, accepted))


class TokenGate:
    """ASGI layer: with API_TOKEN set, the gated paths need a bearer token (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_gated(scope["path"]):
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
        accepted = accepted_tokens(runtime)
        if accepted is None:
            await self.app(scope, receive, send)
            return
        given = bearer(Request(scope).headers)
        if given is None:
            detail = "missing bearer token (Authorization: Bearer <API_TOKEN>)"
        elif not token_accepted(given, accepted):
            detail = "wrong bearer token"
        else:
            await self.app(scope, receive, send)
            return
        answer = JSONResponse(
            {"error": "unauthorized", "detail": detail},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="dbmeta"'},
        )
        await answer(scope, receive, send)


def mcp_transport_security(settings: Settings) -> TransportSecuritySettings:
    """The MCP SDK's DNS-rebinding settings from MCP_ALLOWED_HOSTS / MCP_ALLOWED_ORIGINS."""
    if "*" in settings.mcp_allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.mcp_allowed_hosts),
        allowed_origins=list(settings.allowed_origins),
    )


async def refuse_foreign(security: TransportSecuritySettings, scope: Scope) -> JSONResponse | None:
    """A 403 answer when the request's Host or Origin is not allowed, else None (the SDK's own check)."""
    refused = await TransportSecurityMiddleware(security).validate_request(Request(scope), is_post=False)
    if refused is None:
        return None
    reason = bytes(refused.body).decode("utf-8", "replace")
    return JSONResponse(
        {"error": "forbidden", "detail": f"{reason}: not in MCP_ALLOWED_HOSTS / MCP_ALLOWED_ORIGINS"},
        status_code=403,
    )
