"""Governance as the facade sees it: permissions, audited reads, retention, audit, modes."""

from __future__ import annotations

import datetime as dt
import difflib
import getpass
from collections.abc import Iterable
from functools import cached_property

from lakestream.config import Settings
from lakestream.errors import UsageError
from lakestream.feeds import Feed
from lakestream.governance.access import AccessGate, QueryResult
from lakestream.governance.audit import AuditEntry, AuditEvent, AuditLog
from lakestream.governance.catalog import DatasetInfo, lake_catalog
from lakestream.governance.gold_retention import GoldRetention, gold_database_url
from lakestream.governance.modes import ModeChange, apply_modes
from lakestream.governance.permissions import (
    BUILT_IN_ROLES,
    ROLE_PREFIX,
    Access,
    Explanation,
    Grant,
    PermissionStore,
    check_dataset,
    check_level,
    check_principal,
    default_grants,
    explain,
)
from lakestream.governance.retention import LAYERS, RetentionPlan, RetentionPlanner
from lakestream.governance.retention_run import DatasetOutcome, RetentionExecutor
from lakestream.governance.secrets import redact, secret_values
from lakestream.governance.store import GovernanceDB
from lakestream.governance.tokens import TokenStore
from lakestream.lake.storage import Storage
from lakestream.warehouse.service import WarehouseService


