"""The batch side of Lakestream in one object, as the facade hands it out (``api.batch``).

Batch loads (``lakestream export``) are this package's; reports, compaction
and feed deletion come from :class:`~lakestream.housekeeping.Housekeeping`.
Each method is one user-facing operation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from lakestream.batchload import beam
from lakestream.batchload.service import ExportResult, ExportService, Runner, Source
from lakestream.config import Settings
from lakestream.errors import UsageError
from lakestream.feeds import FeedRegistry
from lakestream.housekeeping import Housekeeping
from lakestream.lake.storage import Storage


class BatchService(Housekeeping):
    """Batch loads, reports, compaction and feed deletion over one lake and one feed registry.

    Args:
        settings: The configuration.
        storage: The lake.
        registry: The feed registry.
        bootstrap: Returns the Kafka bootstrap servers (only called when Kafka is needed).
    """

    def __init__(self, settings: Settings, storage: Storage, registry: FeedRegistry,
                 bootstrap: Callable[[], str]) -> None:
        super().__init__(storage, registry)
        self.settings = settings
        self.exports = ExportService(settings, storage, registry, bootstrap)

    def export(self, everything: bool = False, stream: str | None = None,
               table: str | None = None, day: dt.date | None = None,
               pipeline: str | None = None, source: Source = "auto",
               on_feed: Callable[[int], None] | None = None,
               idle_timeout_s: float | None = None, runner: Runner = "builtin",
               beam_options: Sequence[str] = ()) -> list[ExportResult]:
        """``lakestream export --all | --stream S [--date D] | --table T``.

        ``idle_timeout_s``: a stream append stops once nothing arrived for this long.
        ``runner``: ``beam`` runs stream appends as an Apache Beam pipeline with
        ``beam_options`` (``KEY=VALUE``); tables and day rebuilds run as usual.
        """
        if idle_timeout_s is not None:
            self.exports.idle_timeout_s = idle_timeout_s
        if sum(x is not None and x is not False for x in (everything, stream, table)) != 1:
            raise UsageError("say what to export: --all, --stream NAME or --table NAME")
        if day is not None and stream is None:
            raise UsageError("--date rebuilds one day of a stream: use it with --stream")
        if pipeline is not None and not everything:
            raise UsageError("--pipeline narrows --all: use it with --all")
        if beam_options and runner != "beam":
            raise UsageError("--beam-option configures the Beam pipeline: add --runner beam")
        if runner == "beam" and table is not None:
            raise UsageError("--runner beam runs stream appends: use it with --all or --stream")
        if runner == "beam":
            beam.pipeline_options(beam_options)  # fail before any work: no Beam, a bad option
        self.exports.runner, self.exports.beam_options = runner, tuple(beam_options)
        if everything:
            return self.exports.export_all(pipeline, source, on_feed)
        if stream is not None:
            return self.exports.export_stream(stream, day, source)
        assert table is not None
        return [self.exports.export_table(table, source)]
