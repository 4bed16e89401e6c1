"""Every key from the environment by one rule, with pydantic-settings (docs/configuration.md).

The rule: ``LAKESTREAM_`` and the key's path, its levels joined by ``__``, in
any case. ``data_dir`` ← ``LAKESTREAM_DATA_DIR``, ``lake.root`` ←
``LAKESTREAM_LAKE__ROOT``. Below ``kafka.client_config`` comes one level, a
librdkafka property with its dots written as single underscores (librdkafka's
property names hold no ``_``): ``sasl.password`` ←
``LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD``. A list is JSON:
``LAKESTREAM_WEATHER__CITIES='["Paris", "Oslo"]'``. An empty variable sets
nothing.

pydantic-settings turns the variables into values (the rule is declared in
``Settings.model_config``). This module adds what it does not do: the names
used before the rule (:data:`ENV_ALIASES`), refusing a variable that looks like
a setting but names none (a typo is never silently ignored), and knowing which
variable set which key, so that an error names the variable.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic_settings import EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from lakestream.config.models import (
    CLIENT_CONFIG,
    DERIVED_FIELDS,
    Settings,
    is_list_field,
    section_of,
    setting_keys,
)
from lakestream.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = str(Settings.model_config.get("env_prefix")).upper()
DELIMITER = str(Settings.model_config.get("env_nested_delimiter"))

# Backwards compatibility only: the names these keys had before the rule (old name -> key).
# They keep working; where an old name and the rule's name are both set in the same place
# (the process environment, or .env), the rule's name wins. Never add to this list: a new
# key has its rule's name and no other.
ENV_ALIASES: Mapping[str, str] = MappingProxyType({
    "LAKESTREAM_KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "LAKESTREAM_KAFKA_GROUP_ID": "kafka.group_id",
    "LAKESTREAM_KAFKA_DRAIN_TIMEOUT_S": "kafka.drain_timeout_s",
    "LAKESTREAM_LAKE_ROOT": "lake.root",
    "LAKESTREAM_FLUSH_INTERVAL_S": "lake.flush_interval_s",
    "LAKESTREAM_COMPACT_IN_BAND": "lake.compact_in_band",
    "LAKESTREAM_COMPACT_MIN_FILES": "lake.compact_min_files",
    "LAKESTREAM_COMPACT_TARGET_MB": "lake.compact_target_mb",
    "LAKESTREAM_VACUUM_GRACE_HOURS": "lake.vacuum_grace_hours",
    "LAKESTREAM_S3_ENDPOINT": "s3.endpoint",
    "LAKESTREAM_S3_REGION": "s3.region",
    "LAKESTREAM_S3_ACCESS_KEY": "s3.access_key",
    "LAKESTREAM_S3_SECRET_KEY": "s3.secret_key",
    "LAKESTREAM_METRICS_PRINCIPAL": "metrics.principal",
    "LAKESTREAM_METRICS_OPEN": "metrics.open",
    "OPENWEATHER_API_KEY": "openweather_api_key",
})

_CLIENT_PATH = tuple(CLIENT_CONFIG.split("."))
_CLIENT_EXAMPLE = "$LAKESTREAM_KAFKA__CLIENT_CONFIG__SASL_PASSWORD sets sasl.password"
_PROPERTY = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")  # a librdkafka property, dots as "_"


@dataclass(frozen=True)
class Variable:
    """An environment variable that sets a key: its name as written, the key's path, the value."""

    name: str
    path: tuple[str, ...]
    value: str

    @property
    def key(self) -> str:
        """The dotted key (``kafka.client_config.sasl.password``)."""
        return ".".join(self.path)


def env_name(key: str) -> str:
    """The rule's variable of a dotted key (a ``kafka.client_config.<property>`` too)."""
    if key.startswith(f"{CLIENT_CONFIG}."):
        prop = key[len(CLIENT_CONFIG) + 1:].replace(".", "_")
        return f"{PREFIX}{DELIMITER.join(_CLIENT_PATH).upper()}{DELIMITER}{prop.upper()}"
    return PREFIX + DELIMITER.join(key.split(".")).upper()


def path_of(name: str) -> tuple[str, ...] | None:
    """The key a variable sets by the rule (not by an alias), as a path; None if none."""
    if not name.upper().startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].lower().split(DELIMITER)
    model: Any = Settings
    path: tuple[str, ...] = ()
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None or (not path and part in DERIVED_FIELDS):
            return None
        path, rest = (*path, part), parts[i + 1:]
        section = section_of(field)
        if section is not None:
            model = section
        elif path == _CLIENT_PATH:
            if len(rest) == 1 and _PROPERTY.fullmatch(rest[0]):
                return (*path, rest[0].replace("_", "."))
            return None
        else:
            return path if not rest else None
    return None  # a whole section: its keys are set one by one


