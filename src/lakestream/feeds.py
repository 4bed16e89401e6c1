"""The feed registry: which Kafka topics land where in the lake.

Built-in feeds ship with Lakestream (the transactions pipeline's); more are
declared as YAML or JSON files in ``<feeds_dir>/active/`` (archived ones live in
``<feeds_dir>/archived/`` and are ignored). A built-in feed is changed by its
override file, ``active/<name>.yaml`` (what ``lakestream feeds update`` writes);
any other file that declares a built-in name, or a name another file already
declares, is an error naming the file: a file never silently replaces a feed.
Adding a feed file and running ``lakestream ingest`` is all it takes to land a
new JSON topic.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lakestream.decode.schemas import TRANSACTION_REQUIRED, arrow_schema
from lakestream.errors import FeedError, UnknownNameError

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SUFFIXES = (".yaml", ".yml", ".json")


class Feed(BaseModel):
    """One feed: a Kafka topic and how it lands in the lake."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="dataset name in the lake")
    topic: str = Field(description="Kafka topic to consume")
    pipeline: str = Field(default="custom", description="pipeline the feed belongs to")
    kind: Literal["stream", "table"] = Field(default="stream", description="append or snapshot")
    layer: Literal["streams", "tables", "bronze"] = Field(
        default="streams", description="lake area"
    )
    schema_spec: dict[str, Any] | str | None = Field(
        default=None, alias="schema", description="field types, a built-in schema name, or none"
    )
    required: tuple[str, ...] = Field(default=(), description="dotted fields that must be present")
    time_field: str | None = Field(
        default=None, description="event-time field deciding the date partition; none = Kafka time"
    )
    key: tuple[str, ...] = Field(default=(), description="key columns (tables)")
    dedupe_source: bool = Field(
        default=False,
        description="records carry _source_partition/_source_offset (from `process`): drop replays",
    )
    enabled: bool = Field(default=True, description="disabled feeds are skipped")
    sensitivity: Literal["restricted", "shared"] = Field(default="restricted")
    retention_days: int | None = Field(default=None, ge=1, description="days of partitions kept")
    retention_versions: int | None = Field(
        default=None, ge=1, description="table versions kept (default lake.table_versions)"
    )
    description: str = ""

    @field_validator("topic")
    @classmethod
    def _valid_topic(cls, value: str) -> str:
        if not _TOPIC.match(value) or value in (".", ".."):
            raise ValueError(f"'{value}' is not a valid Kafka topic name ([A-Za-z0-9._-], ≤ 249)")
        return value

    @property
    def dataset(self) -> str:
        """The dataset's folder below the lake root (``streams/<name>``)."""
        return f"{self.layer}/{self.name}"

    @property
    def partition_field(self) -> str:
        """The column whose date decides the partition."""
        return self.time_field or "_kafka_timestamp"


_DERIVED_STREAMS: tuple[tuple[str, Literal["restricted", "shared"], str], ...] = (
    ("transaction_flattened", "restricted", "one flat row per event, with amount_usd"),
    ("transaction_stream_anonymized", "shared",
     "flattened events without direct identifiers (HMAC pseudonyms, IP /24)"),
    ("transaction_stream_blacklisted", "restricted",
     "events matching the blacklist, with blacklist_reason"),
)

BUILTIN_FEEDS: tuple[Feed, ...] = (
    Feed(
        name="transaction_stream",
        topic="transactions",
        pipeline="transactions",
        schema="transactions",
        required=TRANSACTION_REQUIRED,
        time_field="event_time",
        sensitivity="restricted",
        description="raw transaction events (schema `transactions`), nested fields as structs",
    ),
    *(
        Feed(name=name, topic=name, pipeline="transactions", schema=name,
             required=("transaction_id", "event_time"), time_field="event_time",
             dedupe_source=True, sensitivity=sensitivity, description=description)
        for name, sensitivity, description in _DERIVED_STREAMS
    ),
    *(
        Feed(name=name, topic=name, pipeline="transactions", kind="table", layer="tables",
             schema=name, key=key, sensitivity="shared", description=description)
        for name, key, description in (
            ("user_transaction_summary", ("user_id", "transaction_type"),
             "completed totals per user and type, USD"),
            ("user_transaction_summary_eur", ("user_id", "transaction_type"),
             "completed totals per user and type, EUR"),
            ("payment_method_totals", ("payment_method_id",),
             "completed totals per payment method"),
            ("product_purchase_counts", ("product_id",), "completed purchases per product"),
        )
    ),
    Feed(
        name="weather",
        topic="weather-data",
        pipeline="weather",
        layer="bronze",
        schema="weather",
        time_field="fetched_at",
        sensitivity="shared",
        retention_days=30,
        description="raw OpenWeather current-weather records + city, fetched_at (docs/weather.md)",
    ),
)


