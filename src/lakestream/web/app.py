"""The web app: dashboard pages, the JSON API (with ``/openapi.json``) and ``/metrics``."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from lakestream import __version__
from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.web import errors, metrics, routes_api, routes_pages

DESCRIPTION = """\
Lakestream's JSON API: the lake's datasets, partitions, metadata and rows,
consumer lag, runs and quality results.

Every route but `/api/health` needs `Authorization: Bearer <token>`, a token
created with `lakestream tokens create --principal NAME`. Routes that read a
dataset check the principal's permissions (`lakestream permissions grant`)
and are written to the audit log; a dataset the principal may not read is
answered like one that does not exist (404), and lists, runs and quality
results leave out what it may not read. Errors are JSON: `{"error", "hint", "status"}`.
"""

# The pages load nothing from elsewhere: no CDN, no inline script.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


CONFIG_ENV = "LAKESTREAM_CONFIG"
"""The config file ``app_from_environment`` loads (unset: ./lakestream.yaml or defaults)."""


def app_from_environment() -> FastAPI:
    """The app of the configuration named by ``$LAKESTREAM_CONFIG``.

    What ``lakestream serve`` runs, and what an ASGI server is given to run it
    another way: ``uvicorn --factory lakestream.web:app_from_environment``.
    """
    return create_app(Lakestream(load_settings(os.environ.get(CONFIG_ENV) or None)))


def create_app(api: Lakestream, poll_s: float = 5.0) -> FastAPI:
    """The app serving ``api``'s lake, broker and run logs.

    Args:
        api: The facade of one configuration.
        poll_s: How often the pages ask the API for fresh numbers.
    """
    app = FastAPI(title="Lakestream", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.api = api
    app.state.poll_ms = int(poll_s * 1000)
    errors.install(app)
    app.include_router(routes_api.router)
    app.include_router(metrics.router)
    app.include_router(routes_pages.router)
    app.mount("/static", StaticFiles(directory=routes_pages.HERE / "static"), name="static")
    app.middleware("http")(_security_headers)
    return app


async def _security_headers(request: Request,
                            call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.url.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
