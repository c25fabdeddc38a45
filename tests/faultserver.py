"""A fake Greenflash ``POST /v1/messages`` on 127.0.0.1 with scripted faults, for tests.

    with FaultServer(api_key="k") as server:
        server.fail(503, times=2)                    # next two requests: 503
        server.fail(429, retry_after="1", conversation="c1")
        sink = GreenflashSink("k", base_url=server.base_url)
        ...
        server.wait_for(lambda got: len(got) >= 3)
        server.delivered_ids()                       # ids of accepted requests, in arrival order

Faults apply to the first matching request(s) in the order they were added; a request no
fault matches gets the real API's answer: 200 with ``messages[].status`` ``created`` or,
for an ``externalMessageId`` seen before in that conversation, ``deduplicated``. Every
request is recorded, whatever it was answered.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


@dataclass
class Fault:
    kind: str  # "status" | "garbage" | "hang" | "close"
    status: int = 200
    body: bytes = b""
    retry_after: str | None = None
    delay_s: float = 0.0
    conversation: str | None = None  # only requests for this externalConversationId
    times: int | None = 1  # None: forever

    def matches(self, conversation: str | None) -> bool:
        return (self.times is None or self.times > 0) and self.conversation in (None, conversation)


@dataclass
class Received:
    raw: bytes
    headers: dict[str, str]
    body: dict[str, Any] | None  # parsed JSON, if it parsed
    answered: int = 0  # status we answered; 0 if we closed the connection instead

    @property
    def conversation(self) -> str | None:
        return (self.body or {}).get("externalConversationId")

    @property
    def ids(self) -> list[str]:
        return [m.get("externalMessageId") for m in (self.body or {}).get("messages", [])]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages", []))


class _CloseConnection(Exception):
    """Raised mid-response so uvicorn drops the connection."""


class _HalfResponse(Response):
    """Promises a body, sends a few bytes of it, then kills the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"succ', "more_body": True})
        raise _CloseConnection()


@dataclass
class FaultServer:
    api_key: str | None = None  # if set, requests need "Authorization: Bearer <api_key>"
    max_body_bytes: int | None = None  # bigger bodies get 413
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._faults: list[Fault] = []
        self._seen: set[tuple[str, str]] = set()
        self._generation = 0  # bumped by reset(): late answers of older requests change nothing
        self._cond = threading.Condition()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- scripting ------------------------------------------------------------------------
    def add(self, fault: Fault) -> None:
        with self._cond:
            self._faults.append(fault)

    def fail(self, status: int, *, times: int | None = 1, retry_after: str | None = None,
             body: bytes | dict[str, Any] = b"", conversation: str | None = None) -> None:
        raw = orjson.dumps(body) if isinstance(body, dict) else body
        self.add(Fault("status", status=status, body=raw, retry_after=retry_after, conversation=conversation,
                       times=times))

    def garbage(self, body: bytes = b"<html>not json</html>", *, times: int | None = 1,
                conversation: str | None = None) -> None:
        self.add(Fault("garbage", body=body, conversation=conversation, times=times))

    def hang(self, seconds: float, *, times: int | None = 1, conversation: str | None = None) -> None:
        """Answer normally, but only after ``seconds`` (past the client's timeout)."""
        self.add(Fault("hang", delay_s=seconds, conversation=conversation, times=times))

    def close(self, *, times: int | None = 1, conversation: str | None = None) -> None:
        """Start a response, then drop the connection."""
        self.add(Fault("close", conversation=conversation, times=times))

    def reset(self) -> None:
        with self._cond:
            self._generation += 1
            self._faults.clear()
            self._seen.clear()
            self.received.clear()

    # -- reading --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.received)

    def accepted(self, conversation: str | None = None) -> list[Received]:
        return [r for r in self.snapshot()
                if 200 <= r.answered < 300 and r.body is not None and conversation in (None, r.conversation)]

    def delivered_ids(self, conversation: str | None = None) -> list[str]:
        """Message ids of accepted requests, in arrival order (duplicates kept)."""
        return [i for r in self.accepted(conversation) for i in r.ids]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(list(self.received)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # -- serving --------------------------------------------------------------------------
    async def _messages(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        record = Received(raw=raw, headers=dict(request.headers), body=body if isinstance(body, dict) else None)
        conversation = record.conversation
        with self._cond:
            generation = self._generation
            fault = next((f for f in self._faults if f.matches(conversation)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
            self.received.append(record)  # on arrival: a hanging request is recorded before its retry
            self._cond.notify_all()
        response = await self._answer(request, record, fault, generation)
        with self._cond:
            self._cond.notify_all()
        return response

    async def _answer(self, request: Request, record: Received, fault: Fault | None, generation: int) -> Response:
        def reply(status: int, content: bytes, headers: dict[str, str] | None = None) -> Response:
            record.answered = status
            return Response(content, status_code=status, headers=headers, media_type="application/json")

        given = request.headers.get("authorization", "")
        if self.api_key is not None and given != f"Bearer {self.api_key}":
            # Echo what was sent, as careless APIs do: the sink must scrub it from its errors.
            return reply(401, orjson.dumps({"error": f"Invalid API key: {given}"}))
        if self.max_body_bytes is not None and len(record.raw) > self.max_body_bytes:
            return reply(413, orjson.dumps({"error": "Request body too large"}))
        if fault is not None and fault.kind == "close":
            record.answered = 0
            return _HalfResponse()
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            return reply(fault.status, fault.body, headers)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.delay_s)
        if record.body is None or not isinstance(record.body.get("messages"), list):
            return reply(400, orjson.dumps({"error": "Invalid request body"}))
        answer = self._created(record.body, generation)
        if fault is not None and fault.kind == "garbage":
            return reply(200, fault.body)
        return reply(200, orjson.dumps(answer))

    def _created(self, body: dict[str, Any], generation: int) -> dict[str, Any]:
        """Greenflash's answer: one entry per message, deduplicated by id within the conversation."""
        conversation = str(body.get("externalConversationId"))
        out = []
        with self._cond:
            for m in body["messages"]:
                key = (conversation, m.get("externalMessageId"))
                status = "deduplicated" if key in self._seen else "created"
                if generation == self._generation:
                    self._seen.add(key)
                out.append({"messageId": str(uuid.uuid4()), "messageType": m.get("messageType", "user_message"),
                            "status": status, "externalMessageId": m.get("externalMessageId")})
        return {"success": True, "conversationId": str(uuid.uuid5(uuid.NAMESPACE_URL, conversation)),
                "messages": out, "systemPromptComponentIds": [], "systemPromptPromptId": ""}

    def start(self) -> FaultServer:
        app = Starlette(routes=[Route("/api/v1/messages", self._messages, methods=["POST"])])
        # Let uvicorn bind (port 0): a socket made with socket.socket(AF_INET, SOCK_STREAM) has
        # proto 0, asyncio then skips TCP_NODELAY and every keep-alive answer waits ~40 ms.
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, log_level="critical",
                                lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="faultserver")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fault server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