class FeedRegistry:
    """Built-in feeds plus the files of ``<feeds_dir>/active``."""

    def __init__(self, feeds_dir: Path) -> None:
        self.feeds_dir = feeds_dir
        self._feeds: dict[str, Feed] = {f.name: f for f in BUILTIN_FEEDS}
        self._paths: dict[str, Path] = {}
        for path in sorted((feeds_dir / "active").glob("*")):
            if path.suffix in _SUFFIXES:
                feed = load_feed_file(path)
                self._refuse_shadowing(path, feed.name)
                self._feeds[feed.name] = feed
                self._paths[feed.name] = path

    def _refuse_shadowing(self, path: Path, name: str) -> None:
        """A file may declare a new feed, or be a built-in's override (named after it)."""
        if name in self._paths:
            raise FeedError(f"{path}: declares feed '{name}', which {self._paths[name]} "
                            "already declares", "keep one of the two files")
        if name in _BUILTIN_NAMES and path.stem != name:
            raise FeedError(
                f"{path}: declares '{name}', a built-in feed; a file may not shadow it",
                f"delete the file; change the built-in with `lakestream feeds update {name} "
                f"--set key=value` (it writes {path.with_name(name + '.yaml')})")

    def __iter__(self) -> Iterator[Feed]:
        return iter(self._feeds.values())

    def get(self, name: str) -> Feed:
        """The feed called ``name``.

        Raises:
            UnknownNameError: Unknown name, with the closest known one suggested.
        """
        if name in self._feeds:
            return self._feeds[name]
        close = difflib.get_close_matches(name, list(self._feeds), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known feeds: {', '.join(self._feeds)}"
        raise UnknownNameError(f"unknown feed '{name}'", hint)

    def select(self, pipeline: str | None = None, feed: str | None = None) -> list[Feed]:
        """Enabled feeds of a pipeline (or one named feed, which must be enabled)."""
        if feed is not None:
            chosen = self.get(feed)
            if not chosen.enabled:
                raise FeedError(f"feed '{feed}' is disabled", f"lakestream feeds enable {feed}")
            return [chosen]
        known = {f.pipeline for f in self}
        if pipeline is not None and pipeline not in known:
            raise UnknownNameError(f"unknown pipeline '{pipeline}'",
                                   f"known: {', '.join(sorted(known))}")
        return [f for f in self if f.enabled and (pipeline is None or f.pipeline == pipeline)]

    # -- lifecycle: every change is validated before it is written ---------------------------

    def archived(self) -> dict[str, Path]:
        """Archived feeds: name → file in ``<feeds_dir>/archived``."""
        found = {}
        for path in sorted((self.feeds_dir / "archived").glob("*")):
            if path.suffix in _SUFFIXES:
                found[load_feed_file(path).name] = path
        return found

    def add(self, spec: dict[str, Any]) -> Feed:
        """Declare a new feed (written to ``active/<name>.yaml``).

        Raises:
            FeedError: Invalid spec, or a name already used by a feed (built-in,
                active or archived).
        """
        name = str(spec.get("name", ""))
        feed = validate_feed(spec, f"feed '{name}'")
        if name in _BUILTIN_NAMES:
            raise FeedError(f"'{name}' is a built-in feed",
                            f"change it with `lakestream feeds update {name} --set key=value`")
        if name in self._feeds:
            raise FeedError(f"a feed named '{name}' already exists ({self._paths.get(name)})",
                            f"change it with `lakestream feeds update {name}` or pick another")
        if name in self.archived():
            raise FeedError(f"an archived feed is named '{name}'",
                            f"`lakestream feeds restore {name}`, or delete it first")
        path = self.feeds_dir / "active" / f"{name}.yaml"
        if path.exists():
            raise FeedError(f"{path} already exists and defines another feed", "pick another name")
        return self._save(path, spec, feed)

    def update(self, name: str, changes: dict[str, Any]) -> Feed:
        """Change keys of a feed; a built-in feed gets an override file in ``active/``.

        Only the definition is checked here; whether the lake's data of the feed
        allows the change is :mod:`lakestream.governance.feed_changes`' business.
        """
        merged, feed = self._merged(name, changes)
        path = self._paths.get(name) or self.feeds_dir / "active" / f"{name}.yaml"
        return self._save(path, merged, feed)

    def proposed(self, name: str, changes: dict[str, Any]) -> Feed:
        """The feed ``update(name, changes)`` would write, validated, without writing it."""
        return self._merged(name, changes)[1]

    def _merged(self, name: str, changes: dict[str, Any]) -> tuple[dict[str, Any], Feed]:
        current = self.get(name)
        if "name" in changes and changes["name"] != name:
            raise FeedError("a feed cannot be renamed: its dataset is named after it",
                            "add a new feed and delete this one")
        path = self._paths.get(name)
        spec = _read_spec(path) if path else current.model_dump(
            mode="json", by_alias=True, exclude_defaults=True)
        merged = {**spec, **changes, "name": name}
        return merged, validate_feed(merged, f"feed '{name}'")

    def set_enabled(self, name: str, enabled: bool) -> Feed:
        """Enable or disable a feed (a disabled feed is skipped by ingest and export)."""
        return self.update(name, {"enabled": enabled})

    def archive(self, name: str) -> Path:
        """Move a feed's file to ``archived/``: it stops being a feed; its data stays."""
        self.get(name)
        path = self._paths.get(name)
        if name in _BUILTIN_NAMES or path is None:
            raise FeedError(f"'{name}' is a built-in feed and cannot be archived",
                            f"disable it instead: lakestream feeds disable {name}")
        target = self.feeds_dir / "archived" / path.name
        if target.exists():
            raise FeedError(f"{target} already exists", f"delete the archived '{name}' first")
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        del self._feeds[name], self._paths[name]
        return target

    def restore(self, name: str) -> Feed:
        """Bring an archived feed back to ``active/``."""
        path = self.archived().get(name)
        if path is None:
            raise UnknownNameError(f"no archived feed is named '{name}'",
                                   "see `lakestream feeds list --archived`")
        if name in self._feeds:
            raise FeedError(f"an active feed is already named '{name}'",
                            "archive or delete it first")
        target = self.feeds_dir / "active" / path.name
        if target.exists():
            raise FeedError(f"{target} already exists", "move it away first")
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        feed = load_feed_file(target)
        self._feeds[name], self._paths[name] = feed, target
        return feed

    def remove(self, name: str) -> Path:
        """Delete the file of an active or archived feed (its data is the caller's business)."""
        path = self._paths.get(name) or self.archived().get(name)
        if path is None:
            self.get(name)
            raise FeedError(f"'{name}' is a built-in feed and cannot be deleted",
                            f"disable it instead: lakestream feeds disable {name}")
        path.unlink()
        self._paths.pop(name, None)
        builtin = {f.name: f for f in BUILTIN_FEEDS}
        if name in builtin:
            self._feeds[name] = builtin[name]  # the override is gone: the built-in is back
        else:
            self._feeds.pop(name, None)
        return path

    def _save(self, path: Path, spec: dict[str, Any], feed: Feed) -> Feed:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, json.dumps(spec, indent=2) if path.suffix == ".json" else
                   yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
        self._feeds[feed.name], self._paths[feed.name] = feed, path
        return feed


def write_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file beside it, then a rename):
    a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def load_feed_file(path: Path) -> Feed:
    """Parse and validate one feed file (YAML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise FeedError(f"{path}: cannot be parsed: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FeedError(f"{path}: a feed file holds one mapping of keys")
    return validate_feed(data, str(path))


def validate_feed(data: dict[str, Any], where: str) -> Feed:
    """Validate a feed definition; errors name ``where`` (a file or a command) and the key."""
    path = where
    try:
        feed = Feed.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc, [*Feed.model_fields, "schema"], n=1)
            hint = f"did you mean '{close[0]}'?" if close else None
            raise FeedError(f"{path}: unknown key '{loc}'", hint) from None
        raise FeedError(f"{path}: '{loc}': {err['msg']}") from None
    try:  # a type name the decoder does not know fails now, naming the file, not at ingest
        arrow_schema(feed.schema_spec, feed.time_field)
    except FeedError as exc:
        raise FeedError(f"{path}: {exc.message}", exc.hint) from None
    _check_kind(feed, path)
    return feed


def _check_kind(feed: Feed, where: str) -> None:
    """A table is keyed and lives in ``tables/``; nothing else does."""
    if feed.kind == "table" and (feed.layer != "tables" or not feed.key):
        raise FeedError(
            f"{where}: a table feed needs layer 'tables' and the key columns a row is the "
            f"latest value of (it has layer '{feed.layer}', key {list(feed.key)})",
            "set them too: --set layer=tables --set 'key=[id]'")
    if feed.kind == "stream" and feed.layer == "tables":
        raise FeedError(f"{where}: layer 'tables' holds table feeds, not streams",
                        "use layer 'streams' (or 'bronze'), or kind 'table'")


_BUILTIN_NAMES = frozenset(f.name for f in BUILTIN_FEEDS)


def _read_spec(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return dict(data) if isinstance(data, dict) else {}
