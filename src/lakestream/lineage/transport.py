"""Where the events go: as openlineage-python is configured, else a JSON-lines file.

openlineage-python reads its configuration from ``OPENLINEAGE_URL`` (HTTP to
Marquez or any OpenLineage endpoint), ``OPENLINEAGE_CONFIG`` or an
``openlineage.yml`` (in the working directory or ``~/.openlineage/``), and
``OPENLINEAGE__TRANSPORT__*`` variables; ``OPENLINEAGE_DISABLED=true`` turns it
off. When none of these names a transport, Lakestream appends each event as
one JSON line to ``<data_dir>/lineage/events.jsonl`` (what ``lakestream
lineage`` and the dashboard read).

A run's events go through one :class:`EventSink`, which never raises: the
first failed emission is logged as one warning, and the rest of that run's
events are not sent (an unreachable endpoint would otherwise cost each event
its retries). An event that cannot be built is left out, with the same one
warning.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from openlineage.client import OpenLineageClient
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport
from openlineage.client.transport.noop import NoopConfig, NoopTransport
from openlineage.client.transport.transport import Config

log = logging.getLogger(__name__)

EVENTS_FILE = Path("lineage") / "events.jsonl"
"""Where the events go when nothing else is configured, below ``data_dir``."""
DISABLED_ENV = "OPENLINEAGE_DISABLED"
NOWHERE = f"nowhere ({DISABLED_ENV}=true)"
URL_ENV = "OPENLINEAGE_URL"


def events_file(data_dir: str | Path) -> Path:
    """The JSON-lines file of ``data_dir``."""
    return Path(data_dir) / EVENTS_FILE


def disabled() -> bool:
    """Whether ``OPENLINEAGE_DISABLED`` is ``true`` (as openlineage-python reads it)."""
    return os.environ.get(DISABLED_ENV, "").lower().strip() == "true"


class JsonLinesTransport(Transport):
    """Appends each event as one line of JSON to a local file.

    Each line is written with one ``write`` to a file opened for appending,
    under an exclusive lock, so concurrent runs never interleave their lines.
    """

    kind = "lakestream_jsonl"
    config_class = Config

    def __init__(self, path: Path) -> None:
        self.path = path

    def emit(self, event: Any) -> None:
        """Append ``event`` as one line."""
        line = (Serde.to_json(event) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)  # closing releases the lock


@dataclass(frozen=True)
class Destination:
    """Where events go, for people: ``kind`` (``file``, ``http``, ``disabled``, ...)."""

    kind: str
    where: str
    local_file: Path | None

    @property
    def text(self) -> str:
        """One line for people: a path, a URL, or what openlineage-python was told."""
        return self.where


def configured_elsewhere() -> bool:
    """Whether openlineage-python finds a transport of its own (URL, file or environment)."""
    if os.environ.get(URL_ENV):
        return True
    probe = OpenLineageClient(transport=NoopTransport(NoopConfig()))
    return bool((probe.config.transport or {}).get("type"))


def open_client(data_dir: str | Path) -> tuple[OpenLineageClient | None, Destination]:
    """The client a run emits through, and where it sends.

    Raises:
        Exception: openlineage-python refused its configuration (the caller warns).
    """
    if disabled():
        return None, Destination("disabled", NOWHERE, None)
    if not configured_elsewhere():
        path = events_file(data_dir)
        return (OpenLineageClient(transport=JsonLinesTransport(path)),
                Destination("file", str(path), path))
    client = OpenLineageClient()
    kind = str(client.transport.kind)
    return client, Destination(kind, _where(client.transport) or f"its {kind} transport", None)


def destination(data_dir: str | Path) -> Destination:
    """Where events go now, without building a client (``lakestream lineage`` says it)."""
    if disabled():
        return Destination("disabled", NOWHERE, None)
    try:
        elsewhere = configured_elsewhere()
    except Exception as exc:
        return Destination("nowhere", f"nowhere: openlineage-python refuses its configuration: "
                                      f"{exc}", None)
    if not elsewhere:
        path = events_file(data_dir)
        return Destination("file", str(path), path)
    url = os.environ.get(URL_ENV)
    if url:
        return Destination("http", _safe_url(url), None)
    return Destination("configured", "the transport of openlineage.yml or "
                                     "OPENLINEAGE__TRANSPORT__*", None)


def _where(transport: Transport) -> str:
    url = getattr(transport, "url", None)
    return _safe_url(str(url)) if url else ""


def _safe_url(url: str) -> str:
    """``url`` without user and password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class EventSink:
    """One run's way out: emits each event, never raises, warns once.

    Args:
        data_dir: Where the JSON-lines file lives when nothing else is configured.
        label: The run, for the warning (``weather run weather-2026...``).
    """

    def __init__(self, data_dir: str | Path, label: str) -> None:
        self.label = label
        self.failed: str | None = None
        self.warned = False
        self.client: OpenLineageClient | None = None
        self.destination = Destination("disabled", "", None)
        try:
            self.client, self.destination = open_client(data_dir)
        except Exception as exc:
            self.fail(f"openlineage-python refused its configuration: {exc}")

    def emit(self, event: Any) -> None:
        """Send ``event``, unless lineage is off or an event of this run already failed."""
        if self.client is None or self.failed is not None:
            return
        try:
            self.client.emit(event)
        except Exception as exc:
            self.fail(f"cannot send to {self.destination.text}: {exc}")

    def fail(self, reason: str) -> None:
        """Give up on this run's events (the transport failed): warn, once, then silence."""
        self.warn(f"its events are not sent: {reason}")
        self.failed = reason

    def warn(self, reason: str) -> None:
        """The run's one warning about its lineage (later ones are logged at debug level)."""
        if self.warned:
            log.debug("lineage of %s: %s", self.label, reason)
            return
        self.warned = True
        log.warning("lineage of %s (the run goes on): %s", self.label, reason)

    def close(self) -> None:
        """Release the transport (an HTTP session)."""
        if self.client is not None:
            try:
                self.client.close(timeout=5.0)
            except Exception as exc:
                log.debug("lineage: closing the transport failed: %s", exc)
