"""The one run id and the one run-log writer, as every kind of run uses them."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakestream.config import S3Settings
from lakestream.errors import WarehouseUnavailableError
from lakestream.lake.storage import open_storage
from lakestream.medallion.engines import DuckDBEngine
from lakestream.medallion.silver import SilverBuilder
from lakestream.quality import check_pipeline
from lakestream.retry import WAREHOUSE
from lakestream.warehouse.connection import make_engine
from lakestream.warehouse.loaders import bulk_loader
from lakestream.warehouse.runlog import RunLog, SafeRunLog, new_run_id
from lakestream.warehouse.sync import Syncer

RUN_ID = re.compile(r"(?P<pipeline>[a-z_]+)-(?P<at>\d{8}T\d{6})-[0-9a-f]{6}")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = make_engine(sa.make_url(f"sqlite:///{tmp_path / 'log.db'}"))
    try:
        yield made
    finally:
        made.dispose()


def test_a_run_id_names_its_pipeline_and_utc_start_and_is_unique() -> None:
    at = dt.datetime(2026, 12, 5, 9, 30, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ids = {new_run_id("weather", at) for _ in range(200)}
    assert len(ids) == 200
    found = RUN_ID.fullmatch(next(iter(ids)))
    assert found is not None
    assert (found["pipeline"], found["at"]) == ("weather", "20261205T073001")  # in UTC
    assert new_run_id("weather", at) < new_run_id("weather", at + dt.timedelta(seconds=1))


def test_every_kind_of_run_makes_its_id_the_same_way(tmp_path: Path, engine: sa.Engine) -> None:
    storage = open_storage(str(tmp_path / "lake"), S3Settings())
    duck = DuckDBEngine(storage)
    try:
        silver = SilverBuilder(storage, duck).run_id
    finally:
        duck.close()
    made = {
        "silver": silver,
        "quality": check_pipeline("transactions", storage).run_id,
        "sync": Syncer(engine, storage, bulk_loader("sqlite"), WAREHOUSE).run_id,
    }
    assert {name: RUN_ID.fullmatch(run_id) is not None for name, run_id in made.items()} == \
        dict.fromkeys(made, True)
    assert [made[k].split("-")[0] for k in ("silver", "quality", "sync")] == \
        ["weather", "transactions", "transactions"]
    given = Syncer(engine, storage, bulk_loader("sqlite"), WAREHOUSE, run_id="dag-run-7")
    assert given.run_id == "dag-run-7"  # a sync that is a task of a run logs under its id


def test_the_log_records_attempts_whole_or_in_two_steps(engine: sa.Engine) -> None:
    runlog = RunLog(lambda: engine)  # the database is made on first use
    row = runlog.started("r-1", "weather", "load_gold", 1)
    runlog.finished(row, "failed", error="x" * 5000)
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    runlog.record("r-1", "weather", "load_gold", 2, "success", started, 10, 9)
    runlog.not_run("r-1", "weather", ["quality_check"], "upstream_failed", "not run")
    rows = runlog.rows("r-1")
    assert [(r["task"], r["attempt"], r["status"]) for r in rows] == [
        ("load_gold", 1, "failed"), ("load_gold", 2, "success"),
        ("quality_check", 0, "upstream_failed")]
    assert len(rows[0]["error"]) == 4000
    assert rows[1]["started_at"] == started.replace(tzinfo=None)
    assert rows[1]["ended_at"] > rows[1]["started_at"] and rows[1]["rows_out"] == 9
    last = runlog.last_started("weather", ["load_gold"])
    assert last is not None and last.tzinfo is not None


def test_a_log_that_cannot_be_reached_is_a_warning_never_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    def unreachable() -> sa.Engine:  # as the gold store says when it cannot be reached
        raise WarehouseUnavailableError("the gold store at postgresql://db/weather_dw is "
                                        "unavailable")

    safe = SafeRunLog(RunLog(unreachable, replace(WAREHOUSE, attempts=1)))
    with caplog.at_level(logging.WARNING, logger="lakestream.warehouse.runlog"):
        row = safe.started("r-1", "weather", "load_gold", 1)
        safe.finished(row, "success")
        safe.record("r-1", "weather", "sync:dim_users", 1, "success", dt.datetime.now(dt.UTC))
    assert row is None
    assert [r.getMessage() for r in caplog.records] == [
        "could not log weather.load_gold in pipeline_execution_log: the gold store at "
        "postgresql://db/weather_dw is unavailable",
        "could not log weather.sync:dim_users in pipeline_execution_log: the gold store at "
        "postgresql://db/weather_dw is unavailable",
    ]
