"""Orchestration fixtures: a warehouse engine, a local webhook receiver, fake DAGs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lakestream.orchestrate.dag import Dag, DagPolicy, Task, TaskContext, TaskOutput, chain
from lakestream.orchestrate.executors import ThreadExecutor
from lakestream.orchestrate.notify import DeliveryPolicy, Notifier
from lakestream.orchestrate.runner import DagRunner
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.runlog import RunLog, SafeRunLog

FAST = DagPolicy(schedule="0 * * * *", retries=3, retry_delay_s=0.05, run_timeout_s=30,
                 sla_s=None)


class Receiver:
    """A local HTTP server that records the JSON POSTed to it.

    Attributes:
        fail_first: Answer HTTP 500 to this many requests before accepting.
    """

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                receiver.requests += 1
                if receiver.requests <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook/secret-token"

    def events(self) -> list[str]:
        return [b["event"] for b in self.bodies]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.bodies


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port."""
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """An SQLite warehouse engine, as the warehouse service makes it."""
    made = make_engine(sa.make_url(f"sqlite:///{tmp_path / 'warehouse.db'}"))
    try:
        yield made
    finally:
        made.dispose()


def fast_notifier(url: str | None) -> Notifier:
    """A notifier that retries quickly."""
    return Notifier(url, DeliveryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05,
                                        timeout_s=2))


def make_runner(dag: Dag, engine: sa.Engine, url: str | None = None) -> DagRunner:
    """A runner of ``dag`` with threads, the run log on ``engine``, a fast notifier."""
    return DagRunner(dag, ThreadExecutor(), SafeRunLog(RunLog(engine)), fast_notifier(url))


def task(name: str, fn: Callable[[TaskContext], Any] | None = None, **kw: Any) -> Task:
    """A task doing ``fn`` (default: returns 10 rows)."""
    return Task(name, fn or (lambda _ctx: TaskOutput(10, 10)), **kw)


def linear(name: str, *tasks: Task, policy: DagPolicy = FAST, **kw: Any) -> Dag:
    """A straight-line DAG."""
    return Dag(name, chain(*tasks), policy, **kw)


def log_rows(engine: sa.Engine, run_id: str) -> list[dict[str, Any]]:
    """The run log rows of one run."""
    return RunLog(engine).rows(run_id)
