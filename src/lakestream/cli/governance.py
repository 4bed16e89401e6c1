"""Commands of governance: ``retention``, ``permissions grant|revoke|list|check``, ``audit``."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.errors import LakestreamError
from lakestream.governance.names import LEVELS
from lakestream.governance.names import RETENTION_LAYERS as LAYERS
from lakestream.output import console, print_rows

if TYPE_CHECKING:
    from lakestream.governance.permissions import Explanation
    from lakestream.governance.retention import RetentionPlan
    from lakestream.governance.retention_run import DatasetOutcome

_RELATIVE = re.compile(r"^(\d+)([dhm])$")


class Since(click.ParamType):
    """A date, an ISO time (UTC unless it says otherwise) or an age such as ``7d``, ``12h``."""

    name = "DATE|AGE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.datetime:
        """Parse ``value`` into an aware UTC datetime."""
        if isinstance(value, dt.datetime):
            return value
        text = str(value).strip()
        match = _RELATIVE.match(text)
        if match:
            unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
            return dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(match.group(1))})
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"'{text}' is not a date (2025-01-15), a time (2025-01-15T08:00) or an "
                      "age (7d, 12h, 30m)", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# -- retention --------------------------------------------------------------------------------


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted; change nothing.")
@click.option("--feed", "-f", default=None, help="Only this feed's data (all of its layers).")
@click.option("--layer", type=click.Choice(LAYERS), default=None, help="Only this layer.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--grace-hours", type=click.IntRange(min=0), default=None,
              help="Delta datasets: delete files a commit removed only this many hours "
                   "later [default: lake.vacuum_grace_hours, 24].")
@pass_ctx
def retention(ctx: Context, dry_run: bool, feed: str | None, layer: str | None,
              fmt: str, grace_hours: int | None) -> None:
    """Delete data older than its retention: date partitions, table versions, gold rows.

    \b
    Defaults (override per feed with retention_days / retention_versions):
      streams 365 days, tables 7 versions (lake.table_versions),
      bronze 30 days, silver 90 days, gold 365 days (weather.*_retention_days).
    Today's partition and a table's current version are never deleted. A real
    run deletes exactly what --dry-run lists, updates _metadata.json and
    records each dataset's deletions in the audit log.

    \b
    On Delta datasets the old partitions leave the table in ONE commit per
    dataset (every reader sees all of them or none gone); their files stay
    on storage for the grace period so running readers keep reading, and a
    later run vacuums them (with compaction's leftovers). --dry-run lists
    the partitions, their files and the files the vacuum deletes.

    \b
    Examples:
      lakestream retention --dry-run --format json
      lakestream retention --feed transaction_stream --dry-run
      lakestream retention --layer tables
    """
    governance = ctx.api.governance
    plan = governance.retention_plan(feed, layer, grace_hours=grace_hours)
    outcomes = [] if dry_run else governance.retention_run(plan)
    storage = ctx.api.storage
    if fmt == "json":
        report = plan.as_json(storage, dry_run)
        report["deleted"] = [{"dataset": o.view, **o.detail(),
                              "removed_files": [storage.url(f) for f in o.removed],
                              "vacuumed_files": [storage.url(f) for f in o.vacuumed]}
                             for o in outcomes]
        click.echo(json.dumps(report, indent=2))
        return
    table = Table("layer", "dataset", "partition", "files", "bytes", "rows")
    for d in plan.deletions:
        table.add_row(d.layer, d.view, d.partition, f"{len(d.files):,}", f"{d.bytes:,}",
                      f"{d.rows:,}")
    if plan.deletions:
        console.print(table)
    totals = plan.totals()
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {totals['partitions']:,} partition(s)/version(s), "
                  f"{totals['files']:,} file(s), {totals['bytes']:,} bytes, {totals['rows']:,} "
                  f"row(s) as of {plan.today}", soft_wrap=True)
    _print_vacuum(plan, outcomes, dry_run)


def _print_vacuum(plan: RetentionPlan, outcomes: list[DatasetOutcome], dry_run: bool) -> None:
    """The vacuum of Delta datasets: files removed from the log over the grace period ago."""
    if not plan.vacuum:
        return
    done = {o.dataset: len(o.vacuumed) for o in outcomes}
    for v in plan.vacuum:
        count = len(v.files) if dry_run else done.get(v.dataset, 0)
        console.print(f"vacuum {v.dataset}: {'would delete' if dry_run else 'deleted'} "
                      f"{count:,} file(s) ({v.bytes:,} bytes) removed from the table over "
                      f"{plan.grace_hours} h ago", soft_wrap=True)
        if dry_run:
            for path in v.files:
                console.print(f"  {path}", soft_wrap=True, highlight=False)


# -- permissions ------------------------------------------------------------------------------


@cli.group()
def permissions() -> None:
    """Who may read which dataset: grants, roles, checks, folder modes.

    \b
    Raw and restricted datasets need a grant; shared ones (anonymized
    streams, aggregates, weather) are readable by the `analyst` role, and
    the `admin` role reads everything. Grants take names or patterns
    (`transaction_*`, `streams/*`, `weather_*`):
      lakestream permissions assign alice analyst
      lakestream permissions assign root admin
      lakestream permissions grant bob 'streams/*'
      lakestream permissions explain bob transaction_stream
    Enforced by `lakestream query --as PRINCIPAL` and the API.
    """


@permissions.command("grant")
@click.argument("principal")
@click.argument("dataset")
@click.option("--level", type=click.Choice(LEVELS), default="read", show_default=True,
              help="read < write < admin (a level includes the lower ones).")
@pass_ctx
def permissions_grant(ctx: Context, principal: str, dataset: str, level: str) -> None:
    """Give PRINCIPAL a level on DATASET (a view name, a pattern, or role:<name>).

    \b
    A pattern with a / matches folders (streams/*, silver/*); without, view
    names (transaction_*) and, in bronze/silver/gold, the name inside the
    layer (weather_* covers silver_weather_cleaned).
    Examples:
      lakestream permissions grant bob transaction_stream --level read
      lakestream permissions grant ops 'transaction_*' --level admin
      lakestream permissions grant feeds-reader 'streams/*'
      lakestream permissions grant alice role:analyst
    """
    grant = ctx.api.governance.grant(principal, dataset, level)
    what = f"membership of {dataset}" if dataset.startswith("role:") else f"{level} on {dataset}"
    console.print(f"granted {what} to {grant.principal}", soft_wrap=True)


@permissions.command("revoke")
@click.argument("principal")
@click.argument("dataset")
@pass_ctx
def permissions_revoke(ctx: Context, principal: str, dataset: str) -> None:
    """Take PRINCIPAL's grant on DATASET (or role membership) away.

    \b
    Example:
      lakestream permissions revoke bob transaction_stream
    """
    if ctx.api.governance.revoke(principal, dataset):
        console.print(f"revoked {principal}'s grant on {dataset}", soft_wrap=True)
    else:
        console.print(f"{principal} has no grant on {dataset}; nothing changed", soft_wrap=True)


@permissions.command("assign")
@click.argument("principal")
@click.argument("role")
@pass_ctx
def permissions_assign(ctx: Context, principal: str, role: str) -> None:
    """Make PRINCIPAL a member of ROLE: it reads what ROLE reads.

    \b
    Built-in roles: analyst (shared datasets), admin (every dataset). Any
    principal holding grants is a role too. The membership is the grant
    role:ROLE; `permissions revoke PRINCIPAL role:ROLE` ends it.
    Examples:
      lakestream permissions assign alice analyst
      lakestream permissions assign root admin
    """
    ctx.api.governance.assign(principal, role)
    console.print(f"{principal} is now a member of role {role}", soft_wrap=True)


@permissions.command("explain")
@click.argument("principal")
@click.argument("dataset")
@pass_ctx
def permissions_explain(ctx: Context, principal: str, dataset: str) -> None:
    """Say which grant, role or default allows PRINCIPAL to read DATASET, or why not.

    \b
    Example:
      lakestream permissions explain alice silver_weather_cleaned
    """
    for line in explanation_lines(ctx.api.governance.explain(principal, dataset)):
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def explanation_lines(found: Explanation) -> list[str]:
    """The text of ``permissions explain``."""
    from lakestream.governance.permissions import describe

    access = found.access
    who, name = access.principal, access.dataset
    roles = ", ".join(found.roles) or "none"
    if access.level is not None:
        lines = [f"{who} may read {name}: level {access.level}, from the {access.via}",
                 f"  roles of {who}: {roles}", "  grants that cover it (the highest decides):"]
        lines += [f"    {g.level:<6} {describe(g, who)}" for g in found.allowing]
    else:
        lines = [f"{who} may not read {name}: no grant of {who} or of its roles covers it",
                 f"  roles of {who}: {roles}",
                 f"  {name} is {found.sensitivity}: " + (
                     "the analyst role reads it (lakestream permissions assign "
                     f"{who} analyst)" if found.sensitivity == "shared" else
                     "only an explicit grant (or the admin role) opens it"),
                 f"  to allow: lakestream permissions grant {who} {name} --level read"]
    if found.others:
        lines.append("  other grants (they do not cover it):")
        lines += [f"    {g.level:<6} {describe(g, who)}" for g in found.others]
    return lines


@permissions.command("list")
@click.option("--principal", "-p", default=None, help="Only this principal's grants.")
@click.option("--dataset", "-d", default=None, help="Only grants on this dataset.")
@click.option("--no-defaults", is_flag=True, help="Hide the built-in grants of the analyst role.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def permissions_list(ctx: Context, principal: str | None, dataset: str | None,
                     no_defaults: bool, fmt: str) -> None:
    """List grants and role memberships (and the built-in defaults).

    \b
    Examples:
      lakestream permissions list
      lakestream permissions list --principal bob --format json
    """
    grants = ctx.api.governance.grants(principal, dataset, defaults=not no_defaults)
    rows = [(g.principal, g.dataset, g.level, g.source, g.granted_by,
             g.granted_at.isoformat(timespec="seconds") if g.granted_at else None)
            for g in grants]
    print_rows(["principal", "dataset", "level", "source", "granted_by", "granted_at"], rows, fmt)


@permissions.command("check")
@click.argument("principal")
@click.argument("dataset")
@click.option("--level", type=click.Choice(LEVELS), default="read", show_default=True,
              help="The level to check for.")
@pass_ctx
def permissions_check(ctx: Context, principal: str, dataset: str, level: str) -> None:
    """Say whether PRINCIPAL may use DATASET at --level (exit 0 if so, 1 if not).

    \b
    Example:
      lakestream permissions check bob transaction_stream && echo allowed
    """
    access = ctx.api.governance.check(principal, dataset)
    if not access.allows(level):
        held = f"has {access.level}" if access.level else "has no access"
        raise LakestreamError(f"{principal} may not {level} {access.dataset}: {held} "
                              f"({access.via})")
    console.print(f"{principal} may {level} {access.dataset}: level {access.level} "
                  f"({access.via})", soft_wrap=True)


@permissions.command("apply-modes")
@pass_ctx
def permissions_apply_modes(ctx: Context) -> None:
    """Set local lake folder modes by sensitivity: restricted 0750, shared 0755.

    Files get 0640 / 0644. S3 lakes have no modes (use bucket policies).
    `lakestream ingest` creates new dataset folders with these modes already.

    \b
    Example:
      lakestream permissions apply-modes
    """
    changes = ctx.api.governance.apply_modes()
    if not ctx.api.storage.is_local:
        console.print("the lake is on S3: folder modes do not apply; use bucket policies")
        return
    for c in changes:
        console.print(f"{c.mode}  {c.dataset}  ({c.changed} entries changed)", soft_wrap=True)
    console.print(f"{len(changes)} dataset folder(s) checked", soft_wrap=True)


# -- audit ------------------------------------------------------------------------------------


@cli.command()
@click.option("--principal", "-p", default=None, help="Only what this principal did.")
@click.option("--since", type=Since(), default=None,
              help="Only events since a date (2025-01-15), a time, or an age (7d, 12h).")
@click.option("--action", "-a", default=None,
              help="Only this action (read, read_denied, grant, revoke, retention_delete, ...).")
@click.option("--dataset", "-d", default=None, help="Only events on this dataset.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many events, newest first.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def audit(ctx: Context, principal: str | None, since: dt.datetime | None, action: str | None,
          dataset: str | None, limit: int, fmt: str) -> None:
    """Show the audit trail: reads, refusals, grants, revokes, retention deletions.

    \b
    Examples:
      lakestream audit --since 7d
      lakestream audit --principal bob --action read_denied --format json
    """
    entries = ctx.api.governance.audit_entries(principal, since, action, dataset, limit)
    rows = [(e.at.isoformat(timespec="seconds"), e.principal, e.action, e.dataset,
             json.dumps(e.detail, sort_keys=True) if fmt != "json" else e.detail)
            for e in entries]
    print_rows(["at", "principal", "action", "dataset", "detail"], rows, fmt)
