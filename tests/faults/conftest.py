"""Fixtures of the fault-injection suite (marker ``faults``, run by ``make faults``).

Each scenario gets its own broker / object store when it stops or restarts
them, its own topics otherwise, and every child process it starts is killed by
PID at teardown. The counts of a run (kills survived, records checked, fuzz
cases tried) are printed at the end of the session and kept in pytest's cache
under ``faults/last_run``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakestream.kafka.broker import EmbeddedBroker
from tests.faults.backends import pg_database  # noqa: F401 (a fixture of the fault tests)
from tests.faults.chaos import Children
from tests.support.seaweedfs import SeaweedFS

SEED = 20261122  # every random choice of the suite derives from it
ANON_KEY = "fault-suite-anonymization-key"


class FaultCounts:
    """What the suite survived and checked, per scenario."""

    def __init__(self) -> None:
        self.kills: Counter[str] = Counter()  # SIGKILLs of real processes
        self.faults: Counter[str] = Counter()  # other faults: outages, hangs, full disks
        self.records: Counter[str] = Counter()
        self.fuzz: Counter[str] = Counter()
        self.notes: dict[str, str] = {}

    def as_dict(self) -> dict[str, Any]:
        """Totals and per-scenario counts."""
        return {
            "kills_survived": sum(self.kills.values()),
            "other_faults_survived": sum(self.faults.values()),
            "records_checked": sum(self.records.values()),
            "fuzz_cases": sum(self.fuzz.values()),
            "kills": dict(self.kills), "faults": dict(self.faults),
            "records": dict(self.records), "fuzz": dict(self.fuzz),
            "notes": dict(self.notes),
        }


COUNTS = FaultCounts()


@pytest.fixture(scope="session")
def counts() -> FaultCounts:
    """The session's counters (printed at the end)."""
    return COUNTS


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the counts of the fault scenarios that ran."""
    data = COUNTS.as_dict()
    if not (data["kills"] or data["faults"] or data["records"] or data["fuzz"]):
        return
    terminalreporter.section("fault injection")
    terminalreporter.write_line(
        f"kills survived: {data['kills_survived']:,}  other faults survived: "
        f"{data['other_faults_survived']:,}  records checked: {data['records_checked']:,}  "
        f"fuzz cases tried: {data['fuzz_cases']:,}")
    for kind in ("kills", "faults", "records", "fuzz"):
        for scenario, n in sorted(data[kind].items()):
            terminalreporter.write_line(f"  {kind:<8} {scenario:<44} {n:>9,}")
    for what, note in sorted(data["notes"].items()):
        terminalreporter.write_line(f"  note     {what}: {note}")
    if getattr(config, "cache", None) is not None:
        config.cache.set("faults/last_run", json.loads(json.dumps(data)))


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    """Start `lakestream` children; any still running at teardown is killed by PID."""
    pool = Children(tmp_path / "logs")
    try:
        yield pool
    finally:
        pool.kill_all()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A memory-engine broker of this test only (fixed topic names like `transactions`)."""
    with EmbeddedBroker(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def own_seaweedfs(tmp_path: Path) -> Iterator[SeaweedFS]:
    """A SeaweedFS S3 server of this test only: it may be stopped, killed and restarted."""
    server = SeaweedFS(tmp_path / "seaweedfs")
    server.start()
    try:
        yield server
    finally:
        server.stop()
