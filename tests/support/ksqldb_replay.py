"""A local HTTP server that replays ksqlDB ``/query-stream`` answers in the documented format.

No ksqlDB server can run here (SPEC §2), so the client is tested against this:
HTTP/1.1 with chunked transfer encoding, ``application/vnd.ksqlapi.delimited.v1``
(a JSON header line, then one JSON array per row), error objects with
``@type``/``error_code``/``message``, and the failures a network gives
(a connection dropped mid-answer, a server that never answers).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    header: dict[str, Any] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    status: int = 200
    error: dict[str, Any] | None = None  # the body of a 4xx/5xx, or a line after some rows
    drop_after: int | None = None  # close the socket after this many rows
    delay_s: float = 0.0  # wait this long before answering
    as_json: bool = False  # answer application/json (one array) instead of delimited


class ReplayServer:
    """Serves scripted replies for SQL containing a key (the first match wins)."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[dict[str, Any]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reply(self, sql_contains: str, reply: Reply) -> None:
        """Answer queries whose SQL contains ``sql_contains`` with ``reply``."""
        self.replies[sql_contains] = reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "accept": self.headers.get("Accept")})
                reply = next((r for k, r in server.replies.items() if k in body["sql"]), None)
                if self.path != "/query-stream" or reply is None:
                    reply = Reply(status=400, error={"@type": "statement_error",
                                                     "error_code": 40001,
                                                     "message": "no such query scripted"})
                time.sleep(reply.delay_s)
                _answer(self, reply)

        return Handler

    @contextmanager
    def running(self) -> Iterator[ReplayServer]:
        """Serve on a thread for the block's duration."""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def _answer(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    if reply.status >= 400:
        payload = json.dumps(reply.error).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        return
    items: list[Any] = [reply.header, *reply.rows]
    if reply.as_json:
        payload = json.dumps(items + ([reply.error] if reply.error else [])).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "application/vnd.ksqlapi.delimited.v1")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for n, item in enumerate(items):
        if reply.drop_after is not None and n > reply.drop_after:
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)  # mid-answer, no final chunk
            handler.close_connection = True
            return
        _chunk(handler, json.dumps(item).encode() + b"\n")
    if reply.error is not None:
        _chunk(handler, json.dumps(reply.error).encode() + b"\n")
    handler.wfile.write(b"0\r\n\r\n")


def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()
