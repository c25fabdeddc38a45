"""Raw-socket HTTP/1.1 servers on 127.0.0.1 for the HTTP client tests: each subclass scripts how
a connection is answered (or not)."""

from __future__ import annotations

import socket
import threading


def content_length(head: bytes) -> int:
    return int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length")), b"0"))


def read_request(conn: socket.socket) -> bytes | None:
    """One whole request (head and ``Content-Length`` body); ``None`` when the client closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = content_length(head)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


class LoopbackServer:
    """Accepts connections one after another and hands each to :meth:`handle`."""

    path = ""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{self.path}"

    def accepting(self) -> bool:
        return True

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while self.accepting():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self.handle(conn)

    def close(self) -> None:
        self.sock.close()
