"""API tokens: a random secret shown once, stored only as its SHA-256 (``api_tokens``).

The dashboard and JSON API authenticate a request's bearer token with
:meth:`TokenStore.principal_for` and then serve it as that principal, through
the same permission checks and audit as ``lakestream query --as``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from lakestream.governance.store import GovernanceDB, utc_now
from lakestream.warehouse.schema import api_tokens

TOKEN_PREFIX = "lst_"


def token_hash(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Issue, resolve and revoke API tokens."""

    def __init__(self, db: GovernanceDB) -> None:
        self.db = db

    def issue(self, principal: str) -> str:
        """A new token acting as ``principal`` (the only time the token itself is seen)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {"token_hash": token_hash(token), "principal": principal, "created_at": utc_now()}
        self.db.run(lambda conn: conn.execute(sa.insert(api_tokens), [row]), "issuing a token")
        return token

    def principal_for(self, token: str) -> str | None:
        """The principal ``token`` acts as, or ``None`` for an unknown token."""
        wanted = token_hash(token)
        query = sa.select(api_tokens.c.token_hash, api_tokens.c.principal).where(
            api_tokens.c.token_hash == wanted)
        row = self.db.run(lambda conn: conn.execute(query).first(), "checking a token")
        if row is None or not hmac.compare_digest(row[0], wanted):
            return None
        return str(row[1])

    def revoke_all(self, principal: str) -> int:
        """Revoke every token of ``principal``; returns how many there were."""
        query = sa.delete(api_tokens).where(api_tokens.c.principal == principal)
        return int(self.db.run(lambda conn: conn.execute(query).rowcount, "revoking tokens"))
