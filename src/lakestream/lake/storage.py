"""One storage abstraction for the lake: a local folder or an S3 bucket prefix.

Paths given to :class:`Storage` are relative to the lake root and use ``/``.
Writes are atomic: a reader sees the old object or the whole new one, never a
prefix of it (local: write a hidden temporary file, then ``rename``; S3: a PUT
is atomic by itself).
"""

from __future__ import annotations

import errno
import getpass
import os
import re
import stat
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pyarrow import fs as pafs

from lakestream.config import S3Settings
from lakestream.errors import (
    ConfigError,
    StorageFullError,
    StorageLayoutError,
    StoragePermissionError,
    StorageUnavailableError,
)

# retrying cannot help: no space, no permission, or a file where a folder must be (or back)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}
_MISPLACED_ERRNOS = {errno.ENOTDIR, errno.EISDIR}


@dataclass(frozen=True)
class FileInfo:
    """A file below the lake root: relative path, size in bytes, mtime (epoch s), and
    its row count where a Delta log says it (``None``: read the Parquet footer)."""

    path: str
    size: int
    mtime: float
    records: int | None = None


class Storage:
    """A lake root on a pyarrow filesystem.

    Args:
        filesystem: ``LocalFileSystem`` or ``S3FileSystem``.
        base: The root's path on that filesystem (``/abs/folder`` or ``bucket/prefix``).
        uri: The root as the user wrote it (shown in messages and metadata).
        s3: The object store's settings (for engines that open it themselves: Delta).
    """

    def __init__(self, filesystem: pafs.FileSystem, base: str, uri: str,
                 s3: S3Settings | None = None) -> None:
        self.fs = filesystem
        self.s3 = s3
        self.base = base.rstrip("/")
        self.uri = uri.rstrip("/")
        self.is_local = isinstance(filesystem, pafs.LocalFileSystem)
        self._root_checked = False

    def full(self, rel: str) -> str:
        """The path of ``rel`` on the underlying filesystem."""
        return f"{self.base}/{rel}" if rel else self.base

    def url(self, rel: str) -> str:
        """``rel`` as a URL or absolute path (for DuckDB and users)."""
        return f"{self.uri}/{rel}" if rel else self.uri

    def check_root(self) -> None:
        """Refuse a lake root that cannot be the lake: a missing bucket, refused keys, a file.

        Listing a missing S3 prefix is not an error, so without this check a bucket
        that does not exist would look like an empty lake. Every operation runs it
        once per :class:`Storage` (so every command that touches the lake does);
        a failure that may pass (the endpoint is down) is a :class:`StorageUnavailableError`
        and the check runs again on the next operation. A local root that does
        not exist yet is fine: the first write makes it.

        Raises:
            ConfigError: The bucket does not exist, the keys are refused, or the
                local root is a file or cannot be read.
        """
        if self._root_checked:
            return
        with _translate(f"open the lake at {self.uri}"):
            if self.is_local:
                _check_local_root(self.base)
            else:
                _check_bucket(self.fs, self.base.split("/", 1)[0], self.uri)
        self._root_checked = True

    @contextmanager
    def _io(self, what: str) -> Iterator[None]:
        self.check_root()
        with _translate(what):
            yield

    def write_atomic(self, rel: str, data: bytes | memoryview) -> None:
        """Write ``data`` at ``rel`` so that readers never see a partial object."""
        try:
            self._write(rel, data)
        except FileNotFoundError:
            raise StorageLayoutError(f"cannot write {self.url(rel)}: a parent folder cannot be "
                                     "made", "check lake.root") from None

    def _write(self, rel: str, data: bytes | memoryview) -> None:
        with self._io(f"write {self.url(rel)}"):
            if not self.is_local:
                with self.fs.open_output_stream(self.full(rel)) as out:
                    out.write(data)
                return
            path = self.full(rel)
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise

    def read(self, rel: str) -> bytes:
        """The bytes of ``rel``; ``FileNotFoundError`` if it does not exist."""
        with self._io(f"read {self.url(rel)}"), self.fs.open_input_stream(self.full(rel)) as f:
            return bytes(f.read())

    def exists(self, rel: str) -> bool:
        """Whether a file exists at ``rel``."""
        with self._io(f"stat {self.url(rel)}"):
            return bool(self.fs.get_file_info(self.full(rel)).type == pafs.FileType.File)

    def move(self, src: str, dst: str) -> None:
        """Move a file (atomic rename locally; server-side copy + delete on S3)."""
        with self._io(f"move {self.url(src)} -> {self.url(dst)}"):
            if self.is_local:
                os.makedirs(os.path.dirname(self.full(dst)), exist_ok=True)
                os.replace(self.full(src), self.full(dst))
            else:
                self.fs.copy_file(self.full(src), self.full(dst))
                self.fs.delete_file(self.full(src))

    def delete(self, rel: str) -> None:
        """Delete a file; a missing file is not an error."""
        with self._io(f"delete {self.url(rel)}"), suppress(FileNotFoundError):
            self.fs.delete_file(self.full(rel))

    def delete_dir(self, rel: str) -> None:
        """Delete a folder and everything below it (missing is fine)."""
        with self._io(f"delete {self.url(rel)}"), suppress(FileNotFoundError):
            self.fs.delete_dir(self.full(rel))

    def list_files(self, prefix: str, recursive: bool = True) -> list[FileInfo]:
        """Files below ``prefix`` (relative paths, sorted); empty if it does not exist."""
        selector = pafs.FileSelector(self.full(prefix), allow_not_found=True, recursive=recursive)
        with self._io(f"list {self.url(prefix)}"):
            infos = self.fs.get_file_info(selector)
        skip = len(self.base) + 1
        files = [
            FileInfo(i.path[skip:], int(i.size or 0), i.mtime.timestamp() if i.mtime else 0.0)
            for i in infos
            if i.type == pafs.FileType.File and not i.base_name.startswith(".tmp-")
        ]
        return sorted(files, key=lambda f: f.path)

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``."""
        selector = pafs.FileSelector(self.full(prefix), allow_not_found=True, recursive=False)
        with self._io(f"list {self.url(prefix)}"):
            infos = self.fs.get_file_info(selector)
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def open_storage(root: str, s3: S3Settings) -> Storage:
    """Open the lake at ``root``: a local path or ``s3://bucket/prefix``."""
    parsed = urlparse(root)
    if parsed.scheme in ("", "file"):
        path = os.path.abspath(parsed.path if parsed.scheme == "file" else root)
        return Storage(pafs.LocalFileSystem(), path, path)
    if parsed.scheme not in ("s3", "s3a"):
        raise ConfigError(
            f"lake.root '{root}': unsupported scheme '{parsed.scheme}'",
            "use a local path or s3://bucket/prefix",
        )
    if not parsed.netloc:
        raise ConfigError(f"lake.root '{root}': missing bucket name", "use s3://bucket/prefix")
    return Storage(
        s3_filesystem(s3), f"{parsed.netloc}{parsed.path}", f"s3://{parsed.netloc}{parsed.path}",
        s3,
    )


