"""Fixtures of the consumer-group tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka.store_consumer import Running


@pytest.fixture
def consumers() -> Iterator[list[Running]]:
    """Consumers run in threads by the test; stopped at the end if still running."""
    running: list[Running] = []
    try:
        yield running
    finally:
        for run in running:
            if run.thread.is_alive():
                run.consumer.stop()
                run.thread.join(60)
