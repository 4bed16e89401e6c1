"""Shared fixtures: the gold stores of the weather tests (SQLite, then PostgreSQL) and the
webhook receiver of the orchestration tests."""

from tests.medallion.conftest import gold_url, postgres_problem, postgres_url
from tests.orchestrate.conftest import receiver

__all__ = ["gold_url", "postgres_problem", "postgres_url", "receiver"]
