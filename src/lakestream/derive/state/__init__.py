"""The processor's state store: exact aggregate state and input positions (docs/ksqldb.md).

:class:`StateStore` keeps, per aggregate table of the program, the state of every key
(and window) per input partition, the distinct values of ``COUNT_DISTINCT``, and per
input partition its next offset and stream time — changed in one transaction per
batch, on SQLite (the default file), PostgreSQL or MariaDB (``state_url``).
:mod:`.merge` says how states combine, :mod:`.legacy` how a state file of the format
before this store is migrated.
"""

from __future__ import annotations

from pathlib import Path

from lakestream.derive.state.errors import (
    ProgramChangedError,
    StateStoreError,
    StateStoreRefusedError,
    StateStoreUnavailableError,
)
from lakestream.derive.state.legacy import pending_dead_letters
from lakestream.derive.state.merge import StateMerger
from lakestream.derive.state.schema import TableLayout, key_hash_sql, value_hash_sql
from lakestream.derive.state.store import StateStore, StoreTransaction, state_url


class AggregateState(StateStore):
    """The default store: the SQLite file at ``path`` (the processor's state file).

    The name is the one the state file's reader had before the store was generic; tools
    that only look at offsets (fault-injection tests, ``lake upgrade``) open it so.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite:///{path}")


__all__ = [
    "AggregateState",
    "ProgramChangedError",
    "StateMerger",
    "StateStore",
    "StateStoreError",
    "StateStoreRefusedError",
    "StateStoreUnavailableError",
    "StoreTransaction",
    "TableLayout",
    "key_hash_sql",
    "pending_dead_letters",
    "state_url",
    "value_hash_sql",
]
