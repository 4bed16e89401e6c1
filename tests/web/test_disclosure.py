"""What a token may see: every route of ``/openapi.json`` for a principal of each kind.

The principals: no grant, one grant, a role (analyst), a pattern grant and
one reading everything. A dataset a principal may not read is answered
exactly like one that does not exist; lists, runs, quality results and
``/metrics`` hold nothing of a forbidden dataset; every refusal is audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lakestream.api import Lakestream
from lakestream.config import MetricsSettings
from lakestream.governance.catalog import view_name
from lakestream.web import create_app
from tests.web.conftest import DemoLake, Tokens

pytestmark = pytest.mark.integration

UNKNOWN = "no_such_dataset"
DATASETS = ("transaction_stream", "transaction_stream_anonymized", "silver_weather_cleaned",
            UNKNOWN)
KINDS = ("nobody", "single", "analyst", "pattern", "admin")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.fixture(scope="module")
def everything(client: TestClient, tokens: Tokens) -> list[str]:
    readable: list[str] = client.get("/api/whoami", headers=bearer(tokens.admin)).json()[
        "readable"]
    return readable


@pytest.fixture(scope="module")
def partitions(client: TestClient, tokens: Tokens) -> dict[str, str]:
    """A real partition of each known dataset (what the partition route is asked for)."""
    found = {}
    for name in DATASETS[:-1]:
        body = client.get(f"/api/datasets/{name}/partitions", headers=bearer(tokens.admin)).json()
        found[name] = body["partitions"][-1]["partition"]
    return found


def get_routes(client: TestClient) -> list[str]:
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(p for p, item in paths.items() if "get" in item and p != "/api/health")


def requests_of(route: str, partitions: dict[str, str],
                charts: dict[str, str]) -> list[tuple[str, str | None]]:
    """``(url, dataset the answer depends on)`` for one route of the description."""
    if "{chart}" in route:
        return [(route.replace("{chart}", chart), dataset) for chart, dataset in charts.items()]
    if "{name}" not in route:
        return [(route, None)]
    out: list[tuple[str, str | None]] = []
    for name in DATASETS:
        url = route.replace("{name}", name).replace(
            "{partition}", partitions.get(name, "2025-01-15"))
        out.append((url, name))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_route_shows_only_what_the_principal_may_read(
        client: TestClient, tokens: Tokens, demo_lake: DemoLake, kind: str,
        everything: list[str], partitions: dict[str, str]) -> None:
    headers = bearer(getattr(tokens, kind))
    readable = set(client.get("/api/whoami", headers=headers).json()["readable"])
    forbidden = set(everything) - readable
    paths = {demo_lake.api.governance.catalog()[n].path for n in forbidden}
    charts = {c["name"]: c["dataset"] for c in
              client.get("/api/charts", headers=bearer(tokens.admin)).json()}
    since = dt.datetime.now(dt.UTC)
    refused = 0
    for route in get_routes(client):
        for url, dataset in requests_of(route, partitions, charts):
            response = client.get(url, headers=headers)
            needs = {dataset} if dataset else set()
            if url.endswith("/dlq") and f"dlq_{dataset}" in everything:
                needs.add(f"dlq_{dataset}")
            if needs - readable:
                assert response.status_code == 404, (kind, url, response.text)
                assert "may read" in response.json()["error"], (kind, url)
                refused += 1
                continue
            assert response.status_code in (200, 400), (kind, url, response.text)
            leaked = (set(strings(response.json())) & (forbidden | paths)) - needs
            assert not leaked, (kind, url, leaked)
    denied = demo_lake.api.governance.audit_entries(principal=_principal(kind), since=since,
                                                    action="read_denied")
    assert len(denied) >= refused > 0


def _principal(kind: str) -> str:
    return {"nobody": "nobody", "single": "solo", "analyst": "ana", "pattern": "pat",
            "admin": "admin"}[kind]


def test_what_each_kind_of_principal_may_read(client: TestClient, tokens: Tokens,
                                              demo_lake: DemoLake,
                                              everything: list[str]) -> None:
    def readable(kind: str) -> set[str]:
        return set(client.get("/api/whoami", headers=bearer(getattr(tokens, kind))).json()[
            "readable"])

    assert readable("nobody") == set()
    assert readable("single") == {"silver_weather_cleaned"}
    assert readable("pattern") == {n for n in everything if n.startswith(
        ("transaction_", "silver_weather_"))}
    assert "transaction_stream_anonymized" in readable("analyst")
    assert "transaction_stream" not in readable("analyst")
    assert set(everything) == set(demo_lake.api.governance.catalog())  # the admin role
    assert len(everything) >= 14


@pytest.mark.parametrize("route", ["", "/metadata", "/partitions", "/rows", "/dlq"])
def test_forbidden_and_unknown_datasets_get_the_same_answer(client: TestClient, tokens: Tokens,
                                                            route: str) -> None:
    headers = bearer(tokens.nobody)
    forbidden = client.get(f"/api/datasets/transaction_stream{route}", headers=headers)
    unknown = client.get(f"/api/datasets/{UNKNOWN}{route}", headers=headers)
    assert forbidden.status_code == unknown.status_code == 404
    assert forbidden.json() == {k: v.replace(UNKNOWN, "transaction_stream")
                                if isinstance(v, str) else v
                                for k, v in unknown.json().items()}
    assert set(forbidden.headers) == set(unknown.headers)


def test_runs_and_quality_show_no_figures_of_forbidden_datasets(client: TestClient,
                                                                tokens: Tokens) -> None:
    nobody = bearer(tokens.nobody)
    assert client.get("/api/runs", headers=nobody).json()["runs"] == []
    assert client.get("/api/quality", headers=nobody).json()["results"] == []
    overview = client.get("/api/overview", headers=nobody).json()
    assert overview["runs"] == [] and overview["failing_checks"] == [] and \
        overview["checks"] == 0

    # the analyst reads the weather pipeline's datasets, not the raw transactions
    runs = client.get("/api/runs", headers=bearer(tokens.analyst)).json()["runs"]
    by_pipeline = {r["pipeline"]: r for r in runs}
    assert not by_pipeline["weather"]["figures_withheld"]
    assert any(t["rows_out"] is not None for t in by_pipeline["weather"]["tasks"])
    withheld = by_pipeline["transactions"]
    assert withheld["figures_withheld"] and withheld["error"] is None
    assert all(t["rows_in"] is None and t["rows_out"] is None and t["error"] is None
               for t in withheld["tasks"])
    admin_runs = client.get("/api/runs", headers=bearer(tokens.admin)).json()["runs"]
    assert not any(r["figures_withheld"] for r in admin_runs)

    # one grant on silver: its checks, not bronze's
    results = client.get("/api/quality", headers=bearer(tokens.single)).json()["results"]
    assert results and {view_name(r["dataset"]) for r in results} == {"silver_weather_cleaned"}
    everything = client.get("/api/quality", headers=bearer(tokens.admin)).json()["results"]
    transactions = {"transaction_stream", "transaction_stream_anonymized",
                    "transaction_flattened"}  # checked by the demo's transactions DAG run
    assert {view_name(r["dataset"]) for r in everything} == {"silver_weather_cleaned",
                                                             "bronze_weather"} | transactions
    # pattern grants on transaction_*: those checks, never the weather layers' unmatched ones
    matched = client.get("/api/quality", headers=bearer(tokens.pattern)).json()["results"]
    assert transactions <= {view_name(r["dataset"]) for r in matched}
    assert "bronze_weather" not in {view_name(r["dataset"]) for r in matched}


def metric_samples(response: Any) -> dict[str, list[Any]]:
    assert response.status_code == 200, response.text
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def datasets_in(found: dict[str, list[Any]]) -> set[str]:
    return {s.labels["dataset"] for s in found.get("lakestream_dataset_records", [])}


def test_metrics_without_a_token_are_refused_and_audited(client: TestClient,
                                                         demo_lake: DemoLake) -> None:
    since = dt.datetime.now(dt.UTC)
    response = client.get("/metrics")
    assert response.status_code == 401 and "authorization" in response.json()["error"]
    assert client.get("/metrics", headers=bearer("lst_nope")).status_code == 401
    denied = demo_lake.api.governance.audit_entries(since=since, action="read_denied")
    assert [e.detail["reason"] for e in denied if e.detail.get("via") == "metrics"] == [
        "invalid token", "no token"]


def test_metrics_of_a_token_hold_only_its_datasets(client: TestClient, tokens: Tokens,
                                                   everything: list[str]) -> None:
    nobody = metric_samples(client.get("/metrics", headers=bearer(tokens.nobody)))
    assert datasets_in(nobody) == set() and "lakestream_broker_up" in nobody
    assert "lakestream_consumer_position" not in nobody
    assert "lakestream_quality_check_passed" not in nobody
    analyst = metric_samples(client.get("/metrics", headers=bearer(tokens.analyst)))
    readable = set(client.get("/api/whoami", headers=bearer(tokens.analyst)).json()["readable"])
    assert datasets_in(analyst) and datasets_in(analyst) <= readable
    assert "transaction_stream" not in {s.labels.get("sink") for family in analyst.values()
                                        for s in family}
    admin = metric_samples(client.get("/metrics", headers=bearer(tokens.admin)))
    assert datasets_in(admin) >= {"transaction_stream", "silver_weather_cleaned"}


def test_metrics_for_a_configured_principal_or_open_process_series(
        demo_lake: DemoLake, tokens: Tokens) -> None:
    def app(metrics: MetricsSettings) -> TestClient:
        settings = demo_lake.api.settings.model_copy(update={"metrics": metrics})
        return TestClient(create_app(Lakestream(settings)))

    with app(MetricsSettings(principal="solo")) as scraped:
        found = metric_samples(scraped.get("/metrics"))
        assert datasets_in(found) == {"silver_weather_cleaned"}
        # a token still gets its own principal's view
        assert datasets_in(metric_samples(scraped.get(
            "/metrics", headers=bearer(tokens.nobody)))) == set()
    with app(MetricsSettings(open=True)) as scraped:
        found = metric_samples(scraped.get("/metrics"))
        assert datasets_in(found) == set() and "lakestream_broker_up" in found
        assert "lakestream_task_runs_total" not in found
