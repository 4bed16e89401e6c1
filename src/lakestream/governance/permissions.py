"""Permissions: grants in ``data_lake_permissions``, roles, and defaults by sensitivity.

The model (docs/governance.md):

- A **grant** gives a principal a level on a dataset: ``read`` < ``write`` < ``admin``
  (a higher level includes the lower ones). The dataset is a view name or an
  ``fnmatch`` pattern: with a ``/`` it matches the dataset's folder
  (``streams/*``, ``silver/*``); without, the view name (``transaction_*``,
  ``*``) or, in bronze, silver and gold, the name inside the layer
  (``weather_*`` matches ``silver_weather_cleaned``).
- A **role** is a principal like any other (``analyst``). A user belongs to a
  role through a membership row: the dataset ``role:<name>``
  (``lakestream permissions assign alice analyst``). Memberships are one
  level deep: roles do not belong to roles.
- **Defaults** (docs/governance.md): the ``analyst`` role reads every ``shared`` dataset
  (anonymized streams, aggregates, weather); ``restricted`` datasets (raw
  streams, dead letters) need an explicit grant. The ``admin`` role has the
  ``admin`` level on every dataset (``*``), so it reads everything.

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
ADMIN = "admin"
BUILT_IN_ROLES = (ANALYST, ADMIN)
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
_PATTERN = re.compile(r"^[a-z0-9_*?\[\]/]{1,255}$")
_WILDCARDS = "*?["
_LAYERED = ("bronze", "silver", "gold")


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

    def memberships(self, principal: str) -> list[Grant]:
        """``principal``'s role memberships (its ``role:<name>`` rows)."""
        return [g for g in self.grants(principal) if g.dataset.startswith(ROLE_PREFIX)]

    def applicable(self, principal: str, catalog: Mapping[str, DatasetInfo]
                   ) -> tuple[list[str], list[Grant]]:
        """``principal``'s roles, and every grant that applies to it or them (defaults too)."""
        stored = self.grants(principal)
        roles = [g.dataset[len(ROLE_PREFIX):] for g in stored if g.dataset.startswith(ROLE_PREFIX)]
        for role in roles:
            stored += self.grants(role)
        every = [*stored, *default_grants(catalog.values(), [principal, *roles])]
        return roles, [g for g in every if not g.dataset.startswith(ROLE_PREFIX)]

    def effective(self, principal: str, catalog: Mapping[str, DatasetInfo]) -> dict[str, Access]:
        """``principal``'s access to every dataset of ``catalog`` (one query for all)."""
        _, every = self.applicable(principal, catalog)
        return {name: _resolve(principal, info, every) for name, info in catalog.items()}


def default_grants(datasets: Iterable[DatasetInfo], principals: Iterable[str]) -> list[Grant]:
    """The built-in grants that apply to ``principals``.

    ``analyst`` reads every shared dataset; ``admin`` has the admin level on every dataset.
    """
    who = set(principals)
    found = []
    if ANALYST in who:
        found += [Grant(ANALYST, d.name, "read", None, None, f"default ({d.sensitivity})")
                  for d in datasets if d.sensitivity == "shared"]
    if ADMIN in who:
        found.append(Grant(ADMIN, "*", "admin", None, None, "default (admin role)"))
    return found


def matches(pattern: str, info: DatasetInfo) -> bool:
    """Whether a grant's dataset (a name or a pattern) covers ``info``."""
    pattern = pattern.lower()
    if "/" in pattern:
        return fnmatch.fnmatchcase(info.path.lower(), pattern)
    if fnmatch.fnmatchcase(info.name, pattern):
        return True
    area, _, inner = info.path.lower().partition("/")
    return any(ch in pattern for ch in _WILDCARDS) and area in _LAYERED and \
        fnmatch.fnmatchcase(inner, pattern)


@dataclass(frozen=True)
class Explanation:
    """Why a principal may or may not use one dataset.

    Attributes:
        access: The effective access.
        roles: The principal's roles.
        allowing: The grants that cover the dataset, highest level first (the
            first decides).
        others: The principal's (and its roles') stored grants that do not cover it.
        sensitivity: The dataset's sensitivity (what the defaults go by).
    """

    access: Access
    roles: list[str]
    allowing: list[Grant]
    others: list[Grant]
    sensitivity: str


def explain(principal: str, info: DatasetInfo, roles: list[str],
            grants: list[Grant]) -> Explanation:
    """Which of ``grants`` (those applying to ``principal``) decide its access to ``info``."""
    covering = sorted((g for g in grants if matches(g.dataset, info)),
                      key=lambda g: -RANK[g.level])
    others = [g for g in grants if g.source == "grant" and not matches(g.dataset, info)]
    return Explanation(_resolve(principal, info, covering), roles, covering, others,
                       info.sensitivity)


def describe(grant: Grant, principal: str) -> str:
    """How a grant reads in an explanation: what it is, and through which role."""
    who = "" if grant.principal == principal else f" via role {grant.principal}"
    if grant.source == "grant":
        how = f"grant on {grant.dataset}"
    elif grant.principal == ADMIN:
        how = "default of the admin role (every dataset)"
    else:
        how = "default for shared datasets"
    return f"{how}{who}"


def _resolve(principal: str, info: DatasetInfo, grants: list[Grant]) -> Access:
    best: Grant | None = None
    for g in grants:
        if matches(g.dataset, info) and (best is None or RANK[g.level] > RANK[best.level]):
            best = g
    if best is None:
        return Access(principal, info.name, None, f"no grant; {info.sensitivity} dataset")
    return Access(principal, info.name, best.level, describe(best, principal))


def check_dataset(dataset: str, known: Iterable[str]) -> str:
    """A dataset (or pattern, or ``role:<name>``) that may be granted; else a usage error."""
    if dataset.startswith(ROLE_PREFIX):
        check_principal(dataset[len(ROLE_PREFIX):])
        return dataset
    if not _PATTERN.match(dataset):
        raise UsageError(f"'{dataset}' is not a dataset name or pattern",
                         "use a view name such as transaction_stream, a pattern such as "
                         "transaction_* or streams/*, or role:<name> for a role membership")
    names = sorted(set(known))
    if any(ch in dataset for ch in f"{_WILDCARDS}/") or dataset in names:
        return dataset
    close = _close(dataset, names) or fnmatch.filter(names, f"*{dataset}*")[:1]
    hint = f"did you mean '{close[0]}'?" if close else "see `lakestream permissions list`"
    raise UsageError(f"unknown dataset '{dataset}'", hint)


def _close(name: str, names: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, names, n=1)
