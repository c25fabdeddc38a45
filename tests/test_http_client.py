"""The sinks' keep-alive HTTP client over real sockets: reuse, stale connections, timeouts, bad URLs."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from convotel.sinks._http import InvalidURL, KeepAliveClient, TransportError

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class OneShotServer:
    """Answers ``per_connection`` requests on each accepted connection, then closes it silently."""

    def __init__(self, per_connection: int, *, answer: bool = True) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.per_connection = per_connection
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/v1"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                for _ in range(self.per_connection):
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length")), b"0"))
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.requests += 1
                    if not self.answer:
                        threading.Event().wait(2)
                        break
                    conn.sendall(OK)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[OneShotServer]:
    srv = OneShotServer(per_connection=1)
    yield srv
    srv.close()


def test_a_connection_closed_while_idle_is_replaced_transparently(server: OneShotServer) -> None:
    client = KeepAliveClient(server.url, timeout_s=2)
    answers = [client.post("/messages", b'{"a": 1}', {"Content-Type": "application/json"}) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert server.requests == 3 and server.connections == 3
    client.close()


def test_kept_alive_connection_is_reused() -> None:
    srv = OneShotServer(per_connection=5)
    try:
        client = KeepAliveClient(srv.url, timeout_s=2)
        for _ in range(5):
            assert client.post("/messages", b"{}", {}).body == b"{}"
        assert srv.connections == 1
    finally:
        srv.close()


def test_a_silent_server_times_out() -> None:
    srv = OneShotServer(per_connection=1, answer=False)
    try:
        with pytest.raises(TransportError) as caught:
            KeepAliveClient(srv.url, timeout_s=0.3).post("/messages", b"{}", {})
        assert caught.value.timeout
    finally:
        srv.close()


def test_nobody_listening_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError, match="cannot reach 127.0.0.1"):
        KeepAliveClient(f"http://127.0.0.1:{port}", timeout_s=1).post("/x", b"{}", {})


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(InvalidURL, match="not an absolute http"):
        KeepAliveClient("ftp://example.invalid/api", timeout_s=1)
