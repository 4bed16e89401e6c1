"""Bulk loaders, one per dialect, behind one interface (:class:`BulkLoader`)."""

from __future__ import annotations

from lakestream.warehouse.loaders.base import BulkLoader, Target, conform


def bulk_loader(dialect: str) -> BulkLoader:
    """The loader for ``dialect`` (``mysql`` covers MariaDB, ``postgresql``, ``sqlite``)."""
    if dialect == "mysql":
        from lakestream.warehouse.loaders.mysql import MySQLLoader

        return MySQLLoader()
    if dialect == "postgresql":
        from lakestream.warehouse.loaders.postgresql import PostgresLoader

        return PostgresLoader()
    from lakestream.warehouse.loaders.sqlite import SQLiteLoader

    return SQLiteLoader()


__all__ = ["BulkLoader", "Target", "bulk_loader", "conform"]
