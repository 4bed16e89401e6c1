"""Schemathesis against ``/openapi.json``: generated requests never get a 500 or break the schema.

Each operation gets a bounded number of generated requests (hypothesis), sent
in-process to the app over the demo lake with an admin token, and every
schemathesis check runs on the answers: no server error, status codes and
bodies as described, invalid input rejected.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from lakestream.api import Lakestream
from lakestream.config import Settings
from lakestream.web import create_app
from tests.web.conftest import DemoLake, Tokens

pytestmark = pytest.mark.integration

# the routes, read from the app itself (building it touches nothing)
OPERATIONS = [(method.upper(), path)
              for path, item in create_app(Lakestream(Settings())).openapi()["paths"].items()
              for method in item]
EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(demo_lake: DemoLake) -> schemathesis.BaseSchema:
    """The app's own OpenAPI description, served in-process (ASGI)."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(demo_lake.api))


def test_every_route_is_described() -> None:
    assert len(OPERATIONS) >= 14
    assert ("GET", "/api/datasets/{name}/rows") in OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_are_answered_as_described(api_schema: schemathesis.BaseSchema,
                                                      tokens: Tokens, method: str,
                                                      path: str) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {tokens.admin}"}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers)

    check()
