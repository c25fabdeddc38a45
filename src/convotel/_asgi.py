"""Run an ASGI app on uvicorn: bind first, then serve in a background thread or the foreground.

Binding ourselves lets port 0 yield a known ephemeral port before uvicorn
starts, and connections that arrive early wait in the backlog instead of being
refused. Used by the ingest server, the demo's model server and tests.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import uvicorn

_STARTUP_TIMEOUT_S: Final = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: with proto 0, asyncio does not set TCP_NODELAY on accepted
    # connections, and every kept-alive request then waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def quiet_config(app: Any, *, foreground: bool = False) -> uvicorn.Config:
    # In a thread we leave the host's logging configuration alone and stay quiet.
    return uvicorn.Config(
        app, lifespan="off", timeout_graceful_shutdown=5,
        log_level="info" if foreground else "warning",
        access_log=foreground,
        **({} if foreground else {"log_config": None}),
    )


@dataclass
class ServerHandle:
    """A server running in a daemon thread; ``url`` is its base URL (plus the path it was given)."""

    url: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, finish in-flight requests, and wait for the thread (idempotent)."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(f"server at {self.url} did not stop within {timeout_s} s")

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0, path: str = "",
                    name: str = "convotel-server") -> ServerHandle:
    """Start ``app`` in a daemon thread and return once it is serving."""
    sock = bind(host, port)
    server = uvicorn.Server(quiet_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{name} did not start; see the uvicorn error above")
        time.sleep(0.005)
    return ServerHandle(base_url(sock) + path, sock.getsockname()[1], server, thread)
