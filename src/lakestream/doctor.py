"""``lakestream doctor``: check every configured connection and say how to fix what fails.

Each check is independent and bounded in time; one failing never hides the
others. Secrets are never printed: URLs are shown with their passwords hidden.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lakestream.api import Lakestream
from lakestream.errors import LakestreamError


@dataclass
class Check:
    """The outcome of one check."""

    name: str
    target: str
    ok: bool
    detail: str
    hint: str = ""
    seconds: float = 0.0
    warning: bool = False  # it answers, but something should be fixed (see ``hint``)


def run_checks(api: Lakestream, fix: bool = False) -> list[Check]:
    """Run every check that applies to the configuration.

    Args:
        api: The facade of the configuration to check.
        fix: Also repair what can be repaired safely: set ``cleanup.policy=compact`` on
            existing table topics that are not compacted.
    """
    checks: list[tuple[str, Callable[[Lakestream], tuple[str, str]]]] = [
        ("kafka", lambda a: _kafka(a, fix)), ("lake", _lake), ("warehouse", _warehouse),
    ]
    if api.settings.gold_url:
        checks.append(("gold store", _gold))
    if api.settings.ksqldb_url:
        checks.append(("ksqldb", _ksqldb))
    checks.append(("secrets", _secrets))
    return [_run(name, check, api) for name, check in checks]


def _run(name: str, check: Callable[[Lakestream], tuple[str, str]], api: Lakestream) -> Check:
    started = time.monotonic()
    try:
        target, detail = check(api)
        return Check(name, target, True, detail, seconds=time.monotonic() - started)
    except _Warned as warned:
        return Check(name, warned.target, True, warned.message, warned.hint or "",
                     time.monotonic() - started, warning=True)
    except LakestreamError as exc:
        return Check(name, getattr(exc, "target", ""), False, exc.message, exc.hint or "",
                     time.monotonic() - started)


class _Failed(LakestreamError):
    def __init__(self, target: str, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.target = target


class _Warned(_Failed):
    """The check passed, with something to fix."""


def _kafka(api: Lakestream, fix: bool = False) -> tuple[str, str]:
    from confluent_kafka import KafkaException

    from lakestream.kafka.client import admin_client, kafka_reason

    try:
        servers = api.bootstrap()
    except LakestreamError as exc:
        raise _Failed("embedded broker", exc.message, exc.hint or "") from None
    try:
        meta = admin_client(servers, **{**api.settings.kafka.librdkafka_properties(),
                                        "socket.connection.setup.timeout.ms": 3000}
                            ).list_topics(timeout=5)
    except KafkaException as exc:
        raise _Failed(servers, f"Kafka does not answer: {kafka_reason(exc)}",
                      "check kafka.bootstrap_servers / LAKESTREAM_KAFKA__BOOTSTRAP_SERVERS, "
                      "or start the embedded one: lakestream broker start") from None
    groups = _groups(api, servers)
    detail = f"{len(meta.brokers)} broker(s), {len(meta.topics)} topic(s); {groups}"
    return servers, f"{detail}; {_table_topics(api, servers, detail, fix)}"


def _table_topics(api: Lakestream, servers: str, detail: str, fix: bool) -> str:
    """Whether the existing table topics are compacted (a warning when one is not).

    A table topic that retention deletes from loses the keys that did not change
    within the retention: a `--sink warehouse` group or a table feed that starts
    later builds an incomplete snapshot. Topics Lakestream creates are compacted;
    an existing one is only changed by ``doctor --fix``.
    """
    from lakestream.derive.shipped import TABLES
    from lakestream.kafka.client import TABLE_TOPIC_CONFIG, cleanup_policies, set_topic_config

    client = api.settings.kafka.librdkafka_properties()
    names = sorted({*TABLES, *(f.topic for f in api.feeds if f.enabled and f.kind == "table")})
    try:
        policies = cleanup_policies(servers, names, client_config=client)
        loose = {t: p for t, p in policies.items() if _not_compacted(p)}
        if loose and fix:
            set_topic_config(servers, loose, TABLE_TOPIC_CONFIG, client_config=client)
            fixed = sorted(loose)
            loose = {t: p for t, p in cleanup_policies(servers, fixed, client_config=client).items()
                     if _not_compacted(p)}
            if not loose:
                return (f"{len(policies)} table topic(s) compacted; set cleanup.policy=compact "
                        f"on {', '.join(fixed)}")
    except LakestreamError as exc:
        raise _Warned(servers, f"{detail}; table topics: {exc.message}",
                      "the table topics should have cleanup.policy=compact; check that the "
                      "Kafka user may describe (and alter) topic configurations") from None
    if not policies:
        return "no table topic yet (created compacted when needed)"
    if not loose:
        return f"{len(policies)} table topic(s) compacted"
    shown = ", ".join(f"{t} (cleanup.policy={p})" for t, p in sorted(loose.items()))
    raise _Warned(
        servers, f"{detail}; table topic(s) not compacted: {shown}: a --sink warehouse group "
        "or table feed started after the retention would miss the keys it deleted",
        "run `lakestream doctor --fix`, or for each topic: kafka-configs.sh --bootstrap-server "
        f"{servers} --alter --entity-type topics --entity-name <topic> --add-config "
        "cleanup.policy=compact")


def _not_compacted(policy: str) -> bool:
    """``delete`` and ``compact,delete`` both let retention remove a key's latest value."""
    return {p.strip() for p in policy.split(",")} != {"compact"}


