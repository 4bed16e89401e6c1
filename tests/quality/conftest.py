"""Shared fixtures: the gold stores of the weather tests (SQLite, then PostgreSQL) and the
webhook receiver of the orchestration tests."""

from tests.medallion.conftest import gold_url, postgres_url
from tests.orchestrate.conftest import receiver
from tests.support.databases import server_status

__all__ = ["gold_url", "postgres_url", "receiver", "server_status"]
