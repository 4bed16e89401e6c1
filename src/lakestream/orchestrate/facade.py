"""What DAG tasks and the orchestrator need of the facade, as a Protocol.

The facade (:class:`lakestream.api.Lakestream`) sits one layer above
``orchestrate``: it hands itself down, and tasks call it. This module names
what they may call, so that no seam between the layers is typed ``Any``;
the facade satisfies it structurally (mypy checks it where the facade makes
its orchestrator).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from lakestream.pipelines.transactions import TransactionsApi

if TYPE_CHECKING:
    from lakestream.config import Settings
    from lakestream.pipelines.weather import WeatherService


class SuccessNotifier(Protocol):
    """Sends a run's success notification (the orchestrator, seen from a task)."""

    def notify_success(self, pipeline: str, run_id: str) -> bool:
        """Send it; ``False``: only logged (no webhook configured)."""


class TaskApi(TransactionsApi, Protocol):
    """The facade as DAG tasks use it: both pipelines, the broker, notifications."""

    @property
    def settings(self) -> Settings:
        """The configuration."""

    @property
    def weather(self) -> WeatherService:
        """The weather pipeline."""

    @property
    def orchestrator(self) -> SuccessNotifier:
        """Where ``notify_success`` sends the run's success."""

    def bootstrap(self) -> str:
        """The Kafka bootstrap servers (the embedded broker's, started on demand)."""

    def embedded_kafka(self) -> AbstractContextManager[str]:
        """The configured Kafka, or an embedded broker for the block's duration."""
