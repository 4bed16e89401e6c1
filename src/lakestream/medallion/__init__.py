"""The weather medallion pipeline: bronze (landed by ``ingest``) → silver → gold.

:mod:`.sql` holds the silver rules, written once for DuckDB and Spark;
:mod:`.engines` and :mod:`.spark_engine` run them; :mod:`.silver` makes the
step incremental and atomic per partition; :mod:`.gold_schema` and
:mod:`.gold` load the gold store.
"""

from lakestream.medallion.engines import MedallionError, open_engine
from lakestream.medallion.gold import GoldReport, GoldStore, load_gold
from lakestream.medallion.silver import SilverBuilder, SilverReport

__all__ = [
    "GoldReport",
    "GoldStore",
    "MedallionError",
    "SilverBuilder",
    "SilverReport",
    "load_gold",
    "open_engine",
]
