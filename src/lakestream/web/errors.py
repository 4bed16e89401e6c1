"""Every failure becomes a JSON error with a clear line, a hint and the right status.

A user's mistake (bad parameter, unknown dataset, missing permission) is a
4xx; a store that is down is a 503; only a bug is a 500, logged with its
traceback and answered without one.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakestream.errors import (
    ConfigError,
    LakestreamError,
    StorageFullError,
    StorageLayoutError,
    StoragePermissionError,
    TransientError,
    WarehouseError,
)
from lakestream.governance.sqlguard import AccessDeniedError
from lakestream.observe import UnknownChartError, UnknownDatasetError
from lakestream.web.auth import NotAuthenticatedError

log = logging.getLogger(__name__)


def status_of(exc: LakestreamError) -> int:
    """The HTTP status of a Lakestream error."""
    if isinstance(exc, AccessDeniedError):
        return 403
    if isinstance(exc, UnknownDatasetError | UnknownChartError):
        return 404
    if isinstance(exc, TransientError | ConfigError | WarehouseError | StorageFullError
                  | StoragePermissionError | StorageLayoutError):
        return 503
    return 400


def error_response(status: int, message: str, hint: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON body every error has."""
    return JSONResponse({"error": message, "hint": hint, "status": status}, status,
                        headers=headers)


async def _lakestream_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LakestreamError)
    status = status_of(exc)
    if status >= 500:
        log.warning("request failed: %s", exc)
    return error_response(status, exc.message, exc.hint)


async def _not_authenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAuthenticatedError)
    if exc.page:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/login?next={target}", status_code=303)
    return error_response(401, exc.message, "create a token: lakestream tokens create "
                          "--principal NAME", {"WWW-Authenticate": "Bearer"})


async def _validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = " ".join(str(p) for p in first.get("loc", ()))
    body = {"error": f"{where}: {first.get('msg')}".strip(": "), "hint": None, "status": 422,
            "detail": [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")),
                        "type": str(e.get("type"))} for e in errors]}
    return JSONResponse(body, 422)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail),
                          headers=dict(exc.headers) if exc.headers else None)


async def _bug(_request: Request, exc: Exception) -> Response:
    log.error("internal error", exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}",
                          "see the server's log; please report it")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(LakestreamError, _lakestream_error)
    app.add_exception_handler(NotAuthenticatedError, _not_authenticated)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)

