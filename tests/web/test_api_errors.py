"""Refusals and bad requests: always a 4xx with one clear JSON error, never a 500."""

from __future__ import annotations

from typing import Any, Protocol

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import Tokens

pytestmark = pytest.mark.integration

DATA_ROUTES = [
    "/api/whoami", "/api/overview", "/api/datasets", "/api/datasets/transaction_stream",
    "/api/datasets/transaction_stream/metadata", "/api/datasets/transaction_stream/partitions",
    "/api/datasets/transaction_stream/rows", "/api/datasets/transaction_stream/dlq",
    "/api/lag", "/api/runs", "/api/quality", "/api/charts", "/api/charts/payment_methods",
    "/api/lineage",
]


class Response(Protocol):
    """What the checks read of an answer (TestClient's response: httpx2's, or httpx's)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def assert_error(response: Response, status: int, says: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["status"] == status and says in str(body["error"]), body
    return body


@pytest.mark.parametrize("route", DATA_ROUTES)
def test_no_token_is_401(client: TestClient, route: str) -> None:
    response = client.get(route)
    assert_error(response, 401, "no token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["lst_not-a-real-token", "", "x" * 500])
def test_a_bad_token_is_401(client: TestClient, token: str) -> None:
    response = client.get("/api/datasets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_a_revoked_token_is_401(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/api/datasets", headers={"Authorization": f"Bearer {tokens.revoked}"})
    assert_error(response, 401, "not valid")


def test_a_token_in_another_scheme_is_not_accepted(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/api/datasets", headers={"Authorization": f"Basic {tokens.admin}"})
    assert response.status_code == 401


@pytest.mark.parametrize("route", [
    "/api/datasets/transaction_stream", "/api/datasets/transaction_stream/rows",
    "/api/datasets/transaction_stream/partitions", "/api/datasets/transaction_stream/metadata",
    "/api/datasets/dlq_transaction_stream/rows",
])
def test_an_analyst_may_not_read_raw_data(client: TestClient, tokens: Tokens, route: str) -> None:
    response = client.get(route, headers={"Authorization": f"Bearer {tokens.analyst}"})
    body = assert_error(response, 404, "that 'ana' may read")
    assert "permissions grant ana" in str(body["hint"])


def test_an_analyst_reads_shared_data_but_not_its_dead_letters(client: TestClient,
                                                               tokens: Tokens) -> None:
    headers = {"Authorization": f"Bearer {tokens.analyst}"}
    assert client.get("/api/datasets/transaction_stream_anonymized/rows",
                      headers=headers).status_code == 200
    assert client.get("/api/charts/payment_methods", headers=headers).status_code == 200
    assert_error(client.get("/api/datasets/transaction_stream_anonymized/dlq", headers=headers),
                 404, "dlq_transaction_stream_anonymized")


def test_lists_show_only_what_the_principal_may_read(client: TestClient,
                                                     tokens: Tokens) -> None:
    headers = {"Authorization": f"Bearer {tokens.nobody}"}
    assert client.get("/api/datasets", headers=headers).json() == {"datasets": []}
    assert client.get("/api/lag", headers=headers).json()["partitions"] == []
    assert_error(client.get("/api/charts/currencies", headers=headers), 404, "may read")
    analyst = client.get("/api/datasets",
                         headers={"Authorization": f"Bearer {tokens.analyst}"}).json()
    names = {d["name"] for d in analyst["datasets"]}
    assert "transaction_stream_anonymized" in names and "transaction_stream" not in names


@pytest.mark.parametrize(("route", "status", "says"), [
    ("/api/datasets/no_such_thing", 404, "no dataset 'no_such_thing' that 'admin' may read"),
    ("/api/datasets/transaction_stream/partitions/2001-01-01", 404, "no partition"),
    ("/api/charts/no_such_chart", 404, "unknown chart"),
    ("/api/datasets/transaction_stream/rows?limit=-1", 422, "limit"),
    ("/api/datasets/transaction_stream/rows?limit=1000000", 422, "limit"),
    ("/api/datasets/transaction_stream/rows?limit=ten", 422, "limit"),
    ("/api/datasets/transaction_stream/rows?offset=-5", 422, "offset"),
    ("/api/datasets/transaction_stream/rows?columns=amount,nope", 400, "unknown column(s): nope"),
    ("/api/datasets/transaction_stream/rows?date=2025-02-30", 422, "date"),
    ("/api/datasets/transaction_stream/rows?date=yesterday", 422, "date"),
    ("/api/datasets/payment_method_totals/rows?date=2025-01-15", 400, "is a table"),
    ("/api/datasets/silver_weather_cleaned/dlq", 400, "no DLQ"),
    ("/api/runs?limit=0", 422, "limit"),
    ("/api/runs?limit=100000", 422, "limit"),
    ("/api/quality?limit=-3", 422, "limit"),
])
def test_bad_parameters_are_4xx_with_a_clear_error(client: TestClient, admin: dict[str, str],
                                                   route: str, status: int, says: str) -> None:
    assert_error(client.get(route, headers=admin), status, says)


def test_an_sql_injection_in_columns_is_only_an_unknown_column(client: TestClient,
                                                               admin: dict[str, str]) -> None:
    response = client.get("/api/datasets/transaction_stream/rows",
                          params={"columns": 'amount" FROM data; DROP TABLE x; --'},
                          headers=admin)
    assert_error(response, 400, "unknown column")


def test_openapi_needs_no_token_and_metrics_does(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


def test_login_sets_an_httponly_cookie_and_refuses_open_redirects(client: TestClient,
                                                                  tokens: Tokens) -> None:
    browser = TestClient(client.app)  # its own cookie jar
    response = browser.post("/login", data={"token": tokens.admin, "next": "//evil.example/x"},
                            follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert browser.get("/api/whoami").json()["principal"] == "admin"  # the cookie works
    bad = TestClient(client.app).post("/login", data={"token": "lst_nope", "next": "/runs"},
                                      follow_redirects=False)
    assert bad.headers["location"] == "/login?failed=true&next=/runs"
    assert "set-cookie" not in bad.headers


def test_pages_without_a_login_redirect_to_it(client: TestClient) -> None:
    response = client.get("/datasets/transaction_stream?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/datasets/transaction_stream%3Fx%3D1"
