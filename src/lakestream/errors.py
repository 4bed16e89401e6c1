"""The one error hierarchy of Lakestream, on two independent axes.

*Which system failed?* Every error a user can cause or meet derives from
:class:`LakestreamError` through the class of the system it concerns: the
configuration or the command line (:class:`ConfigError`, :class:`UsageError`,
:class:`FeedError`), Kafka (:class:`BrokerError`), the lake's storage and
tables (:class:`StorageError`), a query over the lake (:class:`QueryError`),
the warehouse or the gold store (:class:`WarehouseError`), an HTTP source such
as OpenWeather (:class:`HttpSourceError`), ksqlDB (:class:`KsqlDbError`), the
notification webhook (:class:`WebhookError`), the data itself
(:class:`DataQualityError`).

*May I retry?* The :class:`TransientError` / :class:`TerminalError` mixins
(dlt's Transient/Terminal exceptions) carry nothing else: a concrete error
mixes one of them into its system's class, e.g.
``class StorageUnavailableError(StorageError, TransientError)``. The retry
policies (:mod:`lakestream.retry`) retry transient errors only; a terminal one
(a bad configuration, a full disk, refused credentials) needs a person.

An error names what it concerns, as attributes and in its message: the
dataset's URI, the Kafka topic and partition, the URL of a server (always
without its password: :func:`safe_url`). The CLI turns any
:class:`LakestreamError` into one clear line and exit status 1 (2 for a
:class:`UsageError`).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

_SECRET_PARAM = re.compile(r"((?:appid|api_?key|key|token|password|secret|signature)=)[^&\s\"']+",
                           re.IGNORECASE)


def safe_url(url: object) -> str:
    """``url`` fit to be shown: no password in its user part, no key in its query.

    Accepts a string or any object whose ``str`` is a URL (an ``httpx.URL``). A
    SQLAlchemy URL should be rendered with ``render_as_string(hide_password=True)``
    first, or passed as is: its ``str`` hides the password already.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return _SECRET_PARAM.sub(r"\1***", text)
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = SplitResult(parts.scheme, f"{parts.username or ''}:***@{host}", parts.path,
                            parts.query, parts.fragment)
        text = urlunsplit(parts)
    return _SECRET_PARAM.sub(r"\1***", text)


class LakestreamError(Exception):
    """Root of every error Lakestream raises on purpose.

    Args:
        message: One line for the user: what went wrong.
        hint: Optional second sentence: how to fix it.
        dataset: The URI of the lake dataset concerned (a Delta table's folder).
        topic: The Kafka topic concerned.
        partition: The partition of ``topic`` concerned.
        url: The server concerned; shown without password or key (:func:`safe_url`).

    Whatever context is given and not yet named by ``message`` is appended to it,
    so the one line a user sees always says where the failure was.
    """

    def __init__(self, message: str, hint: str | None = None, *, dataset: str | None = None,
                 topic: str | None = None, partition: int | None = None,
                 url: object | None = None) -> None:
        self.dataset = dataset
        self.topic = topic
        self.partition = partition
        self.url = safe_url(url) if url is not None else None
        message = _with_context(message, dataset, topic, partition, self.url)
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def _with_context(message: str, dataset: str | None, topic: str | None,
                  partition: int | None, url: str | None) -> str:
    missing = []
    if dataset and dataset not in message:
        missing.append(f"dataset {dataset}")
    if topic is not None:
        named = f"{topic}[{partition}]" if partition is not None else topic
        if named not in message:
            missing.append(f"topic {named}")
    if url and url not in message:
        missing.append(f"at {url}")
    return f"{message} [{', '.join(missing)}]" if missing else message


# -- may I retry? ------------------------------------------------------------------------------


class TransientError(Exception):
    """Mixin: a failure that may go away by itself (a server down, a dropped connection).

    It carries no system: a concrete error mixes it into its system's class. The
    retry policies wait and try again.
    """


class TerminalError(Exception):
    """Mixin: a failure that retrying cannot fix; stop and tell the user.

    It carries no system: a concrete error mixes it into its system's class.
    """


# -- which system failed? ----------------------------------------------------------------------
# configuration and the command line: never transient


class ConfigError(LakestreamError, TerminalError):
    """The configuration (file, environment or flags) is invalid, or an extra is missing."""


class UsageError(LakestreamError, TerminalError):
    """The command was called wrongly; the CLI exits 2 for these."""


class FeedError(LakestreamError, TerminalError):
    """An unknown, invalid or disabled feed, or one used in a way its kind forbids."""


class UnknownNameError(FeedError, UsageError):
    """An unknown feed or pipeline name: a usage error (exit 2) wherever it is given."""


# Kafka


class BrokerError(LakestreamError):
    """Kafka (a broker, a topic, a consumer group) failed; see the concrete classes."""


class BrokerUnavailableError(BrokerError, TransientError):
    """Kafka cannot be reached, did not acknowledge, or answered with a passing error."""


class BrokerRefusedError(BrokerError, TerminalError):
    """Kafka cannot do what was asked however long one waits (a missing binary, lost data)."""


# the lake: its storage (a local folder or an object store) and its Delta tables


class StorageError(LakestreamError):
    """The lake's storage or one of its tables failed; see the concrete classes."""


class StorageUnavailableError(StorageError, TransientError):
    """The storage failed an operation in a way that may pass (an object store that is down)."""


class StorageConflictError(StorageError, TransientError):
    """Other writers kept winning the race for a table's next log version: try again later."""


class StorageFullError(StorageError, TerminalError):
    """The storage refused a write for lack of space (ENOSPC, EDQUOT)."""


class StoragePermissionError(StorageError, TerminalError):
    """The storage refused access to a path (EACCES, EPERM) or is read-only (EROFS)."""


class StorageLayoutError(StorageError, TerminalError):
    """A file stands where the lake needs a folder, or the reverse (ENOTDIR, EISDIR)."""


class LakeDataError(StorageError, TerminalError):
    """The lake holds data Lakestream cannot use as it is (corrupt, unconvertible, a gap)."""


class FencedError(StorageError, TerminalError):
    """Another consumer committed offsets for a partition this one thought it owned."""


class QueryError(LakestreamError, TerminalError):
    """A query over the lake failed (bad SQL, unknown dataset)."""


# the warehouse and the gold store (SQL databases)


class WarehouseError(LakestreamError):
    """The warehouse (or the gold store) failed; see the concrete classes."""


class WarehouseRefusedError(WarehouseError, TerminalError):
    """The warehouse refused the work for a reason retrying cannot fix.

    Wrong credentials, a missing database or schema, data the schema rejects.
    """


class WarehouseUnavailableError(WarehouseError, TransientError):
    """The warehouse cannot be reached or dropped the connection: retry with backoff."""


# external services


class HttpSourceError(LakestreamError):
    """An HTTP source (OpenWeather) failed; its module has the concrete classes."""


class KsqlDbError(LakestreamError):
    """ksqlDB failed; see :mod:`lakestream.sources.ksqldb` for the concrete classes."""


class WebhookError(LakestreamError):
    """The notification webhook failed; see :mod:`lakestream.orchestrate.notify`."""


# the data itself


class DataQualityError(LakestreamError, TerminalError):
    """The data failed a check that must hold (quality checks, integrity checks)."""
