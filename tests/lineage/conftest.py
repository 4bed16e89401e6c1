"""Lineage fixtures: a clean OpenLineage environment, a project, a local endpoint standing in
for Marquez, and the OpenLineage JSON schema (vendored, validated offline)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from lakestream.config import Settings, load_settings
from lakestream.feeds import FeedRegistry
from lakestream.lake.storage import open_storage
from lakestream.lineage import Lineage

SCHEMAS = Path(__file__).parent / "schemas"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


# -- environment and project ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def openlineage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OPENLINEAGE_* of the shell, no openlineage.yml (cwd and HOME are the test's own);
    what openlineage-python adds to the environment (it aliases OPENLINEAGE_URL) is removed."""
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    yield
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        os.environ.pop(key)


def project_settings(root: Path, bootstrap: str | None = None) -> Settings:
    """Settings of a project in ``root``: data, feeds, a local lake, SQLite stores."""
    config: dict[str, Any] = {"data_dir": str(root / "data"), "feeds_dir": str(root / "feeds"),
                              "lake": {"root": str(root / "lake"), "flush_interval_s": 0.5}}
    if bootstrap:
        config["kafka"] = {"bootstrap_servers": bootstrap, "session_timeout_ms": 2000,
                           "partitions": 2}
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakestream.yaml").write_text(yaml.safe_dump(config))
    return load_settings(root / "lakestream.yaml", environ={}, cwd=root)


def project_lineage(settings: Settings, **kw: Any) -> Lineage:
    """The lineage of ``settings``' project."""
    storage = open_storage(settings.lake.root, settings.s3)
    return Lineage(settings, storage, FeedRegistry(Path(settings.feeds_dir)), **kw)


def events_in(path: Path) -> list[dict[str, Any]]:
    """The events of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- a local endpoint standing in for Marquez ------------------------------------------------


class Endpoint:
    """An HTTP server on a free loopback port that takes events as Marquez does
    (``POST /api/v1/lineage``, answered 201)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.paths.append(self.path)
                endpoint.events.append(json.loads(body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def of(self, job: str) -> list[str]:
        """The event types received for ``job``, in order."""
        return [e["eventType"] for e in self.events if e["job"]["name"] == job]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A local OpenLineage endpoint, stopped after the test."""
    server = Endpoint()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


# -- the OpenLineage JSON schema -------------------------------------------------------------


def _registry() -> Registry:
    """The vendored schemas under their ``$id`` URLs: nothing is fetched."""
    found = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        contents = json.loads(path.read_text())
        found.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(found)


REGISTRY = _registry()


def schema_errors(instance: Any, url: str) -> list[str]:
    """What is wrong with ``instance`` against the schema at ``url`` (``$id#pointer``)."""
    base = url.split("#", 1)[0]
    assert base in REGISTRY, f"{base} is not vendored in tests/lineage/schemas (see its README)"
    validator = Draft202012Validator({"$ref": url}, registry=REGISTRY,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)]


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, facet)`` for every facet of an event: run, job, datasets."""
    places = [("run", event["run"].get("facets")), ("job", event["job"].get("facets"))]
    for side in ("inputs", "outputs"):
        for ds in event.get(side) or []:
            for kind in ("facets", "inputFacets", "outputFacets"):
                places.append((f"{side}:{ds['name']}:{kind}", ds.get(kind)))
    for where, found in places:
        for name, facet in (found or {}).items():
            yield f"{where}.{name}", facet


def check_event(event: dict[str, Any]) -> None:
    """Fail unless ``event`` is a valid run event whose facets match their own schemas."""
    assert event["schemaURL"] == RUN_EVENT
    errors = schema_errors(event, RUN_EVENT)
    root = json.loads((SCHEMAS / "OpenLineage.json").read_text())["$id"]
    errors += schema_errors(event, root)  # the spec's root: one of the three event kinds
    moment = dt.datetime.fromisoformat(event["eventTime"])  # the validator skips date-time
    assert moment.tzinfo is not None, event["eventTime"]
    uuid.UUID(event["run"]["runId"])
    for where, facet in facets_of(event):
        errors += [f"{where}: {e}" for e in schema_errors(facet, facet["_schemaURL"])]
    assert errors == [], errors
