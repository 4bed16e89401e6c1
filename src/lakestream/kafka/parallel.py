"""Several consumers side by side in one process (``ingest --sink all``)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from lakestream.kafka.consumer import BatchingConsumer


def run_all(consumers: Sequence[BatchingConsumer]) -> list[Any]:
    """Run several consumers side by side (one thread each); their reports, in order.

    A failure of one stops the others and is raised once all have returned.
    """
    if len(consumers) == 1:
        return [consumers[0].run()]
    reports: list[Any] = [None] * len(consumers)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            reports[i] = consumers[i].run()
        except BaseException as exc:
            errors.append(exc)
            for other in consumers:
                other.stop()

    threads = [threading.Thread(target=work, args=(i,), name=f"consumer-{i}")
               for i in range(len(consumers))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    if errors:
        raise errors[0]
    return reports
