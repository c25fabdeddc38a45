"""Running the ingest API on uvicorn: in a background thread (tests) or in the foreground (``convotel serve``)."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Final

import uvicorn
from starlette.middleware import Middleware

from convotel._asgi import ServerHandle, base_url, bind, quiet_config, serve_in_thread
from convotel.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from convotel.store import Store

API_PATH: Final = "/v1"


def api_url(sock: socket.socket) -> str:
    """The API base URL for a bound socket, e.g. ``http://127.0.0.1:53123/v1`` (clients append ``/messages``)."""
    return base_url(sock) + API_PATH


def run_in_thread(store: Store, *, token: str, strict: bool = False, host: str = "127.0.0.1", port: int = 0,
                  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                  middleware: Sequence[Middleware] = ()) -> ServerHandle:
    """Start the ingest API in a daemon thread and return once it is serving."""
    app = create_app(store, token=token, strict=strict, max_body_bytes=max_body_bytes, middleware=middleware)
    return serve_in_thread(app, host=host, port=port, path=API_PATH, name="convotel-ingest")


def serve(store: Store, *, token: str, strict: bool = False, host: str = "127.0.0.1", port: int = 0,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, on_listening: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then shut down gracefully and return.

    ``on_listening`` gets the API base URL once the socket is bound.
    """
    app = create_app(store, token=token, strict=strict, max_body_bytes=max_body_bytes)
    sock = bind(host, port)
    server = uvicorn.Server(quiet_config(app, foreground=True))

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
