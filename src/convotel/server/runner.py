"""Running the ingest API on uvicorn: in a background thread (tests, the demo) or in the foreground.

We bind the listening socket ourselves so that port 0 yields a known
ephemeral port before uvicorn starts, and connections that arrive early wait
in the backlog instead of being refused.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

import uvicorn
from starlette.middleware import Middleware

from convotel.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from convotel.store import Store

_STARTUP_TIMEOUT_S: Final = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def api_url(sock: socket.socket) -> str:
    """The API base URL for a bound socket, e.g. ``http://127.0.0.1:53123/v1`` (clients append ``/messages``)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def _uvicorn_config(app: object, *, foreground: bool) -> uvicorn.Config:
    # In a thread we leave the host's logging configuration alone and stay quiet.
    return uvicorn.Config(
        app, lifespan="off", timeout_graceful_shutdown=5,
        log_level="info" if foreground else "warning",
        access_log=foreground,
        **({} if foreground else {"log_config": None}),
    )


@dataclass
class ServerHandle:
    """A running ingest server. ``url`` is the API base (``http://127.0.0.1:PORT/v1``)."""

    url: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, finish in-flight requests, and wait for the thread (idempotent)."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(f"ingest server at {self.url} did not stop within {timeout_s} s")

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(store: Store, *, token: str, strict: bool = False, host: str = "127.0.0.1", port: int = 0,
                  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                  middleware: Sequence[Middleware] = ()) -> ServerHandle:
    """Start the ingest API in a daemon thread and return once it is serving."""
    app = create_app(store, token=token, strict=strict, max_body_bytes=max_body_bytes, middleware=middleware)
    sock = bind(host, port)
    server = uvicorn.Server(_uvicorn_config(app, foreground=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="convotel-ingest", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the ingest server did not start; see the uvicorn error above")
        time.sleep(0.005)
    return ServerHandle(api_url(sock), sock.getsockname()[1], server, thread)


def serve(store: Store, *, token: str, strict: bool = False, host: str = "127.0.0.1", port: int = 0,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, on_listening: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then shut down gracefully and return.

    ``on_listening`` gets the API base URL once the socket is bound.
    """
    app = create_app(store, token=token, strict=strict, max_body_bytes=max_body_bytes)
    sock = bind(host, port)
    server = uvicorn.Server(_uvicorn_config(app, foreground=True))

    def request_exit(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    # uvicorn re-raises the signal it caught once it has shut down; with this handler in
    # place that ends in a clean return (exit status 0) instead of death by signal.
    previous = {sig: signal.signal(sig, request_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_listening is not None:
            on_listening(api_url(sock))
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