def current_user() -> str:
    """Who runs this process (recorded as ``granted_by`` and as the retention actor)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Governance:
    """Governance of one configuration.

    Args:
        settings: Lakestream settings.
        storage: The lake.
        feeds: The feed registry.
        warehouse: The warehouse whose database holds the governance tables.
    """

    def __init__(self, settings: Settings, storage: Storage, feeds: Iterable[Feed],
                 warehouse: WarehouseService) -> None:
        self.settings = settings
        self.storage = storage
        self.feeds = list(feeds)
        self.warehouse = warehouse

    @cached_property
    def db(self) -> GovernanceDB:
        """The governance tables in the warehouse database."""
        return GovernanceDB(self.warehouse.engine, self.warehouse.retry)

    @cached_property
    def audit(self) -> AuditLog:
        """The audit trail (secret values redacted from what it stores)."""
        values = secret_values(self.settings)
        return AuditLog(self.db, lambda text: redact(text, values))

    @cached_property
    def permissions(self) -> PermissionStore:
        """Grants and role memberships."""
        return PermissionStore(self.db)

    @cached_property
    def gate(self) -> AccessGate:
        """Checked and audited reads for principals (CLI ``--as`` and the API)."""
        return AccessGate(self.storage, self.feeds, self.permissions, self.audit)

    @cached_property
    def tokens(self) -> TokenStore:
        """API tokens."""
        return TokenStore(self.db)

    # -- permissions ----------------------------------------------------------------------

    def catalog(self) -> dict[str, DatasetInfo]:
        """Every dataset by view name, with its sensitivity."""
        return lake_catalog(self.storage, self.feeds)

    def grant(self, principal: str, dataset: str, level: str, actor: str | None = None) -> Grant:
        """Give ``principal`` ``level`` on ``dataset`` (or membership of ``role:<name>``)."""
        check_principal(principal)
        check_level(level)
        dataset = check_dataset(dataset, self.catalog())
        actor = actor or current_user()
        grant = self.permissions.grant(principal, dataset, level, actor)
        self.audit.record(actor, "grant", dataset, {"principal": principal, "level": level})
        return grant

    def revoke(self, principal: str, dataset: str, actor: str | None = None) -> bool:
        """Take ``principal``'s grant on ``dataset`` away; ``False`` when there was none."""
        check_principal(principal)
        actor = actor or current_user()
        removed = self.permissions.revoke(principal, dataset)
        if removed:
            self.audit.record(actor, "revoke", dataset, {"principal": principal})
        return removed

    def assign(self, principal: str, role: str, actor: str | None = None) -> Grant:
        """Make ``principal`` a member of ``role`` (a built-in role or one with grants).

        Raises:
            UsageError: ``role`` is neither built in nor a principal holding grants.
        """
        check_principal(role)
        known = sorted({*BUILT_IN_ROLES, *(g.principal for g in self.permissions.grants())})
        if role not in known:
            close = difflib.get_close_matches(role, known, n=1)
            raise UsageError(f"unknown role '{role}'",
                             f"did you mean '{close[0]}'?" if close else
                             f"roles: {', '.join(known)}; a role is a principal with grants "
                             f"(lakestream permissions grant {role} DATASET)")
        return self.grant(principal, f"{ROLE_PREFIX}{role}", "read", actor)

    def explain(self, principal: str, dataset: str) -> Explanation:
        """Which grant, role or default allows or refuses ``principal`` on ``dataset``."""
        check_principal(principal)
        catalog = self.catalog()
        info = catalog.get(dataset.lower())
        if info is None:
            check_dataset(dataset, catalog)  # an unknown name raises, with a suggestion
            raise UsageError(f"'{dataset}' is a pattern", "explain one dataset name at a time")
        roles, grants = self.permissions.applicable(principal, catalog)
        return explain(principal, info, roles, grants)

    def grants(self, principal: str | None = None, dataset: str | None = None,
               defaults: bool = True) -> list[Grant]:
        """Stored grants, and (``defaults``) the built-in ones, filtered."""
        found = self.permissions.grants(principal, dataset)
        if defaults:
            built_in = default_grants(self.catalog().values(), BUILT_IN_ROLES)
            found += [g for g in built_in if principal in (None, g.principal)
                      and dataset in (None, g.dataset)]
        return sorted(found, key=lambda g: (g.principal, g.dataset, g.source))

    def check(self, principal: str, dataset: str) -> Access:
        """``principal``'s effective level on ``dataset``."""
        access = self.gate.access(principal)
        if dataset.lower() not in access:
            check_dataset(dataset, access)  # an unknown name raises, with a suggestion
            raise UsageError(f"'{dataset}' is a pattern", "check one dataset name at a time")
        return access[dataset.lower()]

    def apply_modes(self) -> list[ModeChange]:
        """File modes of the local lake's dataset folders by sensitivity."""
        return apply_modes(self.storage, self.catalog().values())

    # -- reads ----------------------------------------------------------------------------

    def query(self, principal: str, sql: str, via: str = "query") -> QueryResult:
        """Run ``sql`` as ``principal``: checked, locked down, audited."""
        return self.gate.query(principal, sql, via)

    def authorize_read(self, principal: str, dataset: str, via: str = "api") -> Access:
        """Check and record one read of ``dataset`` by ``principal`` (for the API)."""
        return self.gate.authorize_read(principal, dataset, via)

    # -- retention ------------------------------------------------------------------------

    def retention_plan(self, feed: str | None = None, layer: str | None = None,
                       today: dt.date | None = None, grace_hours: int | None = None
                       ) -> RetentionPlan:
        """What a retention run would delete now (nothing is changed); ``grace_hours``
        overrides ``lake.vacuum_grace_hours`` for the vacuum of Delta datasets."""
        if layer is not None and layer not in LAYERS:
            raise UsageError(f"unknown layer '{layer}'", f"use one of {', '.join(LAYERS)}")
        feeds = [f for f in self.feeds if feed is None or f.name == feed]
        if feed is not None and not feeds:
            raise UsageError(f"unknown feed '{feed}'", "see `lakestream feeds list`")
        gold = self._gold()
        try:
            return RetentionPlanner(self.storage, self.settings, feeds, gold, today,
                                    grace_hours).plan(feed, layer)
        finally:
            if gold is not None:
                gold.close()

    def retention_run(self, plan: RetentionPlan, actor: str | None = None
                      ) -> list[DatasetOutcome]:
        """Delete exactly what ``plan`` lists, update metadata, record it in the audit log."""
        actor = actor or current_user()
        self.audit.entries(limit=1)  # the audit log must be writable before anything goes
        gold = self._gold()
        try:
            outcomes = RetentionExecutor(self.storage, self.feeds, gold).run(plan)
        finally:
            if gold is not None:
                gold.close()
        self.audit.record_many([AuditEvent(actor, "retention_delete", o.view, o.detail())
                                for o in outcomes])
        return outcomes

    def _gold(self) -> GoldRetention | None:
        url = gold_database_url(self.settings)
        return None if url is None else GoldRetention(url, self.warehouse.retry)

    # -- audit ----------------------------------------------------------------------------

    def audit_entries(self, principal: str | None = None, since: dt.datetime | None = None,
                      action: str | None = None, dataset: str | None = None,
                      limit: int = 1000) -> list[AuditEntry]:
        """Audit events, newest first."""
        return self.audit.entries(principal, since, action, dataset, limit)
