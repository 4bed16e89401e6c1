"""The audit trail: who read, granted, revoked or deleted what, and when (``audit_log``).

Actions written by Lakestream:

========================  ==========================================================
``read``                  a principal's query (CLI ``query --as``) or API read of a dataset
``read_denied``           a refused query or API read, with the reason
``read_failed``           a permitted query that failed (bad SQL, a file access DuckDB refused)
``grant`` / ``revoke``    a permission (or role membership) given or taken
``retention_delete``      what one retention run deleted from one dataset
``dlq_purge``             the days of dead letters ``dlq purge`` removed from one feed
``token_issue``           an API token created for a principal
========================  ==========================================================

``detail`` is JSON. Secret values known to the configuration are redacted
from it before it is written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lakestream.governance.store import GovernanceDB, utc_now
from lakestream.warehouse.schema import audit_log

_DETAIL_MAX = 4000


@dataclass(frozen=True)
class AuditEntry:
    """One row of ``audit_log``."""

    at: dt.datetime
    principal: str
    action: str
    dataset: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"at": self.at.isoformat(), "principal": self.principal, "action": self.action,
                "dataset": self.dataset, "detail": self.detail}


@dataclass(frozen=True)
class AuditEvent:
    """Something to record (``at`` is set when written)."""

    principal: str
    action: str
    dataset: str | None = None
    detail: dict[str, Any] | None = None


class AuditLog:
    """Writes and reads ``audit_log``.

    Args:
        db: The governance tables.
        redact: Removes secret values from text before it is stored.
    """

    def __init__(self, db: GovernanceDB, redact: Callable[[str], str] = lambda s: s) -> None:
        self.db = db
        self.redact = redact

    def record(self, principal: str, action: str, dataset: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
        """Write one event."""
        self.record_many([AuditEvent(principal, action, dataset, detail)])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """Write several events in one transaction (nothing when empty)."""
        if not events:
            return
        at = utc_now()
        rows = [{"at": at, "principal": e.principal, "action": e.action, "dataset": e.dataset,
                 "detail": self._detail(e.detail)} for e in events]
        self.db.run(lambda conn: conn.execute(sa.insert(audit_log), rows), "writing the audit log")

    def entries(self, principal: str | None = None, since: dt.datetime | None = None,
                action: str | None = None, dataset: str | None = None,
                limit: int = 1000) -> list[AuditEntry]:
        """The newest events first, filtered."""
        query = sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.audit_id.desc())
        if principal is not None:
            query = query.where(audit_log.c.principal == principal)
        if since is not None:
            naive = since.astimezone(dt.UTC).replace(tzinfo=None) if since.tzinfo else since
            query = query.where(audit_log.c.at >= naive)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if dataset is not None:
            query = query.where(audit_log.c.dataset == dataset)
        rows = self.db.run(lambda conn: conn.execute(query.limit(limit)).mappings().all(),
                           "reading the audit log")
        return [AuditEntry(r["at"], r["principal"], r["action"], r["dataset"],
                           _parse(r["detail"])) for r in rows]

    def _detail(self, detail: dict[str, Any] | None) -> str | None:
        if not detail:
            return None
        text = self.redact(json.dumps(detail, default=str, sort_keys=True))
        if len(text) > _DETAIL_MAX:
            text = json.dumps({"truncated": text[: _DETAIL_MAX - 40]})
        return text


def _parse(detail: str | None) -> dict[str, Any]:
    if not detail:
        return {}
    try:
        data = json.loads(detail)
    except ValueError:
        return {"text": detail}
    return data if isinstance(data, dict) else {"value": data}