def s3_filesystem(s3: S3Settings) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for the configured endpoint and keys."""
    kwargs: dict[str, Any] = {"region": s3.region, "connect_timeout": 5, "request_timeout": 30}
    if s3.endpoint:
        endpoint = urlparse(s3.endpoint if "://" in s3.endpoint else f"http://{s3.endpoint}")
        kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
    if s3.access_key and s3.secret_key:
        kwargs.update(
            access_key=s3.access_key.get_secret_value(),
            secret_key=s3.secret_key.get_secret_value(),
        )
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=3)
    return pafs.S3FileSystem(**kwargs)


def _check_local_root(path: str) -> None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(found.st_mode):
        raise ConfigError(f"lake.root {path} is a file, not a folder",
                          "point lake.root (LAKESTREAM_LAKE__ROOT) at a folder, or move the file")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"lake.root {path} cannot be read: permission denied",
                          "give this user read access (chmod u+rx), or point lake.root elsewhere")


_S3_REFUSED = re.compile(r"ACCESS_DENIED|SIGNATURE_DOES_NOT_MATCH|INVALID_ACCESS_KEY_ID"
                         r"|AccessDenied|SignatureDoesNotMatch|InvalidAccessKeyId|status 403")


def _check_bucket(filesystem: pafs.FileSystem, bucket: str, uri: str) -> None:
    try:
        info = filesystem.get_file_info(bucket)
    except OSError as exc:
        if _S3_REFUSED.search(str(exc)):
            raise ConfigError(
                f"the object store refused access to bucket '{bucket}' of lake.root {uri}: "
                "wrong S3 keys, or keys without access to it",
                "check LAKESTREAM_S3__ACCESS_KEY and LAKESTREAM_S3__SECRET_KEY",
            ) from None
        raise
    if info.type == pafs.FileType.NotFound:
        raise ConfigError(f"bucket '{bucket}' of lake.root {uri} does not exist",
                          "create the bucket, or fix lake.root (LAKESTREAM_LAKE__ROOT)")


def storage_errors(what: str) -> AbstractContextManager[None]:
    """Turn OS errors while doing ``what`` (outside :class:`Storage`) into storage errors."""
    return _translate(what)


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """Turn filesystem exceptions into the lake's errors, each with the fix it needs.

    No space (ENOSPC, EDQUOT) is :class:`StorageFullError`; no permission
    (EACCES, EPERM) or a read-only file system (EROFS) is
    :class:`StoragePermissionError`, naming the path; a file where a folder must
    be, or the reverse (ENOTDIR, EISDIR), is :class:`StorageLayoutError`. All
    three are terminal. Anything else may pass (an object store that is down):
    :class:`StorageUnavailableError`, transient.
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _storage_error(what, exc) from exc


def _storage_error(what: str, exc: OSError) -> Exception:
    code = exc.errno
    first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
    reason = os.strerror(code) if code else first_line
    path = _path_of(exc)
    at = f" ({path})" if path else ""
    if code in _FULL_ERRNOS:
        return StorageFullError(f"cannot {what}: {reason}",
                                "free space (or raise the quota) on the lake's storage, "
                                "then run again")
    if code in _DENIED_ERRNOS:
        return StoragePermissionError(
            f"cannot {what}: {reason}{at}",
            f"give the user {_user()} access to {path or 'the lake root'} "
            "(chown/chmod), or point lake.root elsewhere")
    if code == errno.EROFS:
        return StoragePermissionError(
            f"cannot {what}: {reason}{at}",
            "the file system holding the lake is mounted read-only: remount it read-write, "
            "or point lake.root elsewhere")
    if code in _MISPLACED_ERRNOS:
        return StorageLayoutError(
            f"cannot {what}: {reason}{at}",
            "a file stands where the lake needs a folder (or the reverse): move it away")
    return StorageUnavailableError(f"cannot {what}: {first_line}")


def _path_of(exc: OSError) -> str | None:
    """The path the OS refused; a hidden temporary file's folder (what needs the fix)."""
    if not exc.filename:
        return None
    path = os.fsdecode(exc.filename)
    return os.path.dirname(path) if os.path.basename(path).startswith(".tmp-") else path


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"with uid {os.geteuid()}"


def _unlink(path: str) -> None:
    with suppress(OSError):
        os.unlink(path)
