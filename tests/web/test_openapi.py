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
from pydantic import BaseModel

from lakestream.api import Lakestream
from lakestream.config import Settings
from lakestream.kafka.lag import PartitionLag
from lakestream.observe import models as read_models
from lakestream.web import create_app
from lakestream.web import models as web_models
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


def models_of(module: object) -> set[str]:
    return {name for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, BaseModel)
            and value.__module__ == getattr(module, "__name__", None)}


def test_every_body_is_one_of_the_read_models_or_a_web_only_body() -> None:
    """One set of read models (observe's): the web layer declares no copy of one."""
    described = set(create_app(Lakestream(Settings())).openapi()["components"]["schemas"])
    read, web = models_of(read_models), models_of(web_models)
    assert not read & web
    assert web == {"ErrorBody", "Health", "WhoAmI"}
    fastapi_own = {"HTTPValidationError", "ValidationError"}
    assert described - fastapi_own == (read - {"ReadModel"}) | web | {PartitionLag.__name__}


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