REBALANCING = ("PREPARING_REBALANCE", "COMPLETING_REBALANCE", "UNKNOWN")


def _groups(api: Lakestream, servers: str) -> str:
    """The state of Lakestream's consumer groups; a group stuck rebalancing fails the check.

    A rebalance normally ends within the session timeout of the members it
    waits for; a group still rebalancing after that plus a margin (Tansu
    reports such a group as UNKNOWN) never hands out partitions: `ingest`
    and `process` in it would wait until their drain timeout.
    """
    from lakestream.kafka.client import admin_client
    from lakestream.kafka.drain import expel_wait_s, group_states

    group = api.settings.kafka.group_id
    names = [group, f"{group}-warehouse", "lakestream-processor"]
    admin = admin_client(servers, **api.settings.kafka.librdkafka_properties())
    states = group_states(admin, names)
    window = expel_wait_s(api.settings.kafka.session_timeout_ms / 1000)
    deadline = time.monotonic() + window
    while any(s in REBALANCING for s in states.values()) and time.monotonic() < deadline:
        time.sleep(1.0)
        states = {**states, **group_states(admin, [n for n, s in states.items()
                                                  if s in REBALANCING])}
    stuck = [n for n, s in states.items() if s in REBALANCING]
    if stuck:
        raise _Failed(servers, f"consumer group(s) {', '.join(stuck)} still rebalancing after "
                      f"{window:.0f}s: their consumers get no partitions",
                      "a running Lakestream consumer of the group repairs one Tansu strands "
                      "on a departed leader within four session timeouts (docs/operations.md);"
                      " else wait until its stale members expire, or start the consumers with "
                      f"another --group (e.g. `ingest --group {group}-2`)")
    in_use = [f"{n} {s.lower()}" for n, s in states.items() if s not in ("DEAD", "EMPTY")]
    return "groups: " + (", ".join(in_use) if in_use else "none active")


def _lake(api: Lakestream) -> tuple[str, str]:
    storage = api.storage
    probe = f"_doctor/{uuid.uuid4().hex}.txt"
    if not storage.is_local:
        _require_bucket(storage)
    try:
        storage.write_atomic(probe, b"ok")
        assert storage.read(probe) == b"ok"
        storage.delete(probe)
    except (LakestreamError, FileNotFoundError, OSError) as exc:
        hint = ("check the bucket exists, and s3.endpoint and the keys (LAKESTREAM_S3__...)"
                if not storage.is_local else "check lake.root is a writable folder")
        raise _Failed(storage.uri, f"cannot write to the lake: {exc}", hint) from None
    return storage.uri, "write, read and delete of a probe object work"


def _require_bucket(storage: Any) -> None:
    from pyarrow import fs as pafs

    bucket = storage.base.split("/", 1)[0]
    try:
        found = storage.fs.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as exc:
        raise _Failed(storage.uri, f"the object store does not answer: {exc}",
                      "check LAKESTREAM_S3__ENDPOINT and the keys") from None
    if not found:
        raise _Failed(storage.uri, f"cannot write to the lake: bucket '{bucket}' does not exist",
                      "create the bucket (check the bucket exists and its name in lake.root)")


def _database(url: Any, what: str) -> tuple[str, str]:
    import sqlalchemy as sa

    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # SQLite makes the file
    engine = sa.create_engine(url, connect_args=_timeouts(url))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            version = conn.dialect.server_version_info
    except sa.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise _Failed(shown, f"cannot connect to the {what}: {first}",
                      "check the URL, the user's password (in the environment) and that the "
                      "database exists (`lakestream warehouse init` creates it)") from None
    finally:
        engine.dispose()
    found = ".".join(str(v) for v in version) if version else "?"
    return shown, f"connected ({url.get_backend_name()} {found})"


def _timeouts(url: Any) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": 5}
    if backend == "postgresql":
        return {"connect_timeout": 5}
    return {}


def _warehouse(api: Lakestream) -> tuple[str, str]:
    from lakestream.warehouse.connection import warehouse_url

    return _database(warehouse_url(api.settings), "warehouse")


def _gold(api: Lakestream) -> tuple[str, str]:
    import sqlalchemy as sa

    return _database(sa.make_url(str(api.settings.gold_url)), "gold store")


def _ksqldb(api: Lakestream) -> tuple[str, str]:
    import httpx

    url = str(api.settings.ksqldb_url).rstrip("/")
    try:
        info = httpx.get(f"{url}/info", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _Failed(url, f"ksqlDB does not answer: {exc}",
                      "check LAKESTREAM_KSQLDB_URL (http://host:8088)") from None
    version = info.get("KsqlServerInfo", {}).get("version", "?")
    return url, f"ksqlDB {version}"


def _secrets(api: Lakestream) -> tuple[str, str]:
    s = api.settings
    present = [name for name, value in (("LAKESTREAM_ANON_KEY", s.anon_key),
                                        ("OPENWEATHER_API_KEY", s.openweather_api_key))
               if value is not None]
    missing = [n for n in ("LAKESTREAM_ANON_KEY",) if n not in present]
    if missing:
        raise _Failed("environment", f"{', '.join(missing)} is not set (needed by `process`)",
                      "export LAKESTREAM_ANON_KEY=$(openssl rand -hex 32), or put it in .env")
    where = urlparse(s.s3.endpoint).netloc if s.s3.endpoint else "AWS default"
    return "environment", f"set: {', '.join(present)}; S3 endpoint: {where}"
