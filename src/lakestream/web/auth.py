"""Who is asking: a bearer token (API clients) or the same token in a cookie (the browser).

Tokens come from ``lakestream tokens create --principal P``; the server only
keeps their hashes. The login page puts the token in an HttpOnly, SameSite
cookie so pages and their polling requests carry it; API clients send
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lakestream.api import Lakestream

COOKIE = "lakestream_token"

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="a token from `lakestream tokens create --principal P`")


class NotAuthenticatedError(Exception):
    """The request carries no token, or one that is unknown or revoked."""

    def __init__(self, message: str, page: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.page = page


def facade(request: Request) -> Lakestream:
    """The facade the app was built with."""
    api: Lakestream = request.app.state.api
    return api


def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None,
               page: bool) -> str:
    token = credentials.credentials if credentials else request.cookies.get(COOKIE)
    if not token:
        raise NotAuthenticatedError("no token: send 'Authorization: Bearer <token>' "
                                    "(create one with `lakestream tokens create`)", page)
    principal = facade(request).tokens.principal_for(token)
    if principal is None:
        raise NotAuthenticatedError("the token is not valid (unknown or revoked)", page)
    return principal


def api_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """The principal of an API request (401 without a valid token)."""
    return _principal(request, credentials, page=False)


def page_principal(request: Request) -> str:
    """The principal of a page request (a redirect to the login page without one)."""
    return _principal(request, None, page=True)


Principal = Annotated[str, Depends(api_principal)]
PagePrincipal = Annotated[str, Depends(page_principal)]
Api = Annotated[Lakestream, Depends(facade)]
