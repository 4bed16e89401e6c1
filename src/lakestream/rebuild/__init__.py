"""Day rebuilds: one day of a stream read again from its source and replaced in one commit.

``lakestream export --stream S --date D``: the records of the day come back
from Kafka or ksqlDB (:mod:`.readers`), are turned into the feed's rows exactly
as the ingest turns them (:mod:`.records`), accounted for against what the day
held (:mod:`.day`: read = landed + dead letters) and committed over the day's
files on the Delta table (:mod:`.delta`).
"""
