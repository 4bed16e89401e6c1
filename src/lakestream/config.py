"""Configuration: ``lakestream.yaml`` plus ``LAKESTREAM_*`` environment overrides.

With no file and no environment, the embedded defaults apply: a Tansu broker
started on demand, a lake folder and an SQLite warehouse under ``./lakestream-data``.
Secrets (S3 keys, the anonymization key, API keys) come only from the
environment or a ``.env`` file; a config file that holds one is refused.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from lakestream.errors import ConfigError

DEFAULT_CONFIG_FILE = "lakestream.yaml"


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
    client_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka settings (security.protocol, ...)"
    )


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
    access_key: SecretStr | None = Field(default=None, description="env LAKESTREAM_S3_ACCESS_KEY")
    secret_key: SecretStr | None = Field(default=None, description="env LAKESTREAM_S3_SECRET_KEY")


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


class Settings(_Model):
    """All of Lakestream's configuration."""

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
    ksqldb_url: str | None = Field(default=None, description="ksqlDB REST endpoint, if any")
    notify_webhook_url: str | None = Field(
        default=None,
        description="POST run notifications (success, failure, SLA miss) here as JSON; "
        "set it in the environment if the URL holds a token",
    )
    anon_key: SecretStr | None = Field(default=None, description="env LAKESTREAM_ANON_KEY")
    openweather_api_key: SecretStr | None = Field(
        default=None, description="env OPENWEATHER_API_KEY"
    )
    weather: WeatherSettings = Field(default_factory=WeatherSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    source: str = Field(default="defaults", description="where this configuration came from")


# environment variable -> dotted settings key
ENV_OVERRIDES: Mapping[str, str] = {
    "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "LAKESTREAM_KAFKA_GROUP_ID": "kafka.group_id",
    "LAKESTREAM_KAFKA_DRAIN_TIMEOUT_S": "kafka.drain_timeout_s",
    "LAKESTREAM_LAKE_ROOT": "lake.root",
    "LAKESTREAM_FLUSH_INTERVAL_S": "lake.flush_interval_s",
    "LAKESTREAM_COMPACT_IN_BAND": "lake.compact_in_band",
    "LAKESTREAM_COMPACT_MIN_FILES": "lake.compact_min_files",
    "LAKESTREAM_COMPACT_TARGET_MB": "lake.compact_target_mb",
    "LAKESTREAM_VACUUM_GRACE_HOURS": "lake.vacuum_grace_hours",
    "LAKESTREAM_DATA_DIR": "data_dir",
    "LAKESTREAM_FEEDS_DIR": "feeds_dir",
    "LAKESTREAM_WAREHOUSE_URL": "warehouse_url",
    "LAKESTREAM_GOLD_URL": "gold_url",
    "LAKESTREAM_KSQLDB_URL": "ksqldb_url",
    "LAKESTREAM_NOTIFY_WEBHOOK_URL": "notify_webhook_url",
    "LAKESTREAM_S3_ENDPOINT": "s3.endpoint",
    "LAKESTREAM_S3_REGION": "s3.region",
    "LAKESTREAM_S3_ACCESS_KEY": "s3.access_key",
    "LAKESTREAM_S3_SECRET_KEY": "s3.secret_key",
    "LAKESTREAM_METRICS_PRINCIPAL": "metrics.principal",
    "LAKESTREAM_METRICS_OPEN": "metrics.open",
    "LAKESTREAM_ANON_KEY": "anon_key",
    "OPENWEATHER_API_KEY": "openweather_api_key",
}

SECRET_KEYS = frozenset({"s3.access_key", "s3.secret_key", "anon_key", "openweather_api_key"})
# URLs whose password must come from the environment, never from the file
URL_KEYS = ("warehouse_url", "gold_url", "ksqldb_url")


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Load settings from a YAML file and the environment.

    Args:
        path: Explicit config file (``--config``); it must exist. ``None`` looks for
            ``lakestream.yaml`` in ``cwd`` and uses defaults when there is none.
        environ: The environment (defaults to ``os.environ`` merged over ``.env``).
        cwd: Folder to look in for ``lakestream.yaml`` and ``.env``.

    Raises:
        ConfigError: Naming the file and key, with a suggestion, when invalid.
    """
    cwd = cwd or Path.cwd()
    env = dict(environ) if environ is not None else _environment(cwd)
    file = Path(path) if path is not None else cwd / DEFAULT_CONFIG_FILE
    if path is not None and not file.is_file():
        raise ConfigError(f"config file {file} does not exist", "check the --config path")
    raw: dict[str, Any] = _read_yaml(file) if file.is_file() else {}
    _refuse_secrets(raw, file)
    source = str(file) if file.is_file() else "defaults"
    from_env: dict[str, str] = {}
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            _set_dotted(raw, dotted, env[var])
            from_env[dotted] = var
            source += f" + ${var}"
    raw["source"] = source
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, file, from_env) from None


def _environment(cwd: Path) -> dict[str, str]:
    dotenv = {k: v for k, v in dotenv_values(cwd / ".env").items() if v is not None}
    return {**dotenv, **os.environ}


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        raw = file.read_bytes()
        text = raw.decode("utf-8")
        data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{file}: not a text file: byte 0x{raw[exc.start]:02x} at line {line} is not UTF-8",
            "a config file is UTF-8 YAML: check the path (--config) or save it as UTF-8",
        ) from None
    except yaml.YAMLError as exc:
        line, what = _yaml_problem(exc, text)
        raise ConfigError(f"{file}: not valid YAML at line {line}: {what}", "fix the syntax") \
            from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: the top level must be a mapping of keys, not {type(data).__name__}"
        )
    return data


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The 1-based line a YAML error is at, and what is wrong there, in words.

    PyYAML marks where it noticed the problem; for something left open (a ``[``,
    a quote) that is the end of the file, one line past the last, so the line
    where the unclosed thing starts is reported instead.
    """
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return line, f"character #x{exc.character:04x} is not allowed (is this a binary file?)"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    start = getattr(exc, "context_mark", None)
    context = str(getattr(exc, "context", None) or "")
    what = str(problem).replace("<stream end>", "end of file")
    if mark is None:
        return 1, what
    opened = context.removeprefix("while ").removeprefix("parsing ").removeprefix("scanning ")
    if start is not None and mark.index >= len(text.rstrip()):
        return start.line + 1, f"{opened or 'something'} that starts here is never closed"
    if start is not None and opened and start.line != mark.line:
        what += f" (in the {opened.split(' ', 1)[-1]} that starts at line {start.line + 1})"
    return mark.line + 1, what


def _refuse_secrets(raw: Mapping[str, Any], file: Path) -> None:
    for dotted in SECRET_KEYS:
        node: Any = raw
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            var = next(v for v, d in ENV_OVERRIDES.items() if d == dotted)
            raise ConfigError(
                f"{file}: '{dotted}' is a secret and may not be stored in a config file",
                f"remove it and set ${var} in the environment or in .env",
            )
    for dotted in URL_KEYS:
        value = raw.get(dotted)
        if isinstance(value, str) and _has_password(value):
            var = next(v for v, d in ENV_OVERRIDES.items() if d == dotted)
            raise ConfigError(
                f"{file}: '{dotted}' holds a password, and a config file may not",
                f"remove the URL's password and set the whole URL in ${var} (environment or "
                ".env)",
            )


def _has_password(url: str) -> bool:
    """Whether ``url`` carries a password (``scheme://user:password@host``)."""
    try:
        return bool(urlsplit(url).password) if "://" in url else False
    except ValueError:
        return "@" in url  # unparsable but credential-shaped: refuse rather than guess


def _set_dotted(raw: dict[str, Any], dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _config_error(exc: ValidationError, file: Path, from_env: Mapping[str, str]) -> ConfigError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if loc in from_env:  # the bad value came from the environment, not from the file
        return ConfigError(
            f"${from_env[loc]}: '{loc}': {first['msg']}", "fix the environment variable or .env"
        )
    if first["type"] == "extra_forbidden":
        hint = _suggest(first["loc"])
        return ConfigError(f"{file}: unknown key '{loc}'", hint or "see docs/configuration.md")
    return ConfigError(f"{file}: '{loc}': {first['msg']}", "see docs/configuration.md")


def _suggest(loc: tuple[Any, ...]) -> str | None:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f"did you mean '{close[0]}'?" if close else None
