"""Batch loads into the lake: what ``lakestream export`` does, feed by feed.

Streams append what is new through the ingest's exactly-once path, run by
Lakestream's consumer or as an Apache Beam pipeline (:mod:`.beam`); a day of
a stream is rebuilt (:mod:`lakestream.rebuild`); tables get a new version from
Kafka's changelog or a ksqlDB pull query (:mod:`.tables`). :mod:`.service` runs
them and logs each export; :class:`~.batch.BatchService` is the batch side the
facade hands out (``api.batch``).
"""
