"""One flush round at a time beside the consuming loop.

Without it the loop stops consuming while a batch is decoded, written and
committed (58 % of a steady-state window was spent so, issue #16). With it the
loop hands the full buffers to one background thread and goes on filling new
ones; the next round starts when the previous one is done, so commits of a
partition stay in offset order. Exactly-once is untouched: what a round
commits is decided by the sink's own store, and the loop tells Kafka about an
offset only after the round that made it durable is over.

A rebalance and the end of the run first wait for the round in flight, so a
partition is never handed over (or the process closed) while its batch is
half written. A round that failed keeps its buffers: the consumer submits the
same round again once the sink is back (:mod:`lakestream.kafka.outage`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from lakestream.kafka.buffer import PartitionBuffer
from lakestream.memory import release_freed_memory

TopicPartitionKey = tuple[str, int]


class BackgroundFlusher:
    """Runs ``flush`` on one round of buffers at a time, in a thread of its own.

    Args:
        flush: Commits the buffers durably; returns the partitions it flushed.
    """

    def __init__(self, flush: Callable[[list[PartitionBuffer]], list[TopicPartitionKey]]) -> None:
        self._flush = flush
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakestream-flush")
        self._round: Future[list[TopicPartitionKey]] | None = None

    @property
    def busy(self) -> bool:
        """Whether a round is still being written."""
        return self._round is not None and not self._round.done()

    @property
    def finished(self) -> bool:
        """Whether a round is over and waits to be collected (or raised) by :meth:`wait`."""
        return self._round is not None and self._round.done()

    def submit(self, buffers: list[PartitionBuffer]) -> None:
        """Start a round (the previous one must have been collected with :meth:`wait`)."""
        if self._round is not None:
            raise RuntimeError("a flush round is still uncollected")
        self._round = self._executor.submit(self._flush_and_release, buffers)

    def _flush_and_release(self, buffers: list[PartitionBuffer]) -> list[TopicPartitionKey]:
        try:
            flushed = self._flush(buffers)
            buffers.clear()  # the round's messages are garbage now, not at the next round
            return flushed
        finally:
            release_freed_memory()

    def wait(self) -> list[TopicPartitionKey]:
        """Wait for the round in flight; its partitions (raises what the round raised)."""
        round_, self._round = self._round, None
        return [] if round_ is None else round_.result()

    def close(self) -> None:
        """Stop the thread (after the round in flight, if any)."""
        self._executor.shutdown(wait=True)
