"""The API tokens as the ``tokens`` commands and the web app use them.

Issuing and resolving tokens is governance's :class:`TokenStore` (a token is
shown once and stored only as its SHA-256); this adds listing, revoking one
token by id, and an audit entry for every token issued or revoked.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass

import sqlalchemy as sa

from lakestream.governance.audit import AuditLog
from lakestream.governance.permissions import check_principal
from lakestream.governance.store import GovernanceDB
from lakestream.governance.tokens import TokenStore
from lakestream.warehouse.schema import api_tokens


@dataclass(frozen=True)
class TokenInfo:
    """A token as it may be shown: never the token, only its id and fingerprint."""

    token_id: int
    principal: str
    created_at: dt.datetime
    fingerprint: str


class ApiTokens:
    """Issue, resolve, list and revoke API tokens (stored hashed in the warehouse)."""

    def __init__(self, db: GovernanceDB, store: TokenStore, audit: AuditLog) -> None:
        self.db = db
        self.store = store
        self.audit = audit

    def issue(self, principal: str) -> tuple[str, TokenInfo]:
        """A new token for ``principal``: the token (shown once) and its listing entry."""
        token = self.store.issue(check_principal(principal))
        info = self._info(sa.select(api_tokens).order_by(api_tokens.c.token_id.desc()).where(
            api_tokens.c.principal == principal).limit(1))[0]
        self.audit.record(_operator(), "token_issue", None,
                          {"principal": principal, "token_id": info.token_id})
        return token, info

    def principal_for(self, token: str) -> str | None:
        """The principal ``token`` acts as (``None``: unknown or revoked)."""
        return self.store.principal_for(token)

    def listing(self, principal: str | None = None) -> list[TokenInfo]:
        """Every token (or those of ``principal``), oldest first."""
        query = sa.select(api_tokens).order_by(api_tokens.c.token_id)
        if principal is not None:
            query = query.where(api_tokens.c.principal == principal)
        return self._info(query)

    def revoke(self, token_id: int) -> TokenInfo | None:
        """Revoke one token; ``None`` when there is no such token."""
        found = self._info(sa.select(api_tokens).where(api_tokens.c.token_id == token_id))
        if not found:
            return None
        self.db.run(lambda c: c.execute(sa.delete(api_tokens).where(
            api_tokens.c.token_id == token_id)), "revoking a token")
        self.audit.record(_operator(), "token_revoke", None,
                          {"principal": found[0].principal, "token_id": token_id})
        return found[0]

    def revoke_principal(self, principal: str) -> int:
        """Revoke every token of ``principal``; how many there were."""
        count = self.store.revoke_all(principal)
        if count:
            self.audit.record(_operator(), "token_revoke", None,
                              {"principal": principal, "tokens": count})
        return count

    def _info(self, query: sa.Select[tuple[object, ...]]) -> list[TokenInfo]:
        rows = self.db.run(lambda c: c.execute(query).mappings().all(), "reading tokens")
        return [TokenInfo(int(r["token_id"]), str(r["principal"]), r["created_at"],
                          str(r["token_hash"])[:12]) for r in rows]


def _operator() -> str:
    """Who runs the command (the OS user), for the audit trail."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