def is_settings_variable(name: str) -> bool:
    """Whether ``load_settings`` reads (or refuses) a variable of this name."""
    return name.upper() in ENV_ALIASES or path_of(name) is not None or _looks_like_a_setting(name)


def read_variables(layer: Mapping[str, str]) -> dict[str, Variable]:
    """The variables of one place (the process environment, or .env) that set keys, by key.

    Raises:
        ConfigError: For a variable named like a setting that names none.
    """
    by_rule: dict[str, Variable] = {}
    by_alias: dict[str, Variable] = {}
    for name, value in layer.items():
        if not value:
            continue
        alias_of = ENV_ALIASES.get(name.upper())
        if alias_of is not None:
            by_alias[alias_of] = Variable(name, tuple(alias_of.split(".")), value)
        elif name.upper().startswith(PREFIX):
            path = path_of(name)
            if path is None:
                _refuse_unknown(name)
            else:
                by_rule[".".join(path)] = Variable(name, path, value)
    return {**by_alias, **by_rule}


def environment_values(variables: Iterable[Variable]) -> dict[str, Any]:
    """The nested values the variables give, parsed by pydantic-settings.

    Raises:
        ConfigError: Naming the variable, when a list is not valid JSON.
    """
    variables = list(variables)
    source = _VariablesSource({env_name(v.key): v.value for v in variables})
    try:
        values = source()
    except SettingsError:
        raise _unparsable(variables) from None
    kafka = values.get("kafka")
    if isinstance(kafka, dict) and isinstance(kafka.get("client_config"), dict):
        kafka["client_config"] = {name.replace("_", "."): value
                                  for name, value in kafka["client_config"].items()}
    return values


class _VariablesSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the given variables, not ``os.environ``."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._variables = {name.lower(): value for name, value in variables.items()}
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._variables


def _unparsable(variables: list[Variable]) -> ConfigError:
    lists = {key for key, field in setting_keys() if is_list_field(field)}
    for variable in variables:
        if variable.key in lists:
            try:
                json.loads(variable.value)
            except ValueError:
                return ConfigError(
                    f"${variable.name}: '{variable.key}': not valid JSON",
                    f"a list is written in JSON, e.g. {variable.name}='[\"a\", \"b\"]'")
    names = ", ".join(f"${v.name}" for v in variables)
    return ConfigError(f"the environment ({names}) cannot be read", "see docs/configuration.md")


def _sections() -> list[str]:
    return [name for name, field in Settings.model_fields.items() if section_of(field)]


def _looks_like_a_setting(name: str) -> bool:
    """``LAKESTREAM_A__B`` or ``LAKESTREAM_<SECTION>[_...]``: meant as a setting, surely."""
    if not name.upper().startswith(PREFIX):
        return False
    rest = name[len(PREFIX):].lower()
    return DELIMITER in rest or any(rest == s or rest.startswith(f"{s}_") for s in _sections())


def _refuse_unknown(name: str) -> None:
    """Refuse a variable that looks like a setting; warn of a near miss of a top-level key.

    Other ``LAKESTREAM_*`` variables (``LAKESTREAM_CONFIG``, tools' own) pass.
    """
    rest = name[len(PREFIX):].lower()
    names = [env_name(key) for key, _ in setting_keys() if key != CLIENT_CONFIG]
    near = difflib.get_close_matches(rest, [n[len(PREFIX):].lower() for n in names], 1, 0.8)
    hint = f"did you mean ${PREFIX}{near[0].upper()}?" if near else (
        "the variables are listed in docs/configuration.md")
    if rest.startswith(DELIMITER.join(_CLIENT_PATH)):
        hint = (f"a librdkafka property is one level below client_config, its dots written "
                f"as '_': {_CLIENT_EXAMPLE}")
    if _looks_like_a_setting(name):
        raise ConfigError(f"${name} names no setting", hint)
    if near:
        log.warning("$%s names no setting (ignored); %s", name, hint)


__all__ = [
    "DELIMITER",
    "ENV_ALIASES",
    "PREFIX",
    "Variable",
    "env_name",
    "environment_values",
    "is_settings_variable",
    "path_of",
    "read_variables",
]
