"""The settings models: every key, its type, default and meaning (docs/configuration.md).

``Settings`` also carries the environment rule in its ``model_config`` (prefix
``LAKESTREAM_``, levels joined by ``__``, any case), which pydantic-settings
applies in :mod:`lakestream.config.environment`. Building ``Settings(...)``
directly reads nothing from the environment: ``load_settings`` layers the
file and the environment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def is_secret_client_property(name: str) -> bool:
    """Whether a librdkafka property of ``kafka.client_config`` holds a secret.

    ``sasl.password``, ``ssl.key.password``, ``ssl.keystore.password``,
    ``sasl.oauthbearer.client.secret`` and ``ssl.key.pem`` (a private key) do.
    """
    name = name.lower()
    return "password" in name or "secret" in name or name == "ssl.key.pem"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Model):
    """How to reach Kafka. ``bootstrap_servers`` unset means: start the embedded broker."""

    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset = embedded Tansu broker"
    )
    group_id: str = Field(default="lakestream", description="consumer group of `ingest`")
    session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        description="group session timeout; low values make the group join fast on Tansu",
    )
    drain_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="`--until-idle` gives up (exit 1) after this long without progress: "
        "no record, no partition drained, no assignment (a group stuck rebalancing, "
        "a broker that is down)",
    )
    partitions: int = Field(default=4, ge=1, description="partitions of topics Lakestream creates")
    replication_factor: int = Field(
        default=1,
        ge=1,
        description="replication factor of topics Lakestream creates: 1 for the embedded "
        "broker, 3 on a production cluster; at most the number of brokers",
    )
    client_config: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="extra librdkafka properties (security.protocol, sasl.mechanism, ...); "
        "secret ones (sasl.password, ...) only from the environment",
    )

    @field_validator("client_config")
    @classmethod
    def _hide_secret_properties(
        cls, properties: dict[str, str | int | float | bool | SecretStr]
    ) -> dict[str, str | int | float | bool | SecretStr]:
        """Secret properties are held as ``SecretStr``, so no repr or dump shows them."""
        return {name: SecretStr(str(value)) if is_secret_client_property(name)
                and not isinstance(value, SecretStr) else value
                for name, value in properties.items()}

    def librdkafka_properties(self) -> dict[str, str | int | float | bool]:
        """``client_config`` as librdkafka takes it: secrets revealed."""
        return {name: value.get_secret_value() if isinstance(value, SecretStr) else value
                for name, value in self.client_config.items()}


class LakeSettings(_Model):
    """Where the lake lives and how the streaming writer batches."""

    root: str = Field(
        default="lakestream-data/lake", description="local folder or s3://bucket/prefix"
    )
    flush_interval_s: float = Field(
        default=5.0, gt=0, description="commit what was consumed at least this often (seconds)"
    )
    max_batch_records: int = Field(
        default=200_000, ge=1, description="flush when a partition buffers this many records"
    )
    max_batch_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="flush at this many buffered JSON bytes"
    )
    table_versions: int = Field(default=7, ge=1, description="table snapshot versions kept")
    snapshot_interval_s: float = Field(
        default=60.0, gt=0, description="write a changed table's new version at most this often"
    )
    compact_in_band: bool = Field(
        default=True, description="`ingest` compacts day partitions holding many small files"
    )
    compact_min_files: int = Field(
        default=32, ge=1,
        description="in-band compaction merges a day partition once it holds more small files",
    )
    compact_target_mb: int = Field(
        default=128, ge=1, description="size of a compacted file (MiB); smaller files are small"
    )
    vacuum_grace_hours: int = Field(
        default=24, ge=0,
        description="`retention` deletes files a commit removed only this many hours later",
    )


class S3Settings(_Model):
    """An S3-compatible object store (AWS, MinIO, SeaweedFS). Keys come from the environment."""

    endpoint: str | None = Field(
        default=None, description="http(s)://host:port of the S3 API; unset = AWS"
    )
    region: str = Field(default="us-east-1", description="S3 region")
    access_key: SecretStr | None = Field(default=None, description="S3 access key id")
    secret_key: SecretStr | None = Field(default=None, description="S3 secret access key")


class WeatherSettings(_Model):
    """The weather pipeline (docs/weather.md): which cities, how often, how long layers are kept."""

    cities: tuple[str, ...] = Field(
        default=("Paris", "London", "New York", "Tokyo", "Sydney"),
        description="cities fetched by `produce weather`",
    )
    interval_s: float = Field(default=3600.0, gt=0, description="seconds between two fetches")
    api_url: str = Field(
        default="https://api.openweathermap.org/data/2.5/weather",
        description="OpenWeather current-weather endpoint",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="HTTP timeout of one request")
    retries: int = Field(default=3, ge=0, description="retries of a failed request (backoff)")
    bronze_retention_days: int = Field(default=30, ge=1, description="days of bronze kept")
    silver_retention_days: int = Field(default=90, ge=1, description="days of silver kept")
    gold_retention_days: int = Field(default=365, ge=1, description="days of gold kept")


class MetricsSettings(_Model):
    """Who may scrape ``/metrics`` without a token, and what it is shown (docs/api.md)."""

    principal: str | None = Field(
        default=None,
        description="a scrape without a token gets the per-dataset series of the datasets "
        "this principal may read; unset = per-dataset series only for a token",
    )
    open: bool = Field(
        default=False,
        description="serve the process-level series (broker up, lag approximate) to a scrape "
        "without a token; off = a scrape without a token (and no principal) gets a 401",
    )


class QualitySettings(_Model):
    """The data-quality checks (docs/quality.md): thresholds, which ones block a publication."""

    completeness_min_pct: float = Field(
        default=90.0, ge=0, le=100,
        description="completeness: share of incoming records with each key field, at least")
    validity_min_pct: float = Field(
        default=90.0, ge=0, le=100,
        description="validity.in: share of complete incoming records silver keeps (values in "
        "range, plausible time), at least; below it fails, any rejected record warns")
    freshness_warn_h: float = Field(default=2.0, gt=0,
                                    description="freshness: warn past this age of the newest row")
    freshness_alert_h: float = Field(default=6.0, gt=0,
                                     description="freshness: fail (alert) past this age")
    future_tolerance_min: float = Field(
        default=60.0, ge=0,
        description="an observation dated more than this many minutes after the run is invalid")
    timestamp_floor: dt.date = Field(
        default=dt.date(2000, 1, 1), description="an observation dated before this is invalid")
    blocking: tuple[str, ...] = Field(
        default=("completeness", "validity", "uniqueness"),
        description="checks (names or name prefixes) whose failure holds a silver or gold run "
        "back; the others only warn")
    keep_unpublished_h: float = Field(
        default=72.0, ge=0, description="hours a held-back run's staged files are kept")


class Settings(BaseSettings):
    """All of Lakestream's configuration."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        # the environment rule (applied by lakestream.config.environment, not on __init__)
        env_prefix="LAKESTREAM_",
        env_nested_delimiter="__",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    data_dir: str = Field(
        default="lakestream-data", description="home of embedded state (warehouse, broker logs)"
    )
    feeds_dir: str = Field(default="feeds", description="the feed registry folder")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    warehouse_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the transactions warehouse; unset = SQLite"
    )
    gold_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the weather gold store; unset = SQLite"
    )
    state_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the processor's state store (PostgreSQL or MariaDB "
        "when several hosts share the work); unset = SQLite <data_dir>/state/processor.sqlite",
    )
    ksqldb_url: str | None = Field(default=None, description="ksqlDB REST endpoint, if any")
    notify_webhook_url: str | None = Field(
        default=None,
        description="POST run notifications (success, failure, SLA miss) here as JSON; "
        "set it in the environment if the URL holds a token",
    )
    anon_key: SecretStr | None = Field(
        default=None, description="key of the anonymization (HMAC) of user ids"
    )
    openweather_api_key: SecretStr | None = Field(
        default=None, description="OpenWeather API key (`produce weather --source openweather`)"
    )
    weather: WeatherSettings = Field(default_factory=WeatherSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    source: str = Field(default="defaults", description="where this configuration came from")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(...)`` takes its arguments only: the environment is ``load_settings``'s."""
        return (init_settings,)


# not a setting: filled in by load_settings
DERIVED_FIELDS = frozenset({"source"})
CLIENT_CONFIG = "kafka.client_config"


def section_of(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a field that is a section of keys (``kafka``, ``lake``, ...), else None."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def setting_keys(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[
        tuple[str, FieldInfo]]:
    """Every key (dotted) with its field, in the models' order; ``source`` is not a key."""
    for name, field in model.model_fields.items():
        if not prefix and name in DERIVED_FIELDS:
            continue
        section = section_of(field)
        if section is not None:
            yield from setting_keys(section, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def is_secret_field(field: FieldInfo) -> bool:
    """Whether the field holds a secret (a ``SecretStr``, possibly optional)."""
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


def is_list_field(field: FieldInfo) -> bool:
    """Whether the field holds a list (written in JSON in the environment)."""
    return get_origin(field.annotation) in (list, tuple, set, frozenset)


SECRET_KEYS = frozenset(key for key, field in setting_keys() if is_secret_field(field))


def value_at(settings: BaseModel, key: str) -> Any:
    """The value of a dotted key of ``settings`` (``kafka.client_config`` counts as one key)."""
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node
