"""Build a :class:`~lakestream.observe.Monitor` for one configuration.

The pieces come from the layers below: governance's gate and audit log (the
permissions and audit trail in the warehouse database), a watermark source
for the configured or embedded broker, the databases that log runs (the
warehouse and the weather gold store), and the file of lineage events.
"""

from __future__ import annotations

from lakestream.config import Settings
from lakestream.feeds import FeedRegistry
from lakestream.governance.access import AccessGate
from lakestream.governance.audit import AuditLog
from lakestream.kafka import client
from lakestream.kafka.lag import BrokerWatermarks, fetch_watermarks
from lakestream.lake.storage import Storage
from lakestream.lineage.transport import events_file
from lakestream.medallion.gold import gold_url
from lakestream.observe.lag import LagMonitor, WatermarkSource
from lakestream.observe.lineage import graph_reader
from lakestream.observe.runs import LogDatabase
from lakestream.observe.service import Monitor
from lakestream.warehouse.connection import warehouse_url


def watermark_source(settings: Settings) -> tuple[str, WatermarkSource]:
    """How to name the broker, and a function fetching its watermarks.

    The broker is resolved at each fetch, so an embedded broker started after
    the server is found; no broker at all is a ``ConfigError`` the lag report shows.
    """
    named = settings.kafka.bootstrap_servers

    def fetch(topics: list[str]) -> BrokerWatermarks:
        bootstrap = client.bootstrap_servers(settings)
        return fetch_watermarks(client.base_config(settings, bootstrap), topics)

    return named or "embedded broker", fetch


def build_monitor(settings: Settings, storage: Storage, feeds: FeedRegistry, gate: AccessGate,
                  audit: AuditLog) -> Monitor:
    """A monitor over the lake, the broker and the run logs of ``settings``.

    Args:
        settings: The configuration.
        storage: The lake.
        feeds: The feed registry.
        gate: Governance's permission checks (and audited reads).
        audit: Governance's audit log.
    """
    broker, fetch = watermark_source(settings)
    logs = [LogDatabase("warehouse", warehouse_url(settings)),
            LogDatabase("gold", gold_url(settings))]
    return Monitor(storage, feeds, gate, LagMonitor(storage, fetch, broker), logs,
                   audit.record, graph_reader(events_file(settings.data_dir)))
