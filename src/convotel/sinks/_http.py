"""A small keep-alive HTTP/1.1 client for JSON APIs, on the standard library's sockets.

Delivery sends from one worker thread, so one persistent connection is all a sink
needs. Every model call of an app ends in such a request, so the exchange is kept
to the fewest system calls: the request leaves in one ``sendall`` (one TCP segment
for a small body), the answer is read with plain ``recv`` and parsed here (status
line, headers, a body framed by ``Content-Length``, chunked transfer-encoding, or
the connection's end).

``http.client`` sends headers and body in two writes, polls before every socket
call and parses headers with the ``email`` package; this costs about half its CPU
per request on loopback (measured with ``time.thread_time``).

Requests of many conversations that are due together are pipelined (HTTP/1.1):
written in one ``sendall`` and answered in order, so a burst costs one round trip
instead of one per conversation (with a 30 ms round trip to the API, one at a time
caps a sink at ~30 conversations per second) and a few system calls instead of two
per request. The requests carry message ids that the API deduplicates, so a request
re-sent after a broken pipeline is never counted twice. A server that answers part of
a pipeline and then closes the connection or goes silent is taken not to support it:
the rest, and everything after, go one at a time.

Timeouts: on Linux a plain-HTTP socket stays blocking and the kernel enforces the
read/write timeout (``SO_RCVTIMEO``/``SO_SNDTIMEO``), which saves a ``poll`` before
every ``send``/``recv``; TLS sockets and other platforms use Python's socket timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

logger = logging.getLogger("convotel.sinks")

_MAX_HEAD = 64 * 1024  # status line + headers
_RECV = 65536
_PIPELINE_BYTES = 1 << 20  # a pipelined write holds at most this much (or one request, however large)
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_WS = " \t\n\r\x0b\x0c"  # what bytes.strip() strips


class TransportError(Exception):
    """The request did not get an HTTP answer. ``timeout``: the server was too slow."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class InvalidURL(ValueError):
    """The base URL is not an absolute http(s) URL."""


@dataclass(slots=True)  # not frozen: built once per request, and frozen costs a setattr call per field
class Answer:
    status: int
    headers: dict[str, str]  # lowercased names
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


class _Stale(Exception):
    """The connection ended before any byte of an answer: on a reused connection, the server
    had closed it while idle and the request never reached the application."""


class _Protocol(Exception):
    """The server's answer is not HTTP/1.x we can read."""


class _Headers:
    """A request's bytes before its ``Content-Length`` value (``head``) and from there up to the body
    (``tail``), cached while the caller passes the same path and equal headers; they hold the API
    key, so its repr does not show them."""

    __slots__ = ("path", "source", "head", "tail")

    def __init__(self, path: str, source: dict[str, str], head: bytes, tail: bytes) -> None:
        self.path = path
        self.source = source
        self.head = head
        self.tail = tail

    def __repr__(self) -> str:
        return "<headers ***>"


def _header_block(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        name, value = str(name), str(value)
        if not name or any(c in name for c in ":\r\n\0 \t") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid HTTP header {name!r}")  # never echoes the value (it may be a key)
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class _Reader:
    """Buffered reads of answers from a socket (one per connection: a connection kept open has
    nothing left unread between exchanges)."""

    __slots__ = ("sock", "buf", "got_any")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.got_any = False

    def fill(self) -> bool:
        data = self.sock.recv(_RECV)
        if not data:
            return False
        self.got_any = True
        self.buf += data
        return True

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                return line
            if len(self.buf) > _MAX_HEAD:
                raise _Protocol("line too long")
            if not self.fill():
                raise _Protocol("connection closed mid-answer")

    def exactly(self, n: int) -> bytes:
        if len(self.buf) < n:
            parts, have = [self.buf], len(self.buf)
            while have < n:
                data = self.sock.recv(max(_RECV, min(n - have, 1 << 20)))
                if not data:
                    raise _Protocol("connection closed mid-body")
                self.got_any = True
                parts.append(data)
                have += len(data)
            self.buf = b"".join(parts)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self) -> bytes:
        parts = [self.buf]
        while data := self.sock.recv(_RECV):
            parts.append(data)
        self.buf = b""
        return b"".join(parts)


