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

# dead letters kept by a program rather than a feed: listed, shown and purged like a
# feed's, never replayed (why: PROGRAM_LETTERS' text, said when a replay is asked for)
PROGRAM_LETTERS = {
    "processor": ("`lakestream process`: events that failed their topic's contract or came "
                  "late for a window",
                  "an event the processor refused is not decoded again by a replay: send the "
                  "corrected event to the input topic (replaying an event late for a window "
                  "would also count it twice in the streams that took it)"),
    "warehouse": ("`lakestream ingest --sink warehouse`: records the star schema could not load",
                  "the warehouse loader's dead letters are not decoded again by a replay: fix "
                  "the record at its source and send it again"),
}


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
            UsageError: ``name`` is a table feed (table feeds have no dead letters), or
                a program's dead letters (never replayed: :data:`PROGRAM_LETTERS`).
        """
        if name in PROGRAM_LETTERS:
            raise UsageError(f"'{name}' dead letters cannot be replayed", PROGRAM_LETTERS[name][1])
        if name is None:
            return [f for f in self.feeds if f.kind == "stream"]
        feed = self.feeds.get(name)
        if feed.kind != "stream":
            raise UsageError(f"feed '{name}' is a table feed: only stream feeds have dead "
                             "letters", "lakestream feeds list shows each feed's kind")
        return [feed]

    def sources_of(self, name: str | None) -> list[str]:
        """The dead-letter tables a listing is about: a stream feed's, or a program's
        (``processor``, ``warehouse``); ``None``: every stream feed's, then the programs'
        that hold a table."""
        if name in PROGRAM_LETTERS:
            return [name]
        feeds = [f.name for f in self.feeds_of(name)]
        if name is not None:
            return feeds
        return feeds + [p for p in PROGRAM_LETTERS if self.table(p).table() is not None]

    def groups(self, source: str, where: LetterFilter | None = None) -> list[ReasonGroup]:
        """A feed's (or program's) dead letters grouped by reason, the largest group first."""
        return reason_groups(self.storage, self.table(source), where or LetterFilter())

    def records(self, source: str, where: LetterFilter | None = None,
                limit: int | None = 20) -> tuple[list[DeadLetter], int]:
        """A feed's (or program's) dead letters (at most ``limit``) and how many match."""
        return dead_letters(self.storage, self.table(source), where or LetterFilter(), limit)

    def replay(self, feed: Feed, where: LetterFilter | None = None, dry_run: bool = False,
               progress: Callable[[str], None] | None = None) -> ReplayReport:
        """Decode a feed's dead letters again; land those that pass, exactly once."""
        return DeadLetterReplay(self.storage, feed, progress).run(where, dry_run)

    def purge(self, source: str, before: dt.date, dry_run: bool = False,
              actor: str | None = None) -> PartitionDelete:
        """Remove a feed's (or program's) dead letters of the days before ``before``,
        recorded in the audit trail (``dlq_purge``)."""
        audit = None
        if not dry_run:
            audit = self._audit()
            audit.entries(limit=1)  # the audit trail must be writable before anything goes
        result = purge_dead_letters(self.table(source), before, dry_run)
        if audit is not None and result.partitions:
            audit.record(actor or current_user(), "dlq_purge", source, {
                "before": before.isoformat(), "days": ["-".join(p) for p in result.partitions],
                "files": len(result.files), "records": result.records,
                "version": result.version})
        return result

    def table(self, source: str) -> DeltaDataset:
        """A feed's (or program's) dead-letter table (refused if written before Delta)."""
        check_not_legacy(self.storage, dlq_path(source))
        return dead_letter_table(self.storage, source)
