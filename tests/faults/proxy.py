"""A TCP proxy that can make a server unreachable or hang without touching the server.

Clients are pointed at the proxy; the test switches its mode:

- ``forward``: bytes flow both ways (the normal state);
- ``down``: every open connection is reset and new ones are reset at once, as when
  the server's host went away (the server itself keeps running: other tests may use it);
- ``hang``: connections are accepted but nothing is answered, and open ones freeze
  for good (as after a middlebox silently dropped their state): only the client's
  own timeouts can end those requests; new connections work again after ``forward``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Literal

Mode = Literal["forward", "down", "hang"]


class TcpProxy:
    """Listens on a free loopback port and relays to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode: Mode = "forward"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        self.connections = 0
        self.resets = 0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the proxy."""
        return f"127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; ``down`` resets every open connection."""
        with self._lock:
            self.mode = mode
            if mode == "down":
                for sock in self._open:
                    self._reset(sock)
                self._open.clear()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        self.set_mode("down")
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                if mode == "down":
                    self._reset(client)
                    continue
                self._open.append(client)
                self.connections += 1
            if mode == "hang":
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        frozen = False
        try:
            while not self._closed:
                if self.mode == "hang":
                    frozen = True
                if frozen:  # a dead path stays dead for the connections that met it
                    select.select([], [], [], 0.1)
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def _reset(self, sock: socket.socket) -> None:
        """Close with RST (SO_LINGER 0), as a vanished host or a firewall reject does."""
        self.resets += 1
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()
