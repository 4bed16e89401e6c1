"""The warehouse: star schema, bulk loaders per dialect, and the lake → warehouse sync.

Layers: :mod:`.schema` (tables) → :mod:`.ddl` (scripts) → :mod:`.connection`
and :mod:`.failures` (engines, errors, retries) → :mod:`.loaders` (Arrow →
database, per dialect) → :mod:`.lake_source` and :mod:`.facts` (what the lake
holds) → :mod:`.sync` → :mod:`.service` (what the facade calls).
"""

from lakestream.warehouse.failures import RetryPolicy
from lakestream.warehouse.service import InitReport, TableStatus, WarehouseService
from lakestream.warehouse.sync import SyncReport, TaskResult

__all__ = [
    "InitReport",
    "RetryPolicy",
    "SyncReport",
    "TableStatus",
    "TaskResult",
    "WarehouseService",
]