def _read_answer(reader: _Reader, *, more_expected: bool = False) -> tuple[Answer, bool]:
    """One answer (informational 1xx answers skipped); and whether the connection must close.
    ``more_expected``: answers to pipelined requests follow (bytes past this one are theirs)."""
    while True:
        buf = reader.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > _MAX_HEAD:
                raise _Protocol("header section too long")
            if not reader.fill():
                if not reader.got_any:
                    raise _Stale("connection closed before an answer")
                raise _Protocol("connection closed mid-answer")
            buf = reader.buf
        head, reader.buf = buf[:end], buf[end + 4:]
        # Empty lines before a status line are ignored.
        status_line, _, fields = head.lstrip(b"\r\n").partition(b"\r\n")
        if not status_line:
            continue
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise _Protocol(f"bad status line {status_line[:40]!r}")
        status = int(code)
        headers = _fields(fields.decode("latin-1")) if fields else {}
        if 100 <= status < 200:
            continue  # 100 Continue, 103 Early Hints: the real answer follows
        connection = headers.get("connection", "").lower()
        close = "close" in connection or (version == b"HTTP/1.0" and "keep-alive" not in connection)
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _read_chunked(reader)
        elif (length := headers.get("content-length")) is not None:
            try:
                size = int(length)
            except ValueError:
                raise _Protocol("bad Content-Length") from None
            if size < 0:
                raise _Protocol("bad Content-Length")
            body = reader.exactly(size)
        else:  # the body runs to the end of the connection
            body = reader.rest()
            close = True
        if reader.buf and not more_expected:  # bytes past the answer: nothing we asked for; do not reuse the connection
            close = True
        return Answer(status, headers, body), close


def _fields(text: str) -> dict[str, str]:
    """Header fields by lowercased name, from their lines decoded as latin-1 (a character per byte);
    values stripped of ASCII whitespace only, as bytes would be."""
    headers: dict[str, str] = {}
    last = ""
    for raw in text.split("\r\n"):
        if raw[:1] in (" ", "\t") and last:  # obsolete line folding
            headers[last] += " " + raw.strip(_WS)
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            raise _Protocol("malformed header line")
        last = name.strip(_WS).lower()
        value = value.strip(_WS)
        # Repeated fields combine as the RFC says (the last one alone for a length: see _read_answer).
        if last in headers and last != "content-length":
            value = f"{headers[last]}, {value}"
        headers[last] = value
    return headers


def _read_chunked(reader: _Reader) -> bytes:
    parts = []
    while True:
        size_line = reader.line().split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise _Protocol("bad chunk size") from None
        if size < 0:
            raise _Protocol("bad chunk size")
        if size == 0:
            while reader.line():  # trailer fields, up to the empty line
                pass
            return b"".join(parts)
        parts.append(reader.exactly(size))
        if reader.exactly(2) != b"\r\n":
            raise _Protocol("chunk not followed by CRLF")


