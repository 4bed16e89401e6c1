"""Loopback TCP port helpers for launching local services in tests."""

from __future__ import annotations

import socket
import time

__all__ = ["free_port", "port_is_open", "wait_for_port"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free at the time of the call.

    The port is found by binding to port 0 and letting the kernel choose, then
    releasing it. Another process may grab it before the caller binds it, so
    callers that spawn servers should treat "address already in use" as retryable.

    Returns:
        A currently unused TCP port number on the loopback interface.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether a TCP connection to ``host:port`` can be established now.

    Args:
        host: Host name or IP address to connect to.
        port: TCP port number.
        timeout: Seconds to wait for the connection attempt.

    Returns:
        True if a connection was accepted, False otherwise.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until a TCP listener accepts connections on ``host:port``.

    Args:
        host: Host name or IP address to connect to.
        port: TCP port number.
        timeout: Maximum number of seconds to wait.

    Raises:
        TimeoutError: If nothing accepted a connection within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        remaining = deadline - time.monotonic()
        if port_is_open(host, port, timeout=max(0.05, min(1.0, remaining))):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"nothing is listening on {host}:{port} after waiting {timeout:.1f} s"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.25)
