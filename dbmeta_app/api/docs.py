"""``/docs`` (Swagger UI) and ``/redoc`` served with their assets from a package, so they work offline.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and web fonts from CDNs: blank on a machine or cluster
without internet access. The assets come from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc 2
bundles) and are served under ``/docs/assets``; nothing on the pages points outside the service.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"


def mount_docs(app: FastAPI) -> None:
    """Serve the interactive docs of app from local assets (create the app with docs_url=redoc_url=None)."""
    assets = str(files("fastapi_offline") / "static")
    app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")

    def local(request: Request, path: str) -> str:
        return f"{request.scope.get('root_path', '')}{path}"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=local(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=local(request, f"{ASSETS_PATH}/swagger-ui-bundle.js"),
            swagger_css_url=local(request, f"{ASSETS_PATH}/swagger-ui.css"),
            swagger_favicon_url=local(request, f"{ASSETS_PATH}/favicon.png"),
            oauth2_redirect_url=local(request, OAUTH2_REDIRECT_PATH),
            # no "valid" badge: it is an image fetched from the validator's public site
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=local(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=local(request, f"{ASSETS_PATH}/redoc.standalone.js"),
            redoc_favicon_url=local(request, f"{ASSETS_PATH}/favicon.png"),
            with_google_fonts=False,
        )
