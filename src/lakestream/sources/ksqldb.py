"""A client for ksqlDB's pull queries (``POST /query-stream``).

The response, in the ``application/vnd.ksqlapi.delimited.v1`` format, is one
JSON object per line: first a header (``queryId``, ``columnNames``,
``columnTypes``), then one JSON array per row. An error is a JSON object with
``@type``, ``error_code`` and ``message``: the whole body of a 4xx/5xx answer,
or a line in the middle of the stream when the query fails after it started.
A server that answers ``application/json`` sends the same items as one array.

Failures become one clear line: :class:`KsqlDbRefusedError` when the server
refused the query (retrying cannot help), :class:`KsqlDbUnavailableError` when
it could not be reached, did not answer in time or dropped the connection (pull
queries are idempotent: :meth:`KsqlDbClient.pull` retries these on
:data:`~lakestream.retry.KSQLDB`). Both are :class:`KsqlDbError` subclasses and name the
server's URL without its password.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pyarrow as pa

from lakestream.errors import KsqlDbError, TerminalError, TransientError, safe_url
from lakestream.retry import KSQLDB, RetryPolicy

log = logging.getLogger(__name__)

DELIMITED = "application/vnd.ksqlapi.delimited.v1"

__all__ = ["KsqlDbClient", "KsqlDbError", "KsqlDbRefusedError", "KsqlDbUnavailableError",
           "PullResult", "restore_case"]


class KsqlDbRefusedError(KsqlDbError, TerminalError):
    """ksqlDB refused the query (bad SQL, unknown stream, server-side failure)."""


class KsqlDbUnavailableError(KsqlDbError, TransientError):
    """ksqlDB could not be reached, timed out or dropped the connection."""


@dataclass
class PullResult:
    """A finished pull query: its header and every row, as dicts keyed by column name."""

    query_id: str | None
    columns: list[str]
    types: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)


class KsqlDbClient:
    """Pull queries against one ksqlDB server.

    Args:
        url: The server's base URL (``http://ksqldb:8088``).
        timeout_s: Longest wait for any read (the server's next line).
        connect_timeout_s: Longest wait to connect.
        retries: Extra attempts after a connection failure, a timeout or a drop
            (``None``: the policy's).
        http2: Talk HTTP/2 (needs the ``h2`` package); HTTP/1.1 otherwise.
        policy: Waits between attempts (:data:`~lakestream.retry.KSQLDB`).
    """

    def __init__(self, url: str, timeout_s: float = 30.0, connect_timeout_s: float = 5.0,
                 retries: int | None = None, http2: bool = False,
                 policy: RetryPolicy = KSQLDB) -> None:
        self.url = url.rstrip("/")
        self.shown = safe_url(self.url)  # the URL in messages: never its password
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.policy = policy if retries is None else replace(policy, attempts=retries + 1)
        self.http2 = http2

    def pull(self, sql: str, properties: dict[str, Any] | None = None) -> PullResult:
        """Run a pull query to its end and return every row.

        Raises:
            KsqlDbRefusedError: The server refused or failed the query.
            KsqlDbUnavailableError: Still unreachable / timing out / dropping after retries.
        """
        return self.policy.call(lambda: self._pull_once(sql, properties or {}),
                                "ksqlDB pull query", logger=log)

    def _pull_once(self, sql: str, properties: dict[str, Any]) -> PullResult:
        body = {"sql": sql, "properties": properties}
        headers = {"Accept": DELIMITED, "Content-Type": DELIMITED}
        result: PullResult | None = None
        try:
            with httpx.Client(timeout=self.timeout, http2=self.http2) as client, \
                    client.stream("POST", f"{self.url}/query-stream", json=body,
                                  headers=headers) as response:
                if response.status_code >= 400:
                    raise _http_error(response.status_code, response.read(), self.shown)
                for item in _items(response):
                    result = self._take(item, result)
        except httpx.TimeoutException:
            raise KsqlDbUnavailableError(
                f"ksqlDB at {self.shown} did not answer within {self.timeout.read:g}s",
                "is the server overloaded? pull queries over large streams take time",
                url=self.shown) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            got = len(result.rows) if result else 0
            raise KsqlDbUnavailableError(
                f"ksqlDB at {self.shown} dropped the connection after {got} rows ({exc})",
                url=self.shown) from None
        except httpx.TransportError as exc:
            raise KsqlDbUnavailableError(f"cannot reach ksqlDB at {self.shown}: {exc}",
                                         "check ksqldb_url / $LAKESTREAM_KSQLDB_URL",
                                         url=self.shown) from None
        if result is None:
            raise KsqlDbUnavailableError(f"ksqlDB at {self.shown} sent no header for the query",
                                         url=self.shown)
        return result

    def _take(self, item: Any, result: PullResult | None) -> PullResult:
        if isinstance(item, dict) and ("error_code" in item or "@type" in item):
            raise _server_error(item, self.shown)
        if result is None:
            if not isinstance(item, dict) or "columnNames" not in item:
                raise KsqlDbRefusedError(
                    f"ksqlDB sent an unexpected first line: {str(item)[:200]}")
            return PullResult(item.get("queryId"), list(item["columnNames"]),
                              list(item.get("columnTypes", [])))
        if not isinstance(item, list):
            raise KsqlDbRefusedError(f"ksqlDB sent an unexpected row: {str(item)[:200]}")
        if len(item) != len(result.columns):
            raise KsqlDbRefusedError(f"ksqlDB sent a row of {len(item)} values for "
                              f"{len(result.columns)} columns")
        result.rows.append(dict(zip(result.columns, item, strict=True)))
        return result


def _items(response: httpx.Response) -> Iterator[Any]:
    """The JSON items of a streamed answer, in either content type."""
    if response.headers.get("content-type", "").startswith("application/json"):
        parsed = _parse(response.read().decode())
        yield from parsed if isinstance(parsed, list) else [parsed]
        return
    for line in response.iter_lines():
        if line.strip():
            yield _parse(line.rstrip(","))


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise KsqlDbRefusedError(
            f"ksqlDB sent something that is not JSON: {text[:200]!r}") from None


def _http_error(status: int, body: bytes, url: str) -> KsqlDbError:
    try:
        item = json.loads(body)
    except ValueError:
        item = None
    if isinstance(item, dict):
        error = _server_error(item, url)
    else:
        error = KsqlDbRefusedError(
            f"ksqlDB answered HTTP {status}: {body[:200].decode(errors='replace')}", url=url)
    if status in (502, 503, 504) or (status >= 500 and isinstance(item, dict)
                                     and item.get("error_code") == 50300):
        return KsqlDbUnavailableError(error.message, error.hint, url=url)
    return error


def _server_error(item: dict[str, Any], url: str) -> KsqlDbRefusedError:
    code = item.get("error_code", "?")
    message = str(item.get("message", "no message")).strip().splitlines()[0]
    hint = "check the stream or table name: SHOW STREAMS; SHOW TABLES;" \
        if "not exist" in message or "Unknown" in message else None
    return KsqlDbRefusedError(f"ksqlDB error {code} ({item.get('@type', 'error')}): {message}",
                              hint, url=url)


def restore_case(row: dict[str, Any], schema: pa.Schema | pa.StructType) -> dict[str, Any]:
    """ksqlDB upper-cases unquoted names: map them back to the feed's names (else lower case)."""
    fields = {f.name.lower(): f for f in schema}
    out: dict[str, Any] = {}
    for name, value in row.items():
        known = fields.get(name.lower())
        if known is not None and pa.types.is_struct(known.type) and isinstance(value, dict):
            value = restore_case(value, known.type)
        out[known.name if known is not None else name.lower()] = value
    return out
