"""Every read that serves a principal goes through here: check, run locked down, audit.

Two layers, each enough on its own to refuse a bypass:

1. :func:`~lakestream.governance.sqlguard.statement_refs` parses the whole
   statement and lists the datasets it reads; any one the principal may not
   read (or that does not exist) refuses the query.
2. The query then runs in a :class:`~lakestream.lake.reader.LakeReader` built
   for the principal: only the views they may read exist, and DuckDB can open
   no other file, attach nothing, copy nothing, load nothing.

Reads and refusals are written to the audit log before the rows are returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lakestream.errors import LakestreamError
from lakestream.feeds import Feed
from lakestream.governance.audit import AuditEvent, AuditLog
from lakestream.governance.catalog import DatasetInfo, lake_catalog
from lakestream.governance.permissions import Access, PermissionStore, check_principal
from lakestream.governance.sqlguard import AccessDeniedError, statement_refs
from lakestream.lake.reader import LakeReader
from lakestream.lake.storage import Storage

_SQL_IN_AUDIT = 1000


@dataclass(frozen=True)
class QueryResult:
    """Rows of a principal's query and the datasets it read."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    datasets: tuple[str, ...]


class AccessGate:
    """Permission checks and audited reads for principals.

    Args:
        storage: The lake.
        feeds: The feed registry (sensitivity of each dataset).
        permissions: Grants and roles.
        audit: Where reads and refusals are recorded.
    """

    def __init__(self, storage: Storage, feeds: Iterable[Feed], permissions: PermissionStore,
                 audit: AuditLog) -> None:
        self.storage = storage
        self.feeds = list(feeds)
        self.permissions = permissions
        self.audit = audit

    def catalog(self) -> dict[str, DatasetInfo]:
        """Every dataset of the registry and the lake, by view name."""
        return lake_catalog(self.storage, self.feeds)

    def access(self, principal: str) -> dict[str, Access]:
        """``principal``'s effective access to every dataset."""
        return self.permissions.effective(check_principal(principal), self.catalog())

    def readable(self, principal: str) -> list[str]:
        """The datasets ``principal`` may read (sorted)."""
        return sorted(name for name, a in self.access(principal).items() if a.allows("read"))

    def query(self, principal: str, sql: str, via: str = "query") -> QueryResult:
        """Run ``sql`` for ``principal`` if every dataset it reads is permitted.

        Raises:
            AccessDeniedError: The statement reads a dataset the principal may not
                read, or is not a single query; recorded as ``read_denied``.
        """
        check_principal(principal)
        catalog = self.catalog()
        access = self.permissions.effective(principal, catalog)
        allowed = sorted(n for n, a in access.items() if a.allows("read"))
        try:
            refs = statement_refs(sql, {n: self.storage.url(i.path) for n, i in catalog.items()})
            self._refuse_unpermitted(principal, refs.datasets | refs.unknown, access, allowed)
            reader = LakeReader(self.storage, only=allowed, feeds=self.feeds)
            try:
                columns, rows = reader.query(sql)
            finally:
                reader.close()
        except LakestreamError as exc:
            self._record_denied(principal, sql, via, exc)
            raise
        read = tuple(sorted(refs.datasets))
        self.audit.record_many([
            AuditEvent(principal, "read", name, {"via": via, "rows": len(rows),
                                                 "sql": sql[:_SQL_IN_AUDIT]})
            for name in read
        ])
        return QueryResult(columns, rows, read)

    def authorize_read(self, principal: str, dataset: str, via: str = "api") -> Access:
        """Allow and record one read of ``dataset`` (the API's check before serving rows).

        Raises:
            AccessDeniedError: Not permitted (recorded as ``read_denied``).
        """
        access = self.access(principal).get(dataset.lower())
        if access is None or not access.allows("read"):
            error = AccessDeniedError(f"principal '{principal}' may not read '{dataset}'",
                                      _grant_hint(principal, dataset), dataset)
            self.audit.record(principal, "read_denied", dataset, {"via": via,
                                                                  "reason": error.message})
            raise error
        self.audit.record(principal, "read", access.dataset, {"via": via})
        return access

    def _refuse_unpermitted(self, principal: str, names: Iterable[str],
                            access: dict[str, Access], allowed: list[str]) -> None:
        for name in sorted(names):
            if name not in access:
                raise AccessDeniedError(
                    f"unknown dataset '{name}'",
                    f"'{principal}' may read: {', '.join(allowed) or 'nothing yet'}", name)
            if not access[name].allows("read"):
                raise AccessDeniedError(f"principal '{principal}' may not read '{name}'",
                                        _grant_hint(principal, name), name)

    def _record_denied(self, principal: str, sql: str, via: str, exc: LakestreamError) -> None:
        denied = isinstance(exc, AccessDeniedError)
        dataset = exc.dataset if isinstance(exc, AccessDeniedError) else None
        self.audit.record(principal, "read_denied" if denied else "read_failed", dataset, {
            "via": via, "reason": exc.message, "sql": sql[:_SQL_IN_AUDIT]})


def _grant_hint(principal: str, dataset: str) -> str:
    return f"an admin can run: lakestream permissions grant {principal} {dataset} --level read"