class KeepAliveClient:
    """One kept-alive connection. ``pipeline_depth``: most requests written before their answers
    are read (1 after the server showed it does not pipeline)."""

    def __init__(self, base_url: str, *, timeout_s: float, connect_timeout_s: float | None = None,
                 pipeline_depth: int = 32) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidURL(f"{base_url!r} is not an absolute http(s) URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise InvalidURL(f"{base_url!r} has an invalid port") from None
        self._port = port or (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if port is None else f"{host}:{port}"
        self.path_prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._connect_timeout_s = min(timeout_s, connect_timeout_s or 5.0)
        self._sock: socket.socket | None = None
        self._reader: _Reader | None = None  # the connection's
        self._ssl_context: ssl.SSLContext | None = None
        self._headers: _Headers | None = None
        self.pipeline_depth = max(1, pipeline_depth)
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (c := ref()) is not None and c._forget())

    def _forget(self) -> None:
        # In a forked child the socket is the parent's: drop it without a word on the wire.
        self._sock = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                if self._ssl_context is None:
                    self._ssl_context = ssl.create_default_context()
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self._host)
                sock.settimeout(self._timeout_s)
            elif _KERNEL_TIMEOUTS:
                seconds = max(self._timeout_s, 0.001)
                timeval = struct.pack("@ll", int(seconds), int((seconds % 1) * 1_000_000))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
                sock.settimeout(None)  # blocking: the kernel times out each send/recv (EAGAIN)
            else:
                sock.settimeout(self._timeout_s)
        except BaseException:
            sock.close()
            raise
        return sock

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` to ``path`` (under the base URL's path); raises :class:`TransportError`."""
        outcome = self.post_many(path, [body], headers)[0]
        if isinstance(outcome, TransportError):
            raise outcome
        return outcome

    def post_many(self, path: str, bodies: Sequence[bytes], headers: dict[str, str]) -> list[Answer | TransportError]:
        """POST each body to ``path``, pipelined; an :class:`Answer` or a :class:`TransportError` per body,
        in order."""
        cached = self._headers
        if cached is None or cached.path != path or cached.source != headers:
            head = f"POST {self.path_prefix}{path} HTTP/1.1\r\nHost: {self._host_header}\r\n" \
                   "Accept-Encoding: identity\r\nContent-Length: "
            cached = self._headers = _Headers(path, dict(headers), head.encode("latin-1"),
                                              b"\r\n" + _header_block(headers) + b"\r\n")
        head, tail = cached.head, cached.tail
        requests = [b"%b%d%b%b" % (head, len(body), tail, body) for body in bodies]
        outcomes: list[Answer | TransportError] = []
        while len(outcomes) < len(requests):
            outcomes += self._send_window(self._window(requests, len(outcomes)))
        return outcomes

    def _window(self, requests: list[bytes], start: int) -> list[bytes]:
        """The requests from ``start`` that go out in one write."""
        end, size = start + 1, len(requests[start])
        limit = min(len(requests), start + self.pipeline_depth)
        while end < limit and size + len(requests[end]) <= _PIPELINE_BYTES:
            size += len(requests[end])
            end += 1
        return requests[start:end]

    def _send_window(self, window: list[bytes]) -> list[Answer | TransportError]:
        """Outcomes of the first requests of ``window``: all of them, or those answered before the
        server closed the connection (the caller sends the rest again)."""
        reused = self._sock is not None
        answers, failure = self._exchange(window)
        if isinstance(failure, _Stale) and not answers and reused:
            answers, failure = self._exchange(window)  # the kept-alive connection had died while idle
        if failure is None:
            return answers
        if answers:
            # Closing before the next answer began, or never sending it: this server does not take
            # pipelined requests. An answer cut short is a broken connection like any other.
            silent = isinstance(failure, _Stale) or failure.timeout
            if silent and self.pipeline_depth > 1:
                logger.debug("convotel: %s:%s left pipelined requests unanswered (%s); sending one at a time",
                             self._host, self._port, failure)
                self.pipeline_depth = 1
            return answers
        error = self._lost(failure) if isinstance(failure, _Stale) else failure
        return [error] * len(window)

    def _lost(self, exc: _Stale) -> TransportError:
        return TransportError(f"connection to {self._host}:{self._port} lost: {exc}")

    def _exchange(self, window: list[bytes]) -> tuple[list[Answer], TransportError | _Stale | None]:
        """Writes the requests, reads their answers in order; stops early at a ``close``. A failure
        leaves the connection closed and comes back with the answers read before it."""
        answers: list[Answer] = []
        reader: _Reader | None = None
        try:
            if self._sock is None or self._reader is None:
                self._sock = self._connect()
                self._reader = _Reader(self._sock)
            reader = self._reader
            reader.got_any = False  # until a byte of an answer came: a failure is _Stale
            self._sock.sendall(window[0] if len(window) == 1 else b"".join(window))
            final = len(window) - 1
            for index in range(len(window)):
                reader.got_any = bool(reader.buf)  # _Stale: the server closed before this answer began
                answer, close = _read_answer(reader, more_expected=index < final)
                answers.append(answer)
                if close:
                    self.close()
                    break
            return answers, None
        except _Stale as exc:
            self.close()
            return answers, exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.close()
            if reader is None or not reader.got_any:
                return answers, _Stale(type(exc).__name__)
            return answers, TransportError(f"connection to {self._host}:{self._port} lost: {type(exc).__name__}")
        except (TimeoutError, BlockingIOError):  # socket.timeout, or the kernel's SO_RCVTIMEO (EAGAIN)
            self.close()
            return answers, TransportError(f"no answer from {self._host}:{self._port} within {self._timeout_s:g}s",
                                           timeout=True)
        except _Protocol as exc:
            self.close()
            return answers, TransportError(f"unreadable answer from {self._host}:{self._port}: {exc}")
        except (OSError, ValueError) as exc:
            self.close()
            return answers, TransportError(f"cannot reach {self._host}:{self._port}: {type(exc).__name__}: {exc}")
        except BaseException:
            self.close()  # whatever it was, the connection may be mid-answer: never reuse it
            raise

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
