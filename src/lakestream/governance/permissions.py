"""Permissions: grants in ``data_lake_permissions``, roles, and defaults by sensitivity.

The model (docs/governance.md):

- A **grant** gives a principal a level on a dataset: ``read`` < ``write`` < ``admin``
  (a higher level includes the lower ones). The dataset is a view name or an
  ``fnmatch`` pattern (``transaction_*``, ``*``).
- A **role** is a principal like any other (``analyst``). A user belongs to a
  role through a membership row: the dataset ``role:<name>``
  (``lakestream permissions grant alice role:analyst``). Memberships are one
  level deep: roles do not belong to roles.
- **Defaults** (SPEC §6): the ``analyst`` role reads every ``shared`` dataset
  (anonymized streams, aggregates, weather); ``restricted`` datasets (raw
  streams, dead letters) need an explicit grant.

A principal's level on a dataset is the highest level given to it or to one of
its roles, by grant or by default.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from lakestream.errors import UsageError
from lakestream.governance.catalog import DatasetInfo
from lakestream.governance.names import LEVELS
from lakestream.governance.store import GovernanceDB, utc_now
from lakestream.warehouse.schema import data_lake_permissions as table

RANK = {level: i + 1 for i, level in enumerate(LEVELS)}
ROLE_PREFIX = "role:"
ANALYST = "analyst"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
_PATTERN = re.compile(r"^[a-z0-9_*?\[\]]{1,255}$")


@dataclass(frozen=True)
class Grant:
    """One permission: stored (``source = "grant"``) or built in (``"default"``)."""

    principal: str
    dataset: str
    level: str
    granted_by: str | None
    granted_at: dt.datetime | None
    source: str = "grant"


@dataclass(frozen=True)
class Access:
    """A principal's effective level on one dataset, and what gives it."""

    principal: str
    dataset: str
    level: str | None
    via: str

    def allows(self, level: str = "read") -> bool:
        """Whether the effective level includes ``level``."""
        return self.level is not None and RANK[self.level] >= RANK[level]


def check_principal(name: str) -> str:
    """``name`` if it is a valid principal or role name, else a usage error."""
    if not _NAME.match(name) or name.startswith(ROLE_PREFIX):
        raise UsageError(f"'{name}' is not a valid principal name",
                         "use letters, digits and _ . @ - (at most 128)")
    return name


def check_level(level: str) -> str:
    """``level`` if it is read, write or admin, else a usage error."""
    if level not in RANK:
        raise UsageError(f"unknown level '{level}'", f"use one of {', '.join(LEVELS)}")
    return level


class PermissionStore:
    """Grants and role memberships in the warehouse's ``data_lake_permissions``."""

    def __init__(self, db: GovernanceDB) -> None:
        self.db = db

    def grant(self, principal: str, dataset: str, level: str, granted_by: str) -> Grant:
        """Give ``principal`` ``level`` on ``dataset`` (replaces an earlier grant of it)."""
        now = utc_now()
        row = {"principal": principal, "dataset": dataset, "level": level,
               "granted_by": granted_by, "granted_at": now}
        key = (table.c.principal == principal) & (table.c.dataset == dataset)

        def work(conn: sa.Connection) -> None:
            if conn.execute(sa.select(table.c.permission_id).where(key)).first() is None:
                conn.execute(sa.insert(table), [row])
            else:
                conn.execute(sa.update(table).where(key).values(**row))

        self.db.run(work, "granting")
        return Grant(principal, dataset, level, granted_by, now)

    def revoke(self, principal: str, dataset: str) -> bool:
        """Take a grant away; ``False`` when there was none."""
        key = (table.c.principal == principal) & (table.c.dataset == dataset)
        count = self.db.run(lambda conn: conn.execute(sa.delete(table).where(key)).rowcount,
                            "revoking")
        return bool(count)

    def grants(self, principal: str | None = None, dataset: str | None = None) -> list[Grant]:
        """Stored grants, filtered, sorted by principal and dataset."""
        query = sa.select(table).order_by(table.c.principal, table.c.dataset)
        if principal is not None:
            query = query.where(table.c.principal == principal)
        if dataset is not None:
            query = query.where(table.c.dataset == dataset)
        rows = self.db.run(lambda conn: conn.execute(query).mappings().all(), "reading grants")
        return [Grant(r["principal"], r["dataset"], r["level"], r["granted_by"], r["granted_at"])
                for r in rows]

    def effective(self, principal: str, catalog: Mapping[str, DatasetInfo]) -> dict[str, Access]:
        """``principal``'s access to every dataset of ``catalog`` (one query for all)."""
        stored = self.grants(principal)
        roles = [g.dataset[len(ROLE_PREFIX):] for g in stored if g.dataset.startswith(ROLE_PREFIX)]
        for role in roles:
            stored += self.grants(role)
        every = [*stored, *default_grants(catalog.values(), [principal, *roles])]
        return {name: _resolve(principal, info, every, {principal, *roles})
                for name, info in catalog.items()}


def default_grants(datasets: Iterable[DatasetInfo], principals: Iterable[str]) -> list[Grant]:
    """The built-in grants that apply to ``principals``: ``analyst`` reads shared datasets."""
    if ANALYST not in set(principals):
        return []
    return [Grant(ANALYST, d.name, "read", None, None, f"default ({d.sensitivity})")
            for d in datasets if d.sensitivity == "shared"]


def _resolve(principal: str, info: DatasetInfo, grants: list[Grant],
             principals: set[str]) -> Access:
    best: Grant | None = None
    for g in grants:
        if g.principal in principals and not g.dataset.startswith(ROLE_PREFIX) \
                and fnmatch.fnmatchcase(info.name, g.dataset.lower()) \
                and (best is None or RANK[g.level] > RANK[best.level]):
            best = g
    if best is None:
        return Access(principal, info.name, None, f"no grant; {info.sensitivity} dataset")
    who = "" if best.principal == principal else f" via role {best.principal}"
    how = "default for shared datasets" if best.source != "grant" else f"grant on {best.dataset}"
    return Access(principal, info.name, best.level, f"{how}{who}")


def check_dataset(dataset: str, known: Iterable[str]) -> str:
    """A dataset (or pattern, or ``role:<name>``) that may be granted; else a usage error."""
    if dataset.startswith(ROLE_PREFIX):
        check_principal(dataset[len(ROLE_PREFIX):])
        return dataset
    if not _PATTERN.match(dataset):
        raise UsageError(f"'{dataset}' is not a dataset name or pattern",
                         "use a view name such as transaction_stream, a pattern such as "
                         "transaction_*, or role:<name> for a role membership")
    names = sorted(set(known))
    if any(ch in dataset for ch in "*?[") or dataset in names:
        return dataset
    close = _close(dataset, names) or fnmatch.filter(names, f"*{dataset}*")[:1]
    hint = f"did you mean '{close[0]}'?" if close else "see `lakestream permissions list`"
    raise UsageError(f"unknown dataset '{dataset}'", hint)


def _close(name: str, names: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, names, n=1)
