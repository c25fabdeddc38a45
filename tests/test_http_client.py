"""The sinks' keep-alive HTTP client over real sockets: reuse, stale connections, timeouts, bad URLs."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from convotel.sinks._http import InvalidURL, KeepAliveClient, TransportError
from rawhttp import LoopbackServer, read_request

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class OneShotServer(LoopbackServer):
    """Answers ``per_connection`` requests on each accepted connection, then closes it silently."""

    path = "/api/v1"

    def __init__(self, per_connection: int, *, answer: bool = True) -> None:
        self.per_connection = per_connection
        self.answer = answer
        self.requests = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        for _ in range(self.per_connection):
            if read_request(conn) is None:
                break
            self.requests += 1
            if not self.answer:
                threading.Event().wait(2)
                break
            conn.sendall(OK)


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


# -- answers framed every way HTTP/1.1 allows ---------------------------------------------------


class ScriptedServer(LoopbackServer):
    """Reads each request whole, answers with the next scripted bytes (sent in pieces, to test
    reassembly); an answer of ``None`` closes the connection instead; ``close_after`` closes
    the connection after that answer."""

    def __init__(self, answers: list[tuple[bytes | None, bool]], *, pieces: int = 3) -> None:
        self.answers = list(answers)
        self.pieces = pieces
        self.requests: list[bytes] = []
        super().__init__()

    def accepting(self) -> bool:
        return bool(self.answers)

    def handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while self.answers:
            request = read_request(conn)
            if request is None:
                break
            self.requests.append(request)
            answer, close = self.answers.pop(0)
            if answer is None:
                break
            step = max(1, len(answer) // self.pieces)
            for i in range(0, len(answer), step):
                conn.sendall(answer[i:i + step])
                threading.Event().wait(0.002)
            if close:
                break


def _serve(answers: list[tuple[bytes | None, bool]], **kw: int) -> Iterator[ScriptedServer]:
    srv = ScriptedServer(answers, **kw)
    try:
        yield srv
    finally:
        srv.close()


def test_chunked_body_with_extensions_and_trailers_is_reassembled() -> None:
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
              b"4;ext=1\r\n{\"a\"\r\n5\r\n: 12}\r\n0\r\nX-Trailer: yes\r\n\r\n")
    for srv in _serve([(answer, False), (OK, False)]):
        client = KeepAliveClient(srv.url, timeout_s=2)
        got = client.post("/x", b"{}", {})
        assert (got.status, got.body, got.headers["content-type"]) == (200, b'{"a": 12}', "application/json")
        assert client.post("/x", b"{}", {}).body == b"{}"  # the connection is still in step
        assert srv.connections == 1
        client.close()


def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    for srv in _serve([(closing, True), (OK, False)]):
        client = KeepAliveClient(srv.url, timeout_s=2)
        assert client.post("/x", b"{}", {}).body == b"{}"
        assert client.post("/x", b"{}", {}).body == b"{}"
        assert srv.connections == 2
        client.close()


def test_a_body_without_length_runs_to_the_end_of_the_connection() -> None:
    for srv in _serve([(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", True), (OK, False)]):
        client = KeepAliveClient(srv.url, timeout_s=2)
        assert client.post("/x", b"{}", {}).body == b"all of it"
        assert client.post("/x", b"{}", {}).status == 200
        assert srv.connections == 2
        client.close()


def test_informational_answers_are_skipped_and_headers_parsed() -> None:
    answer = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\nX-Multi: a\r\nx-multi: b\r\n"
              b"Content-Length: 0\r\n\r\n")
    for srv in _serve([(answer, False), (b"HTTP/1.1 204 No Content\r\n\r\n", False), (OK, False)]):
        client = KeepAliveClient(srv.url, timeout_s=2)
        got = client.post("/x", b"{}", {})
        assert (got.status, got.body, got.headers["retry-after"], got.headers["x-multi"]) == (429, b"", "7", "a, b")
        assert client.post("/x", b"{}", {}).status == 204
        assert client.post("/x", b"{}", {}).body == b"{}"
        assert srv.connections == 1
        client.close()


def test_the_request_is_one_well_formed_message() -> None:
    for srv in _serve([(OK, False), (OK, False)]):
        client = KeepAliveClient(srv.url + "/api/v1/", timeout_s=2)
        client.post("/messages", b'{"k": 1}', {"Authorization": "Bearer abc", "Content-Type": "application/json"})
        client.post("/messages", b"[]", {"Authorization": "Bearer other"})  # changed headers are not cached over
        first, second = srv.requests
        head, _, body = first.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /api/v1/messages HTTP/1.1" and body == b'{"k": 1}'
        assert {b"Authorization: Bearer abc", b"Content-Type: application/json", b"Content-Length: 8",
                f"Host: 127.0.0.1:{srv.sock.getsockname()[1]}".encode()} <= set(lines)
        assert b"Authorization: Bearer other" in second and b"Bearer abc" not in second
        client.close()


def test_a_large_body_arrives_whole() -> None:
    body = b"x" * 3_000_000
    big_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 1_000_000
    for srv in _serve([(big_answer, False)], pieces=7):
        client = KeepAliveClient(srv.url, timeout_s=5)
        assert client.post("/x", body, {}).body == b"y" * 1_000_000
        assert srv.requests[0].endswith(body)
        client.close()


def test_an_answer_cut_short_is_a_transport_error_not_a_retry() -> None:
    for srv in _serve([(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", True), (OK, False)]):
        client = KeepAliveClient(srv.url, timeout_s=2)
        with pytest.raises(TransportError, match="unreadable answer"):
            client.post("/x", b"{}", {})
        assert len(srv.requests) == 1  # a request that may have been processed is not re-sent here
        assert client.post("/x", b"{}", {}).status == 200  # and the next request gets a fresh connection
        client.close()


def test_garbage_is_a_transport_error() -> None:
    for srv in _serve([(b"SMTP ready\r\n\r\n", True)]):
        with pytest.raises(TransportError, match="bad status line"):
            KeepAliveClient(srv.url, timeout_s=2).post("/x", b"{}", {})


def test_a_connection_dropped_without_answer_is_retried_once_then_an_error() -> None:
    for srv in _serve([(OK, False), (None, False), (None, False)]):
        client = KeepAliveClient(srv.url, timeout_s=2)
        assert client.post("/x", b"{}", {}).status == 200
        with pytest.raises(TransportError, match="lost"):
            client.post("/x", b"{}", {})  # reused connection dropped, then the fresh one dropped too
        assert len(srv.requests) == 3 and srv.connections == 2


def test_a_header_value_with_a_line_break_is_refused_without_echoing_it() -> None:
    client = KeepAliveClient("http://127.0.0.1:9", timeout_s=1)
    with pytest.raises(ValueError) as caught:
        client.post("/x", b"{}", {"Authorization": "Bearer sec\r\nX-Injected: 1"})
    assert "sec" not in str(caught.value)


def test_a_kept_alive_connection_that_times_out_is_not_reused() -> None:
    srv = OneShotServer(per_connection=5, answer=False)
    try:
        client = KeepAliveClient(srv.url, timeout_s=0.2)
        with pytest.raises(TransportError) as caught:
            client.post("/messages", b"{}", {})
        assert caught.value.timeout and client._sock is None
    finally:
        srv.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_with_keep_alive_and_certificate_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    raw = socket.create_server(("127.0.0.1", 0))
    port = raw.getsockname()[1]
    seen: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = raw.accept()
            except OSError:
                return
            try:
                tls = server_ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                continue
            with tls:
                seen.append(1)
                data = b""
                for _ in range(3):
                    while b"\r\n\r\n" not in data:
                        chunk = tls.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    data = data.partition(b"\r\n\r\n")[2][2:]  # the 2-byte body
                    tls.sendall(OK)

    threading.Thread(target=serve, daemon=True).start()
    try:
        untrusted = KeepAliveClient(f"https://127.0.0.1:{port}", timeout_s=2)
        with pytest.raises(TransportError, match="cannot reach"):
            untrusted.post("/x", b"{}", {})
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        client = KeepAliveClient(f"https://localhost:{port}", timeout_s=2)
        assert [client.post("/x", b"{}", {}).body for _ in range(3)] == [b"{}"] * 3
        assert len(seen) == 1  # one TLS connection for all three
        client.close()
    finally:
        raw.close()


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_against_uvicorn_chunked_streaming_and_keep_alive(http: str) -> None:
    import time

    if http == "httptools":
        pytest.importorskip("httptools")

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def stream(request: Request) -> StreamingResponse:
        body = await request.body()

        async def parts():  # type: ignore[no-untyped-def]
            for part in (b'{"echo": ', body, b"}"):
                yield part

        return StreamingResponse(parts(), media_type="application/json")

    async def fixed(request: Request) -> Response:
        return Response(b'{"ok": true}', media_type="application/json")

    app = Starlette(routes=[Route("/s", stream, methods=["POST"]), Route("/f", fixed, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, log_level="critical",
                                           lifespan="off", access_log=False, http=http))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        client = KeepAliveClient(f"http://127.0.0.1:{port}", timeout_s=2)
        assert client.post("/f", b"{}", {}).status == 200
        kept = client._sock
        for i in range(3):
            streamed = client.post("/s", str(i).encode(), {"Content-Type": "application/json"})
            assert (streamed.status, streamed.body) == (200, b'{"echo": ' + str(i).encode() + b"}")
            assert streamed.headers["transfer-encoding"] == "chunked"
            assert client.post("/f", b"{}", {}).body == b'{"ok": true}'
        assert client._sock is kept
        client.close()
    finally:
        server.should_exit = True
        thread.join(5)
