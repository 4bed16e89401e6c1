"""The bodies of the JSON API that only the web layer has: errors, health, the token's principal.

Every other answer is one of the read models of :mod:`lakestream.observe.models`,
served as the monitor returns it (they are the routes' response models, so
``/openapi.json`` describes what comes back).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error: one line saying what went wrong, and perhaps how to fix it."""

    error: str = Field(description="what went wrong")
    hint: str | None = Field(default=None, description="how to fix it")
    status: int = Field(description="the HTTP status")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad parameter"},
    401: {"model": ErrorBody, "description": "no token, or an invalid or revoked one"},
    404: {"model": ErrorBody, "description": "no such dataset, partition or chart, or a "
          "dataset the principal may not read (both answered alike)"},
    503: {"model": ErrorBody, "description": "a store the answer needs is unavailable"},
}


class Health(BaseModel):
    """The server is up."""

    status: str
    version: str


class WhoAmI(BaseModel):
    """The principal a token acts as, and what it may read."""

    principal: str
    readable: list[str]
