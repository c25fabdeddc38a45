"""Replay recorded OpenAI HTTP exchanges (VCR YAML cassettes) from a real local server.

The cassettes live in ``<repo>/../shared/corpus/openai-cassettes/`` (override with
``CONVOTEL_OPENAI_CASSETTES``). Tests talk to them through the real ``openai``
client::

    from openai_replay import replay_server, request_kwargs

    with replay_server("test_chat_completion_with_content") as url:
        client = openai.OpenAI(base_url=url, api_key="test", max_retries=0)
        completion = client.chat.completions.create(**request_kwargs("test_chat_completion_with_content"))

The server is uvicorn + Starlette on 127.0.0.1 with an ephemeral port, started
once per process in a daemon thread and shared: every ``replay_server(...)``
block registers its cassette under its own URL prefix, so concurrent blocks do
not interfere. Interactions are matched by method + path, and by JSON body when
a cassette holds several for the same path (falling back to recording order).
Status, headers (minus content-length / transfer-encoding / content-encoding
and hop-by-hop headers) and body are replayed; ``text/event-stream`` bodies are
sent event by event.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
_DROP_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}


def cassette_dir() -> Path:
    override = os.environ.get("CONVOTEL_OPENAI_CASSETTES")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "corpus" / "openai-cassettes"


def _require_dir() -> Path:
    directory = cassette_dir()
    if not directory.is_dir():
        import pytest

        pytest.skip(f"OpenAI cassette corpus not found at {directory} (set CONVOTEL_OPENAI_CASSETTES)")
    return directory


def cassette_names() -> list[str]:
    """Names (without ``.yaml``) of every available cassette; empty when the corpus is absent."""
    directory = cassette_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml"))


@dataclass(frozen=True)
class Interaction:
    method: str
    path: str
    request_body: Any  # parsed JSON, or None
    status: int
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def is_event_stream(self) -> bool:
        return any(k.lower() == "content-type" and "text/event-stream" in v for k, v in self.headers)

    def response_json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Cassette:
    name: str
    interactions: list[Interaction]
    _served: itertools.count = field(default_factory=itertools.count, repr=False)

    def match(self, method: str, path: str, body: bytes) -> Interaction | None:
        candidates = [i for i in self.interactions if i.method == method and i.path == path]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        for candidate in candidates:
            if candidate.request_body == parsed:
                return candidate
        return candidates[next(self._served) % len(candidates)]


def _path_of(uri: str) -> str:
    return urlsplit(uri).path.rstrip("/") or "/"


def _headers(raw: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, value in (raw or {}).items():
        if name.lower() in _DROP_HEADERS:
            continue
        for item in value if isinstance(value, list) else [value]:
            out.append((name, str(item)))
    return tuple(out)


@lru_cache(maxsize=None)
def _load(name: str, directory: str) -> tuple[Interaction, ...]:
    path = Path(directory) / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"no cassette {path}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe loader
    interactions = []
    for item in data.get("interactions", []):
        req, resp = item["request"], item["response"]
        raw_body = req.get("body")
        try:
            request_body = json.loads(raw_body) if raw_body else None
        except ValueError:
            request_body = None
        body = resp.get("body") or {}
        interactions.append(
            Interaction(
                method=req["method"].upper(),
                path=_path_of(req["uri"]),
                request_body=request_body,
                status=int(resp["status"]["code"]),
                headers=_headers(resp.get("headers")),
                body=body.get("string", "") if isinstance(body, dict) else str(body),
            )
        )
    return tuple(interactions)


def load_cassette(name: str) -> Cassette:
    """Parse a cassette (``pytest.skip`` when the corpus is absent)."""
    directory = _require_dir()
    return Cassette(name, list(_load(name, str(directory))))


def request_kwargs(name: str, index: int = 0) -> dict[str, Any]:
    """The recorded JSON request body of interaction ``index``: the kwargs to call the client with."""
    body = load_cassette(name).interactions[index].request_body
    return json.loads(json.dumps(body)) if body is not None else {}


def recorded_response(name: str, index: int = 0) -> Interaction:
    return load_cassette(name).interactions[index]


# --------------------------------------------------------------------------- server


class _ReplayApp:
    """Starlette app routing ``/<token>/<path>`` to the cassette registered under ``token``."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.cassettes: dict[str, Cassette] = {}
        self.requests: dict[str, list[tuple[str, str, bytes]]] = {}
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{token}/{path:path}", self._handle, methods=methods)])

    async def _handle(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response, StreamingResponse

        token = request.path_params["token"]
        path = "/" + request.path_params["path"].rstrip("/")
        body = await request.body()
        cassette = self.cassettes.get(token)
        if cassette is None:
            return JSONResponse({"error": {"message": f"replay: unknown cassette token {token}"}}, status_code=400)
        self.requests.setdefault(token, []).append((request.method, path, body))
        interaction = cassette.match(request.method, path, body)
        if interaction is None:
            message = f"replay: {cassette.name} has no interaction for {request.method} {path}"
            return JSONResponse({"error": {"message": message, "type": "replay_mismatch"}}, status_code=400)
        if interaction.is_event_stream:
            events = _split_events(interaction.body)

            async def gen() -> Any:
                for event in events:
                    yield event.encode()
                    await asyncio.sleep(0)

            response: Any = StreamingResponse(gen(), status_code=interaction.status)
        else:
            response = Response(content=interaction.body.encode(), status_code=interaction.status)
        for key, value in interaction.headers:
            response.headers.append(key, value)
        return response


def _split_events(body: str) -> list[str]:
    parts = body.split("\n\n")
    events = [p + "\n\n" for p in parts[:-1]]
    if parts[-1]:
        events.append(parts[-1])
    return events


class _Server:
    def __init__(self) -> None:
        import uvicorn

        self.replay = _ReplayApp()
        config = uvicorn.Config(self.replay.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="openai-replay", daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("openai replay server failed to start")
            self.thread.join(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


_lock = threading.Lock()
_server: _Server | None = None
_tokens = itertools.count(1)


def _shared_server() -> _Server:
    global _server
    with _lock:
        if _server is None:
            _server = _Server()
            atexit.register(_server.stop)
        return _server


@contextmanager
def replay_server(name: str) -> Iterator[str]:
    """Serve cassette ``name``; yields the base URL to give the client (ends in ``/v1``)."""
    cassette = load_cassette(name)
    server = _shared_server()
    token = f"c{next(_tokens)}"
    server.replay.cassettes[token] = cassette
    try:
        yield f"http://127.0.0.1:{server.port}/{token}/v1"
    finally:
        server.replay.cassettes.pop(token, None)
        server.replay.requests.pop(token, None)


def served_requests(url: str) -> list[tuple[str, str, bytes]]:
    """(method, path, body) of every request the server received under ``url`` so far."""
    token = urlsplit(url).path.strip("/").split("/")[0]
    return list(_shared_server().replay.requests.get(token, []))


def closed_port_url() -> str:
    """A 127.0.0.1 URL nobody listens on (for connection-error tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
