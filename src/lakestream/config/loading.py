"""``load_settings``: defaults < the config file < ``.env`` < the process environment."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from lakestream.config.environment import Variable, environment_values, read_variables
from lakestream.config.files import read_yaml, refuse_secrets
from lakestream.config.models import Settings, section_of
from lakestream.errors import ConfigError

DEFAULT_CONFIG_FILE = "lakestream.yaml"


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Load settings from a YAML file and the environment.

    Args:
        path: Explicit config file (``--config``); it must exist. ``None`` looks for
            ``lakestream.yaml`` in ``cwd`` and uses defaults when there is none.
        environ: The environment; ``None`` means ``os.environ`` over ``cwd``'s ``.env``
            (a given mapping is the whole environment: no ``.env`` is read).
        cwd: Folder to look in for ``lakestream.yaml`` and ``.env``.

    Raises:
        ConfigError: Naming the file and key (or the variable), with a suggestion, when invalid.
    """
    cwd = cwd or Path.cwd()
    variables = read_variables(environ) if environ is not None else _environment(cwd)
    file = Path(path) if path is not None else cwd / DEFAULT_CONFIG_FILE
    if path is not None and not file.is_file():
        raise ConfigError(f"config file {file} does not exist", "check the --config path")
    raw: dict[str, Any] = read_yaml(file) if file.is_file() else {}
    refuse_secrets(raw, file)
    values = _merged(raw, environment_values(variables.values()))
    source = str(file) if file.is_file() else "defaults"
    values["source"] = "".join([source, *(f" + ${v.name}" for v in variables.values())])
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise _config_error(exc, file, variables.values()) from None


def _environment(cwd: Path) -> dict[str, Variable]:
    """The variables of ``.env`` with those of the process environment over them, by key."""
    dotenv = {k: v for k, v in dotenv_values(cwd / ".env").items() if v is not None}
    return {**read_variables(dotenv), **read_variables(os.environ)}


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            merged[key] = _merged(below, value)
        else:
            merged[key] = value
    return merged


def _config_error(exc: ValidationError, file: Path, variables: Iterable[Variable]) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    dotted = ".".join(loc)
    for variable in variables:  # did the bad value come from the environment?
        if loc[: len(variable.path)] == variable.path:
            return ConfigError(f"${variable.name}: '{variable.key}': {first['msg']}",
                               "fix the environment variable or .env")
    if first["type"] == "extra_forbidden":
        hint = _suggest(loc)
        return ConfigError(f"{file}: unknown key '{dotted}'", hint or "see docs/configuration.md")
    return ConfigError(f"{file}: '{dotted}': {first['msg']}", "see docs/configuration.md")


def _suggest(loc: tuple[str, ...]) -> str | None:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        section = section_of(field) if field else None
        if section is None:
            return None
        model = section
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f"did you mean '{close[0]}'?" if close else None
