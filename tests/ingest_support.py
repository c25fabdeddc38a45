"""A real Greenflash-compatible ingest server for tests, recording and checking every request.

The fixtures in ``conftest.py`` wrap :func:`running_ingest_server`; :func:`body` and
:func:`user` build ``POST /v1/messages`` bodies for it (or for the store directly).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.middleware import Middleware

import greenflash_schema
from convotel.server import run_in_thread
from convotel.store import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def body(*messages: dict[str, Any], conversation: str = "conv-1", **fields: Any) -> dict[str, Any]:
    """A ``POST /v1/messages`` body: ``messages`` in one conversation of user ``alice``."""
    return {"externalUserId": "alice", "externalConversationId": conversation, "messages": list(messages), **fields}


def user(mid: str, text: str = "hi", **fields: Any) -> dict[str, Any]:
    """A user message for :func:`body`."""
    return {"externalMessageId": mid, "messageType": "user_message", "content": text, **fields}


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: bytes
    status: int = 0
    response: bytearray = field(default_factory=bytearray)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def response_json(self) -> Any:
        return orjson.loads(self.response)


class _Recorder:
    """ASGI middleware appending each exchange to a list.

    The record is appended when the response starts, before the client can see
    it, so a test that got its answer always finds its request recorded.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, into: list[RecordedRequest]) -> None:
        self.app = app
        self.into = into

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        record = RecordedRequest(scope["method"], scope["path"], b"")

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.body, record.status = bytes(body), message["status"]
                self.into.append(record)
            elif message["type"] == "http.response.body":
                record.response.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive_and_keep, send_and_record)


@dataclass
class IngestServer:
    url: str  # API base: POST f"{url}/messages"; GET f"{url}/interactions"
    token: str
    store: Store
    requests: list[RecordedRequest]
    rejections_expected: bool = False

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def expect_rejections(self) -> None:
        """This test sends invalid or unauthorised requests on purpose: do not fail it for those."""
        self.rejections_expected = True

    def posted(self) -> list[Any]:
        """Parsed bodies of every ``POST /v1/messages`` the server accepted, in arrival order."""
        return [r.json() for r in self.requests if r.path == "/v1/messages" and 200 <= r.status < 300]


def ingest_problems(server: IngestServer) -> list[str]:
    problems: list[str] = []
    for i, r in enumerate(server.requests):
        where = f"request {i} ({r.method} {r.path} -> {r.status})"
        if r.status >= 500:
            problems.append(f"{where}: server error {bytes(r.response)[:300]!r}")
        if r.method != "POST" or r.path != "/v1/messages":
            continue
        accepted = 200 <= r.status < 300
        if server.rejections_expected and not accepted:
            continue
        try:
            violations = greenflash_schema.validate_create_params(r.json())
        except orjson.JSONDecodeError:
            violations = ["body: not JSON"]
        problems.extend(f"{where}: {v}" for v in violations)
        if not accepted:
            problems.append(f"{where}: rejected: {bytes(r.response)[:300]!r}")
    return problems


@contextmanager
def running_ingest_server(directory: Path, *, token: str = "test-token", strict: bool = True,
                          **options: Any) -> Iterator[IngestServer]:
    """A checked ingest server over a fresh store in ``directory`` (see the module docstring)."""
    store = Store(directory / "ingest.db")
    requests: list[RecordedRequest] = []
    handle = run_in_thread(store, token=token, strict=strict,
                           middleware=[Middleware(_Recorder, into=requests)], **options)
    server = IngestServer(handle.url, token, store, requests)
    try:
        yield server
    finally:
        handle.stop()
        store.close()
    problems = ingest_problems(server)
    assert not problems, "the ingest server saw bad traffic:\n" + "\n".join(problems)


