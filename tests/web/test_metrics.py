"""``/metrics`` and ``/api/lag``: the Prometheus text parser, and a correct broker's numbers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lakestream.kafka.lag import BrokerWatermarks
from lakestream.lake.metadata import read_metadata
from lakestream.observe.lag import TANSU_NOTE, sink_positions
from tests.web.conftest import WEATHER_RUNS, DemoLake

pytestmark = pytest.mark.integration


def samples(client: TestClient, headers: dict[str, str]) -> dict[str, list[Any]]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list[Any]], name: str, **labels: str) -> float:
    matches = [s.value for s in found[name] if all(s.labels.get(k) == v
                                                   for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, found.get(name))
    return float(matches[0])


@pytest.fixture
def broker_says(demo_lake: DemoLake) -> Iterator[dict[str, Any]]:
    """Make the lag monitor's broker answer with given watermarks (restored afterwards)."""
    lag = demo_lake.api.monitor.lag_monitor
    saved = lag.source
    answer: dict[str, Any] = {"cluster": "kafka-prod", "extra": 0}
    positions = sink_positions(demo_lake.api.storage, demo_lake.api.feeds)

    def source(_topics: list[str]) -> BrokerWatermarks:
        # what a correct broker would say: `extra` records beyond each committed position
        return BrokerWatermarks(answer["cluster"], {
            (topic, part): (0, pos + answer["extra"]) for (_, topic, part), pos
            in positions.items()})

    lag.source = source
    lag.forget()
    yield answer
    lag.source = saved
    lag.forget()


def test_dataset_metrics_equal_the_lake_metadata(client: TestClient, demo_lake: DemoLake,
                                                 admin: dict[str, str]) -> None:
    found = samples(client, admin)
    for name, path in [("transaction_stream", "streams/transaction_stream"),
                       ("payment_method_totals", "tables/payment_method_totals")]:
        meta = read_metadata(demo_lake.api.storage, path)
        assert meta is not None
        assert value(found, "lakestream_dataset_records", dataset=name) == meta["records"]
        assert value(found, "lakestream_dataset_dlq_records", dataset=name) == \
            meta["rejected_records"]
    assert value(found, "lakestream_dataset_dlq_records", dataset="transaction_stream") == 5
    assert value(found, "lakestream_dataset_last_commit_age_seconds",
                 dataset="transaction_stream") >= 0


def test_lag_metrics_are_the_watermark_minus_the_committed_position(
        client: TestClient, demo_lake: DemoLake, broker_says: dict[str, Any],
        admin: dict[str, str]) -> None:
    broker_says["extra"] = 25
    found = samples(client, admin)
    positions = sink_positions(demo_lake.api.storage, demo_lake.api.feeds)
    for (sink, topic, part), pos in positions.items():
        labels = {"sink": sink, "topic": topic, "partition": str(part)}
        assert value(found, "lakestream_consumer_position", **labels) == pos
        assert value(found, "lakestream_broker_high_watermark", **labels) == pos + 25
        assert value(found, "lakestream_consumer_lag_records", **labels) == 25
    assert value(found, "lakestream_consumer_lag_approximate") == 0
    assert value(found, "lakestream_broker_up") == 1


def test_the_lag_route_adds_up_and_flags_tansu(client: TestClient, admin: dict[str, str],
                                               broker_says: dict[str, Any],
                                               demo_lake: DemoLake) -> None:
    broker_says["extra"] = 7
    body = client.get("/api/lag", headers=admin).json()
    assert body["partitions"] and all(p["lag"] == 7 for p in body["partitions"])
    assert body["total"] == 7 * len(body["partitions"])
    assert body["approximate"] is False and body["note"] is None
    broker_says["cluster"] = "tansu_cluster"
    demo_lake.api.monitor.lag_monitor.forget()  # the client's app serves demo_lake.api
    body = client.get("/api/lag", headers=admin).json()
    assert body["approximate"] is True and body["note"] == TANSU_NOTE


def test_run_metrics_count_the_run_log(client: TestClient, admin: dict[str, str]) -> None:
    found = samples(client, admin)
    runs = client.get("/api/runs", headers=admin).json()["runs"]
    weather_gold = [t for r in runs if r["pipeline"] == "weather" for t in r["tasks"]
                    if t["task"] == "load_gold"]
    assert value(found, "lakestream_task_runs_total", pipeline="weather", task="load_gold",
                 status="success") == len(weather_gold) == WEATHER_RUNS
    latest = next(r for r in runs if r["pipeline"] == "weather")
    assert value(found, "lakestream_run_last_duration_seconds", pipeline="weather") == \
        pytest.approx(latest["duration_s"])
    assert value(found, "lakestream_run_last_success", pipeline="weather") == \
        (1 if latest["status"] == "success" else 0)


def test_quality_metrics_follow_the_latest_run(client: TestClient,
                                               admin: dict[str, str]) -> None:
    found = samples(client, admin)
    results = client.get("/api/quality", params={"limit": 1}, headers=admin).json()["results"]
    newest: dict[str, dict[str, Any]] = {}
    for r in results:  # newest first: a run's audit and its check may both test a name
        newest.setdefault(r["check_name"], r)
    assert newest
    for r in newest.values():
        assert value(found, "lakestream_quality_check_passed", pipeline=r["pipeline"],
                     check=r["check_name"], status=r["status"]) == (r["status"] == "pass")
