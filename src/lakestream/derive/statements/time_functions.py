"""ksqlDB's time functions on DuckDB, and ``HMAC_SHA256``, Lakestream's one extension.

Times are UTC. ksqlDB formats and parses in the server's time zone when
``TIMESTAMPTOSTRING``/``STRINGTOTIMESTAMP`` get none; Lakestream uses UTC, and
a time-zone argument other than UTC is refused. Formats must be literals (they
are translated once, see :mod:`.timeformat`). A text that does not parse gives
NULL (ksqlDB logs the error and gives NULL too).
"""

from __future__ import annotations

from lakestream.derive.statements import ast, types
from lakestream.derive.statements.calls import INTEGRAL, TEXT, Call, result, scalar
from lakestream.derive.statements.expressions import ANON_KEY_VARIABLE
from lakestream.derive.statements.pseudonyms import pseudonym_sql
from lakestream.derive.statements.timeformat import (
    UTC_NAMES,
    TimeFormat,
    TimeFormatError,
    translate,
)
from lakestream.derive.statements.typed import Typed

ANON_KEY_PLACEHOLDER = "${" + ANON_KEY_VARIABLE + "}"


def _format(call: Call, index: int) -> TimeFormat:
    pattern = call.string_literal(index, "format")
    try:
        return translate(pattern)
    except TimeFormatError as exc:
        call.fail(f"{call.name}: {exc}")


def _utc_only(call: Call, index: int) -> None:
    if len(call.raw) > index:
        zone = call.string_literal(index, "time zone")
        if zone not in UTC_NAMES:
            call.fail(f"{call.name}: the time zone '{zone}' is not supported (Lakestream "
                      "formats and parses times in UTC)")


def _from_epoch_ms(sql: str) -> str:
    return f"make_timestamp(CAST({sql} AS BIGINT) * 1000)"


@scalar("TIMESTAMPTOSTRING")
def _timestamp_to_string(call: Call) -> Typed:
    call.arity(2, 3)
    epoch_ms = call.arg(0, *INTEGRAL)
    fmt = _format(call, 1)
    _utc_only(call, 2)
    return result(fmt.format_sql(_from_epoch_ms(epoch_ms.sql)), types.STRING)


@scalar("STRINGTOTIMESTAMP")
def _string_to_timestamp(call: Call) -> Typed:
    call.arity(2, 3)
    text = call.arg(0, *TEXT)
    fmt = _format(call, 1)
    _utc_only(call, 2)
    return result(f"epoch_ms({fmt.parse_sql(text.sql)})", types.BIGINT)


@scalar("PARSE_TIMESTAMP")
def _parse_timestamp(call: Call) -> Typed:
    call.arity(2, 3)
    text = call.arg(0, *TEXT)
    fmt = _format(call, 1)
    _utc_only(call, 2)
    return result(f"CAST({fmt.parse_sql(text.sql)} AS TIMESTAMP)", types.TIMESTAMP)


@scalar("FORMAT_TIMESTAMP")
def _format_timestamp(call: Call) -> Typed:
    call.arity(2, 3)
    timestamp = call.arg(0, types.TIMESTAMP_T)
    fmt = _format(call, 1)
    _utc_only(call, 2)
    return result(fmt.format_sql(timestamp.sql), types.STRING)


@scalar("UNIX_TIMESTAMP")
def _unix_timestamp(call: Call) -> Typed:
    call.arity(0, 1)
    if not call.raw:
        return result("epoch_ms(get_current_timestamp())", types.BIGINT)
    timestamp = call.arg(0, types.TIMESTAMP_T)
    return result(f"epoch_ms({timestamp.sql})", types.BIGINT)


@scalar("HMAC_SHA256")
def _hmac_sha256(call: Call) -> Typed:
    """Lakestream's extension: the hex HMAC-SHA256 of a string, keyed by ``LAKESTREAM_ANON_KEY``.

    The key is never written in a statement: the second argument must be the
    placeholder ``'${LAKESTREAM_ANON_KEY}'``; the SQL looks the pseudonym up in the
    table the executor registers with the key from the environment
    (:func:`.pseudonyms.register_pseudonyms`).
    """
    call.arity(2)
    value = call.arg(0, *TEXT)
    key = call.raw[1]
    if not isinstance(key, ast.Literal) or key.kind != "string" or key.text != (
            ANON_KEY_PLACEHOLDER):
        call.fail(f"HMAC_SHA256's key must be '{ANON_KEY_PLACEHOLDER}' (the key comes from the "
                  "environment, never from a statement)")
    return result(pseudonym_sql(value.sql), types.STRING)
