"""Housekeeping of the lake, feed by feed: reports of what it holds, compaction, feed deletion.

The operations run over the datasets of the feed registry, on demand
(``lakestream metadata``, ``lakestream compact``, ``lakestream feeds delete``);
the lake does the work (:mod:`lakestream.lake.report`,
:mod:`lakestream.lake.compaction`).
"""

from lakestream.housekeeping.service import FeedData, Housekeeping

__all__ = ["FeedData", "Housekeeping"]
