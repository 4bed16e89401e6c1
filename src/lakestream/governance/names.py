"""Names governance shares with the command line, kept free of heavy imports.

The CLI builds its ``--level`` and ``--layer`` choices from these at start-up;
importing them must not pull in SQLAlchemy or pyarrow.
"""

from __future__ import annotations

LEVELS = ("read", "write", "admin")
"""Permission levels, lowest first; a level includes the ones before it."""

RETENTION_LAYERS = ("streams", "dlq", "tables", "bronze", "silver", "gold")
"""The layers a retention policy applies to."""
