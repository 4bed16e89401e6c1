"""The config file: read as YAML with errors that name the line, refused if it holds a secret.

A config file is meant to be committed, so a secret in it is refused, naming
the key and the variable to set instead: a ``SecretStr`` key, a secret
librdkafka property of ``kafka.client_config`` (``sasl.password``, ...), or
any URL with a password in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from lakestream.config.environment import env_name
from lakestream.config.models import (
    CLIENT_CONFIG,
    SECRET_KEYS,
    is_secret_client_property,
    setting_keys,
)
from lakestream.errors import ConfigError


def read_yaml(file: Path) -> dict[str, Any]:
    """The mapping a YAML config file holds (``{}`` when empty).

    Raises:
        ConfigError: Naming the file and line, when it is not UTF-8 YAML holding a mapping.
    """
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


def refuse_secrets(raw: Mapping[str, Any], file: Path) -> None:
    """Refuse a config file that holds a secret, naming the key and the variable to use.

    Raises:
        ConfigError: For a secret key, a secret librdkafka property or a URL with a password.
    """
    for key in sorted(SECRET_KEYS):
        if _value_at(raw, key) is not None:
            raise _secret_in_file(file, key)
    client = _value_at(raw, CLIENT_CONFIG)
    properties = client if isinstance(client, dict) else {}
    for prop in properties:
        if is_secret_client_property(str(prop)):
            raise _secret_in_file(file, f"{CLIENT_CONFIG}.{prop}")
    strings = [(key, _value_at(raw, key)) for key, _ in setting_keys()]
    strings += [(f"{CLIENT_CONFIG}.{prop}", value) for prop, value in properties.items()]
    for key, value in strings:
        if isinstance(value, str) and _has_password(value):
            raise ConfigError(
                f"{file}: '{key}' holds a password, and a config file may not",
                f"remove the URL's password and set the whole URL in ${env_name(key)} "
                "(environment or .env)",
            )


def _secret_in_file(file: Path, key: str) -> ConfigError:
    return ConfigError(
        f"{file}: '{key}' is a secret and may not be stored in a config file",
        f"remove it and set ${env_name(key)} in the environment or in .env",
    )


def _value_at(raw: Mapping[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _has_password(url: str) -> bool:
    """Whether ``url`` carries a password (``scheme://user:password@host``)."""
    try:
        return bool(urlsplit(url).password) if "://" in url else False
    except ValueError:
        return "@" in url  # unparsable but credential-shaped: refuse rather than guess
