"""Fault-injection tools: `lakestream` children killed by PID, a steady producer, progress probes.

Everything here acts on processes this test started (by PID, never by name) and
reads results back without Lakestream's own code (DuckDB over the files, a bare
Kafka consumer), so a check cannot share a bug with the code under test.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lakestream.sources.generator import TransactionGenerator
from tests.conftest import subprocess_env
from tests.ingest.helpers import lake_rows, log_entries

LAKESTREAM = [sys.executable, "-m", "lakestream"]


# -- children -------------------------------------------------------------------------------


@dataclass
class Child:
    """One `lakestream` child process; its stdout and stderr go to a log file."""

    name: str
    args: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> Child:
        """Spawn the process (in its own session, so a kill reaches only it)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n===== {time.strftime('%H:%M:%S')} start {' '.join(self.args)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen([*LAKESTREAM, *self.args], cwd=self.cwd, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once it ended."""
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (flush and commit, then exit); the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        """Everything the process printed (all starts of this child)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Children:
    """Every child a test starts; whatever still runs at teardown is killed by PID."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Child] = []

    def spawn(self, name: str, args: list[str], cwd: Path, **env: str) -> Child:
        """Start ``lakestream ARGS`` in ``cwd``, without any LAKESTREAM_* from the shell."""
        child = Child(name, list(args), cwd, subprocess_env(**env), self.logs / f"{name}.log")
        self.started.append(child.start())
        return child

    def run(self, name: str, args: list[str], cwd: Path, timeout: float = 240,
            env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run to the end with ``env`` set; (exit status, output of this run).

        ``env`` is a mapping, not ``**env`` as :meth:`spawn` takes: a variable named
        ``timeout`` would otherwise set the timeout.
        """
        child = self.spawn(name, args, cwd, **(env or {}))
        before = len(child.output())
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise AssertionError(f"`lakestream {' '.join(args)}` hung for {timeout:.0f}s:\n"
                                 f"{child.output()[-3000:]}") from None
        return code, child.output()[before:]

    def kill_all(self) -> None:
        """Kill whatever is still running."""
        for child in self.started:
            child.kill()


# -- configuration --------------------------------------------------------------------------


def write_config(folder: Path, name: str = "lakestream.yaml", **sections: Any) -> Path:
    """A project config below ``folder``: data, feeds and lake there, fault-test timings."""
    config: dict[str, Any] = {
        "data_dir": str(folder / "data"),
        "feeds_dir": str(folder / "feeds"),
        "kafka": {"session_timeout_ms": 2000, "partitions": 4},
        "lake": {"root": str(folder / "lake"), "flush_interval_s": 0.3,
                 "max_batch_records": 200, "snapshot_interval_s": 1.0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


# -- a steady producer ----------------------------------------------------------------------


FIXED_CLOCK = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.UTC)


class SteadyProducer(threading.Thread):
    """Produces generator events (or ``messages``, until they run out) at ``rate``/s until
    stopped; remembers what was acknowledged.

    Idempotent (no duplicate on a retried send), so the topic holds each event once.
    """

    def __init__(self, bootstrap: str, topic: str, rate: float, seed: int,
                 extra: Iterable[tuple[bytes | None, bytes]] = (),
                 idempotent: bool = True,
                 messages: Iterable[tuple[bytes | None, bytes]] | None = None) -> None:
        super().__init__(name=f"producer-{topic}", daemon=True)
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.generator = TransactionGenerator(seed=seed, now=lambda: FIXED_CLOCK)
        self.extra = list(extra)
        self.idempotent = idempotent
        self.messages = None if messages is None else iter(messages)  # then: these, and stop
        self.acked: list[bytes] = []
        self.failed: list[str] = []
        self.sent = 0
        self._stop_event = threading.Event()

    def stop(self, timeout: float = 120) -> None:
        """Stop sending, wait for every acknowledgement."""
        self._stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        assert not self.failed, f"events not acknowledged: {self.failed[:3]}"
        assert len(self.acked) == self.sent

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5,
                             "log_level": 0,
                             "enable.idempotence": self.idempotent,
                             "message.timeout.ms": 120_000})

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                self.acked.append(msg.value())
            else:
                self.failed.append(str(err))

        start = time.monotonic()
        pending = list(self.extra)
        while not self._stop_event.is_set():
            if pending:
                key, value = pending.pop()
            elif self.messages is not None:
                following = next(self.messages, None)
                if following is None:
                    break
                key, value = following
            else:
                key, value = self.generator.message()
            while True:
                try:
                    producer.produce(self.topic, value, key=key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            self.sent += 1
            ahead = self.sent / self.rate - (time.monotonic() - start)
            producer.poll(max(0.0, min(ahead, 0.2)))
        while producer.flush(1.0):
            pass


# -- probes and kill loops ------------------------------------------------------------------


def files_state(root: Path, pattern: str) -> frozenset[tuple[str, int, int]]:
    """(path, size, mtime) of the files matching ``pattern`` below ``root``: changes on commit."""
    found = set()
    for path in root.glob(pattern):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        found.add((str(path), info.st_size, info.st_mtime_ns))
    return frozenset(found)


@dataclass
class KillReport:
    """What one kill loop did."""

    name: str
    mid_batch: int = 0
    early: int = 0
    waits: list[float] = field(default_factory=list)

    @property
    def kills(self) -> int:
        """Every SIGKILL."""
        return self.mid_batch + self.early


class KillLoop(threading.Thread):
    """Start a component, let it commit, SIGKILL it at a random moment; again and again.

    Args:
        spawn: Starts a fresh child of the component.
        probe: A value that changes whenever the component commits.
        rng: Seeded: the same delays on every run.
        mid_batch: Kills after commits were seen (they land between and inside batches).
        early: Kills during start-up, group join and recovery of crash leftovers.
        partner: Spawns a second member of the same consumer group; it runs from kill
            number ``partner_from`` to ``partner_until`` and is itself a kill victim.
    """

    def __init__(self, name: str, spawn: Callable[[], Child], probe: Callable[[], object],
                 rng: random.Random, mid_batch: int = 20, early: int = 4,
                 max_delay_s: float = 1.2, commit_timeout_s: float = 90.0,
                 partner: Callable[[], Child] | None = None,
                 partner_span: tuple[int, int] = (0, 0)) -> None:
        super().__init__(name=f"kill-{name}", daemon=True)
        self.spawn, self.probe, self.rng = spawn, probe, rng
        self.plan = ["mid"] * mid_batch + ["early"] * early
        rng.shuffle(self.plan)
        self.max_delay_s, self.commit_timeout_s = max_delay_s, commit_timeout_s
        self.partner, self.partner_span = partner, partner_span
        self.report = KillReport(name)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # re-raised in the test's thread by check()
            self.error = exc

    def check(self) -> KillReport:
        """Join; raise what went wrong in the loop."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.report

    def _run(self) -> None:
        current = self.spawn()
        other: Child | None = None
        first, last = self.partner_span
        for number, kind in enumerate(self.plan):
            if self.partner is not None and number == first:
                other = self.partner()
            if kind == "early":
                time.sleep(self.rng.uniform(0.2, 2.5))
            else:
                self._wait_for_commit(current)
                time.sleep(self.rng.uniform(0.0, self.max_delay_s))
            partner_dies = other is not None and kind == "mid" and self.rng.random() < 0.5
            victim = other if partner_dies and other is not None else current
            if kind == "mid" and other is not None:
                # two members: the group's commits may all be the other one's; give the
                # victim time to join (1-5 s on Tansu) before it is killed
                time.sleep(max(0.0, victim.started_at + self.rng.uniform(2.5, 5.0)
                               - time.monotonic()))
            self._kill(victim, kind)
            last_round = number == len(self.plan) - 1
            if victim is other:
                other = self.partner() if self.partner and number < last else None
            elif not last_round:
                current = self.spawn()
            if other is not None and number >= last:
                self._kill(other, "mid")
                other = None

    def _kill(self, victim: Child, kind: str) -> None:
        self._ensure_alive(victim)
        victim.kill()
        if kind == "mid":
            self.report.mid_batch += 1
        else:
            self.report.early += 1

    def _wait_for_commit(self, child: Child) -> None:
        baseline = self.probe()
        started = time.monotonic()
        while self.probe() == baseline:
            self._ensure_alive(child)
            if time.monotonic() - started > self.commit_timeout_s:
                raise AssertionError(f"{child.name}: no commit within {self.commit_timeout_s}s:\n"
                                     f"{child.output()[-3000:]}")
            time.sleep(0.05)
        self.report.waits.append(time.monotonic() - started)

    @staticmethod
    def _ensure_alive(child: Child) -> None:
        if not child.alive:
            raise AssertionError(f"{child.name} exited by itself (status {child.returncode}):\n"
                                 f"{child.output()[-3000:]}")


# -- independent reads ----------------------------------------------------------------------


def parquet_rows(lake: Path | str, dataset: str, columns: str,
                 storage_options: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a dataset as a Delta reader sees them (delta-rs and DuckDB, through its
    log: files a compaction removed or a fenced commit left unreferenced do not count)."""
    return lake_rows(lake, dataset, columns, storage_options)


def commits(lake: Path, *datasets: str) -> tuple[frozenset[str], ...]:
    """Per dataset, its Delta log entries: a value that changes with every commit."""
    return tuple(log_entries(lake, d) for d in datasets)


def topic_records(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[tuple[int, int, bytes]]:
    """Every record of ``topic`` as (partition, offset, value), by a bare consumer.

    Tansu's watermarks are not reliable (SPEC §2): read until nothing came for ``idle_s``.
    """
    from confluent_kafka import Consumer, TopicPartition

    from lakestream.kafka.client import topic_partitions

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, -2) for p in topic_partitions(bootstrap, topic)])
    records: list[tuple[int, int, bytes]] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < idle_s:
        for m in consumer.consume(5000, 0.3):
            if m.error() is None:
                partition, offset, value = m.partition(), m.offset(), m.value()
                # a record read without error has a place; these topics hold no tombstones
                assert partition is not None and offset is not None and value is not None, m
                records.append((partition, offset, value))
                idle_since = time.monotonic()
    consumer.close()
    return records


def settle(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll ``condition`` for up to ``timeout`` seconds; whether it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.2, children: Iterable[Child] = ()) -> None:
    """Poll ``condition`` until true; fail with ``what`` (and the children's output)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {c.name} (alive: {c.alive}):\n{c.output()[-2500:]}"
                           for c in children)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        time.sleep(interval)

