"""``WITH (…)`` properties and ``SET`` properties: which Lakestream honours, which it refuses.

Formats: values are JSON (``VALUE_FORMAT='JSON'``); keys are ``KAFKA`` (the raw
value of a one-column key) or ``JSON``. ``PARTITIONS``/``REPLICAS`` are kept
for topic creation. ``SET 'auto.offset.reset'`` decides where a new program
starts reading; a few performance settings of ksqlDB are accepted and have no
effect; anything else is refused.
"""

from __future__ import annotations

from lakestream.derive.statements import ast
from lakestream.derive.statements.errors import StatementError

SOURCE_PROPERTIES = ("KAFKA_TOPIC", "VALUE_FORMAT", "KEY_FORMAT", "FORMAT", "TIMESTAMP",
                     "TIMESTAMP_FORMAT", "PARTITIONS", "REPLICAS")
OUTPUT_PROPERTIES = ("KAFKA_TOPIC", "VALUE_FORMAT", "KEY_FORMAT", "FORMAT", "PARTITIONS",
                     "REPLICAS")
_KEY_FORMATS = ("KAFKA", "JSON")
_OFFSET_RESET = ("auto.offset.reset", "ksql.streams.auto.offset.reset")
NO_EFFECT_SETTINGS = ("processing.guarantee", "ksql.streams.processing.guarantee",
                      "cache.max.bytes.buffering", "ksql.streams.cache.max.bytes.buffering",
                      "commit.interval.ms", "ksql.streams.commit.interval.ms")


def check_setting(statement: ast.SetProperty) -> None:
    """Refuse a ``SET`` Lakestream does not honour."""
    name, value = statement.name, statement.value
    if name in _OFFSET_RESET:
        if value.lower() not in ("earliest", "latest"):
            raise StatementError(statement.line, f"SET '{name}' takes 'earliest' or 'latest', "
                                                 f"not '{value}'")
        return
    if name not in NO_EFFECT_SETTINGS:
        raise StatementError(statement.line, f"SET '{name}' is not supported (Lakestream "
                                             "honours 'auto.offset.reset')")


def read_properties(properties: tuple[ast.Property, ...], allowed: tuple[str, ...],
                    line: int) -> dict[str, ast.Property]:
    """The properties by name, refusing unknown, repeated and unsupported format values."""
    found: dict[str, ast.Property] = {}
    for prop in properties:
        if prop.name not in allowed:
            raise StatementError(prop.line, f"the WITH property {prop.name} is not supported "
                                            f"here (supported: {', '.join(allowed)})")
        if prop.name in found:
            raise StatementError(prop.line, f"the WITH property {prop.name} is given twice")
        found[prop.name] = prop
    _check_formats(found)
    for name in ("PARTITIONS", "REPLICAS"):
        if name in found and not (found[name].value.isdigit() and int(found[name].value) > 0):
            raise StatementError(found[name].line, f"{name} must be a positive whole number")
    return found


def _check_formats(found: dict[str, ast.Property]) -> None:
    if "FORMAT" in found:
        both = found["FORMAT"]
        if both.value.upper() != "JSON":
            raise StatementError(both.line, f"FORMAT '{both.value}' is not supported (JSON)")
        for name in ("VALUE_FORMAT", "KEY_FORMAT"):
            if name in found:
                raise StatementError(found[name].line, f"{name} cannot be given with FORMAT")
    if "VALUE_FORMAT" in found and found["VALUE_FORMAT"].value.upper() != "JSON":
        value = found["VALUE_FORMAT"]
        raise StatementError(value.line, f"VALUE_FORMAT '{value.value}' is not supported "
                                         "(only JSON)")
    if "KEY_FORMAT" in found and found["KEY_FORMAT"].value.upper() not in _KEY_FORMATS:
        key = found["KEY_FORMAT"]
        raise StatementError(key.line, f"KEY_FORMAT '{key.value}' is not supported (KAFKA or "
                                       "JSON)")


def key_format(found: dict[str, ast.Property]) -> str:
    """``KAFKA`` (the default) or ``JSON``."""
    if "FORMAT" in found:
        return "JSON"
    return found["KEY_FORMAT"].value.upper() if "KEY_FORMAT" in found else "KAFKA"


def integer(found: dict[str, ast.Property], name: str) -> int | None:
    """A whole-number property, if given."""
    return int(found[name].value) if name in found else None
