"""The feeds' dead letters as the ``dlq`` commands and the dashboard see them.

Reading (:mod:`lakestream.lake.dead_letter_report`), replaying
(:mod:`lakestream.ingest.replay`) and purging
(:func:`lakestream.lake.dead_letters.purge_dead_letters`, audited) behind one object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from lakestream.errors import UsageError
from lakestream.feeds import Feed, FeedRegistry
from lakestream.governance.audit import AuditLog
from lakestream.governance.service import current_user
from lakestream.ingest.replay import DeadLetterReplay, ReplayReport
from lakestream.lake.dead_letter_report import (
    DeadLetter,
    LetterFilter,
    ReasonGroup,
    dead_letters,
    reason_groups,
)
from lakestream.lake.dead_letters import dead_letter_table, purge_dead_letters
from lakestream.lake.delta import DeltaDataset, check_not_legacy
from lakestream.lake.delta_maintenance import PartitionDelete
from lakestream.lake.layout import dlq_path
from lakestream.lake.storage import Storage


class DeadLetters:
    """Dead letters of the stream feeds.

    Args:
        storage: The lake.
        feeds: The feed registry.
        audit: The audit trail a purge is recorded in (opened on first use).
    """

    def __init__(self, storage: Storage, feeds: FeedRegistry,
                 audit: Callable[[], AuditLog]) -> None:
        self.storage = storage
        self.feeds = feeds
        self._audit = audit

    def feeds_of(self, name: str | None) -> list[Feed]:
        """The stream feeds a command is about (``None``: all of them).

        Raises:
            UnknownNameError: No feed is called ``name``.
            UsageError: ``name`` is a table feed (table feeds have no dead letters).
        """
        if name is None:
            return [f for f in self.feeds if f.kind == "stream"]
        feed = self.feeds.get(name)
        if feed.kind != "stream":
            raise UsageError(f"feed '{name}' is a table feed: only stream feeds have dead "
                             "letters", "lakestream feeds list shows each feed's kind")
        return [feed]

    def groups(self, feed: Feed, where: LetterFilter | None = None) -> list[ReasonGroup]:
        """A feed's dead letters grouped by reason, the largest group first."""
        return reason_groups(self.storage, self.table(feed), where or LetterFilter())

    def records(self, feed: Feed, where: LetterFilter | None = None,
                limit: int | None = 20) -> tuple[list[DeadLetter], int]:
        """A feed's dead letters (at most ``limit``) and how many match."""
        return dead_letters(self.storage, self.table(feed), where or LetterFilter(), limit)

    def replay(self, feed: Feed, where: LetterFilter | None = None, dry_run: bool = False,
               progress: Callable[[str], None] | None = None) -> ReplayReport:
        """Decode a feed's dead letters again; land those that pass, exactly once."""
        return DeadLetterReplay(self.storage, feed, progress).run(where, dry_run)

    def purge(self, feed: Feed, before: dt.date, dry_run: bool = False,
              actor: str | None = None) -> PartitionDelete:
        """Remove a feed's dead letters of the days before ``before``, recorded in the
        audit trail (``dlq_purge``)."""
        audit = None
        if not dry_run:
            audit = self._audit()
            audit.entries(limit=1)  # the audit trail must be writable before anything goes
        result = purge_dead_letters(self.table(feed), before, dry_run)
        if audit is not None and result.partitions:
            audit.record(actor or current_user(), "dlq_purge", feed.name, {
                "before": before.isoformat(), "days": ["-".join(p) for p in result.partitions],
                "files": len(result.files), "records": result.records,
                "version": result.version})
        return result

    def table(self, feed: Feed) -> DeltaDataset:
        """The feed's dead-letter table (refused if written before Delta)."""
        check_not_legacy(self.storage, dlq_path(feed.name))
        return dead_letter_table(self.storage, feed.name)
