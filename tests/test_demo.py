"""`lakestream demo` end to end on embedded defaults; its summary equals the lake and warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.demo import run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _count(lake: Path, dataset: str) -> int:
    files = f"{lake}/{dataset}/**/*.parquet"
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{files}', union_by_name=true)")
    assert rows is not None  # None only for a statement without a result
    return int(rows.fetchall()[0][0])


def test_demo_summary_matches_the_lake_and_the_warehouse(tmp_path: Path) -> None:
    settings = load_settings(environ={"LAKESTREAM_DATA_DIR": str(tmp_path / "data")},
                             cwd=tmp_path)
    api = Lakestream(settings)
    run_demo(api, 300, seed=3)
    summary = run_demo(api, 300, seed=3)  # re-running is safe: the demo area is rebuilt

    lake = tmp_path / "data/demo/lake"
    feeds = summary["feeds"]
    raw = _count(lake, "streams/transaction_stream")
    assert feeds["transaction_stream"]["records"] == raw == 300
    assert feeds["transaction_stream"]["rejected_records"] == 5
    assert _count(lake, "_dlq/transaction_stream") == 5
    for stream in ("transaction_flattened", "transaction_stream_anonymized"):
        assert feeds[stream]["records"] == _count(lake, f"streams/{stream}") == 300
    version = feeds["user_transaction_summary"]["current_version"]
    users = _count(lake, f"tables/user_transaction_summary/version={version}")
    rows = dict((t, n) for t, n, _ in summary["warehouse"])
    assert rows["fact_user_transaction_summary"] == users == feeds["user_transaction_summary"][
        "records"]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data/demo/warehouse.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM fact_user_transaction_summary")
                            ).scalar() == users
    engine.dispose()
    transactions = summary["transactions"]  # one run of the transactions DAG, by the runner
    assert list(transactions["steps"]) == ["process", "ingest", "export_tables", "sync",
                                           "quality", "retention"]
    assert all(status == "success" for status, _, _ in transactions["steps"].values())
    assert transactions["run_id"].startswith("transactions-")
    weather = summary["weather"]
    assert all(status == "success" for status, _, _ in weather["steps"].values())
    assert weather["steps"]["ingest_data"][2] == 240  # 5 cities x 48 hours
