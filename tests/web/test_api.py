"""The JSON API against a real demo lake: every route, its numbers, its refusals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lakestream.lake.metadata import read_metadata
from lakestream.orchestrate.catalog import WEATHER_TASKS
from tests.web.conftest import TRANSACTIONS_DAG_RUNS, WEATHER_RUNS, DemoLake, Tokens

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lake_count(demo_lake: DemoLake, sql: str) -> Any:
    return demo_lake.api.query(sql)[1][0][0]


def audit_since(demo_lake: DemoLake, since: dt.datetime, principal: str) -> list[Any]:
    return demo_lake.api.governance.audit_entries(principal=principal, since=since)


# -- every route answers with the lake's numbers ------------------------------------------


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_whoami_names_the_principal_and_what_it_reads(client: TestClient,
                                                      tokens: Tokens) -> None:
    body = client.get("/api/whoami", headers=bearer(tokens.analyst)).json()
    assert body["principal"] == "ana"
    assert "transaction_stream_anonymized" in body["readable"]
    assert "transaction_stream" not in body["readable"]  # raw: restricted


def test_datasets_match_the_lake_metadata(client: TestClient, admin: dict[str, str],
                                          demo_lake: DemoLake) -> None:
    body = client.get("/api/datasets", headers=admin).json()
    by_name = {d["name"]: d for d in body["datasets"]}
    meta = read_metadata(demo_lake.api.storage, "streams/transaction_stream")
    assert meta is not None
    stream = by_name["transaction_stream"]
    assert stream["records"] == meta["records"] == lake_count(
        demo_lake, "SELECT count(*) FROM transaction_stream")
    files = list(Path(demo_lake.api.storage.url("streams/transaction_stream")).rglob("*.parquet"))
    assert stream["bytes"] == sum(f.stat().st_size for f in files)
    assert stream["files"] == len(files) and stream["dlq_records"] == meta["rejected_records"] == 5
    assert stream["status"] == "ok" and stream["freshness_s"] is not None
    assert by_name["silver_weather_cleaned"]["records"] == lake_count(
        demo_lake, "SELECT count(*) FROM silver_weather_cleaned")


def test_dataset_detail_has_partitions_schema_and_offsets(client: TestClient,
                                                          admin: dict[str, str],
                                                          demo_lake: DemoLake) -> None:
    body = client.get("/api/datasets/transaction_stream", headers=admin).json()
    days = demo_lake.api.query("SELECT strftime(make_date(year, month, day), '%Y-%m-%d'), "
                               "count(*) FROM transaction_stream GROUP BY ALL ORDER BY 1")[1]
    assert [(p["partition"], p["records"]) for p in body["partitions"]] == days
    assert all(p["bytes"] == sum(p["file_sizes"]) for p in body["partitions"])
    assert {"name": "transaction_id", "type": "string"} in body["schema"]
    assert set(body["kafka_offsets"]) == {f"transactions:{p}" for p in range(4)}


def test_table_versions_and_metadata(client: TestClient, admin: dict[str, str]) -> None:
    detail = client.get("/api/datasets/payment_method_totals", headers=admin).json()
    assert detail["summary"]["current_version"] == detail["versions"][-1]["version"]
    meta = client.get("/api/datasets/payment_method_totals/metadata", headers=admin).json()
    assert meta["current_version"] == detail["summary"]["current_version"]
    listed = client.get("/api/datasets/payment_method_totals/partitions", headers=admin).json()
    assert [p["partition"] for p in listed["partitions"]] == [v["version"]
                                                            for v in detail["versions"]]


def test_partition_lists_its_files(client: TestClient, admin: dict[str, str]) -> None:
    parts = client.get("/api/datasets/transaction_stream/partitions", headers=admin).json()
    day = parts["partitions"][-1]
    body = client.get(f"/api/datasets/transaction_stream/partitions/{day['partition']}",
                      headers=admin).json()
    assert body["records"] == day["records"] and body["bytes"] == day["bytes"]
    assert len(body["files"]) == day["files"]


def test_rows_are_paged_with_chosen_columns(client: TestClient, admin: dict[str, str],
                                            demo_lake: DemoLake) -> None:
    first = client.get("/api/datasets/transaction_stream/rows",
                       params={"limit": 7, "columns": "transaction_id,amount"},
                       headers=admin).json()
    second = client.get("/api/datasets/transaction_stream/rows",
                        params={"limit": 7, "offset": 7, "columns": "transaction_id"},
                        headers=admin).json()
    assert first["columns"] == ["transaction_id", "amount"] and len(first["rows"]) == 7
    assert first["total"] == lake_count(demo_lake, "SELECT count(*) FROM transaction_stream")
    ids = [r[0] for r in first["rows"]] + [r[0] for r in second["rows"]]
    assert len(set(ids)) == 14


def test_a_date_reads_only_that_days_files(client: TestClient, admin: dict[str, str],
                                           demo_lake: DemoLake) -> None:
    parts = client.get("/api/datasets/transaction_stream/partitions", headers=admin).json()
    day = parts["partitions"][0]
    body = client.get("/api/datasets/transaction_stream/rows",
                      params={"date": day["partition"], "limit": 1000}, headers=admin).json()
    assert body["total"] == len(body["rows"]) == day["records"]
    assert body["files_read"] == day["files"]  # that day's files, no other
    year, month, d = (int(x) for x in day["partition"].split("-"))
    assert {(r[body["columns"].index("year")], r[body["columns"].index("month")],
             r[body["columns"].index("day")]) for r in body["rows"]} == {(year, month, d)}
    empty = client.get("/api/datasets/transaction_stream/rows", params={"date": "1999-01-01"},
                       headers=admin).json()
    assert empty["total"] == 0 and empty["files_read"] == 0


def test_dead_letters_keep_reason_and_coordinates(client: TestClient,
                                                  admin: dict[str, str]) -> None:
    body = client.get("/api/datasets/transaction_stream/dlq", params={"limit": 3},
                      headers=admin).json()
    assert body["count"] == 5 and len(body["samples"]) == 3
    assert {"reason", "raw", "_kafka_partition", "_kafka_offset"} <= set(body["samples"][0])
    assert sum(g["count"] for g in body["reasons"]) == 5
    assert all(g["partitions"] and g["first_seen"] for g in body["reasons"])
    assert body["replay"] == "lakestream dlq replay --feed transaction_stream --dry-run"


def test_runs_and_quality_come_from_the_run_logs(client: TestClient,
                                                 admin: dict[str, str]) -> None:
    runs = client.get("/api/runs", headers=admin).json()["runs"]
    assert {r["pipeline"] for r in runs} >= {"weather", "transactions"}
    weather = [r for r in runs if r["pipeline"] == "weather"]
    assert len(weather) == WEATHER_RUNS
    assert [t["task"] for t in weather[0]["tasks"]] == [t.name for t in WEATHER_TASKS]
    assert all(t["duration_s"] is not None for r in runs for t in r["tasks"])
    only = client.get("/api/runs", params={"pipeline": "weather", "limit": 1},
                      headers=admin).json()["runs"]
    assert [r["run_id"] for r in only] == [weather[0]["run_id"]]
    results = client.get("/api/quality", headers=admin).json()["results"]
    assert len({r["run_id"] for r in results}) == WEATHER_RUNS + TRANSACTIONS_DAG_RUNS
    assert {r["check_name"] for r in results} >= {"uniqueness", "freshness"}
    weather_checks = client.get("/api/quality", params={"pipeline": "weather"},
                                headers=admin).json()["results"]
    assert {r["run_id"] for r in weather_checks} == {r["run_id"] for r in weather}
    dag_runs = {r["run_id"] for r in runs if r["pipeline"] == "transactions"
                and [t["task"] for t in r["tasks"]][:2] == ["process", "ingest"]}
    assert len(dag_runs) == TRANSACTIONS_DAG_RUNS
    assert {r["run_id"] for r in results} == {r["run_id"] for r in weather} | dag_runs


def test_charts_equal_the_lake(client: TestClient, admin: dict[str, str],
                               demo_lake: DemoLake) -> None:
    listed = client.get("/api/charts", headers=admin).json()
    assert {c["name"] for c in listed} == {"weather_temperature", "weather_daily",
                                           "payment_methods", "top_products", "currencies"}
    pm = client.get("/api/charts/payment_methods", headers=admin).json()
    expected = demo_lake.api.query("SELECT payment_method_name, total_amount "
                                   "FROM payment_method_totals WHERE version = (SELECT "
                                   "max(version) FROM payment_method_totals)")[1]
    assert sorted((r[0], r[2]) for r in pm["rows"]) == sorted(expected)
    daily = client.get("/api/charts/weather_daily", headers=admin).json()
    cities = {r[daily["columns"].index("city")] for r in daily["rows"]}
    assert cities == {"Paris", "London", "New York", "Tokyo", "Sydney"}


def test_overview_puts_it_together(client: TestClient, admin: dict[str, str]) -> None:
    body = client.get("/api/overview", headers=admin).json()
    assert {"transaction_stream", "silver_weather_cleaned"} <= {d["name"]
                                                              for d in body["datasets"]}
    assert body["checks"] > 0 and len(body["runs"]) >= 3


def test_every_data_read_is_audited(client: TestClient, tokens: Tokens,
                                    demo_lake: DemoLake) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    client.get("/api/datasets/transaction_stream/rows", headers=bearer(tokens.admin))
    client.get("/api/datasets/transaction_stream", headers=bearer(tokens.analyst))
    reads = audit_since(demo_lake, since, "admin")
    assert any(e.action == "read" and e.dataset == "transaction_stream"
               and e.detail.get("via") == "api:rows" for e in reads)
    denied = audit_since(demo_lake, since, "ana")
    assert any(e.action == "read_denied" and e.dataset == "transaction_stream" for e in denied)
