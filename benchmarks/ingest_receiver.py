"""A minimal Greenflash-compatible ``POST /v1/messages`` receiver (``--ingest fast``).

The default backend for convotel is the real ``convotel serve`` (validating,
storing in SQLite). This one only parses the JSON, counts messages and answers
in Greenflash's ``CreateMessageResponse`` shape, for runs where the ingest
server's own cost or behaviour should be out of the picture. ``GET /stats``
returns ``{"requests": n, "messages": n, "bytes": n}``.
"""

from __future__ import annotations

import hashlib

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_stats = {"requests": 0, "messages": 0, "bytes": 0, "errors": 0}


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


async def messages(request: Request) -> Response:
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        _stats["errors"] += 1
        return _json({"success": False, "error": "missing bearer token"}, 401)
    raw = await request.body()
    try:
        body = orjson.loads(raw)
        items = body["messages"]
    except Exception:
        _stats["errors"] += 1
        return _json({"success": False, "error": "bad body"}, 400)
    _stats["requests"] += 1
    _stats["messages"] += len(items)
    _stats["bytes"] += len(raw)
    conversation = str(body.get("externalConversationId") or body.get("conversationId") or "")
    cid = hashlib.sha1(conversation.encode()).hexdigest()[:16]
    return _json({
        "success": True,
        "conversationId": cid,
        "messages": [{"messageId": f"{cid}-{i}", "messageType": m.get("messageType") or m.get("role"),
                      "status": "created", "externalMessageId": m.get("externalMessageId")}
                     for i, m in enumerate(items)],
        "systemPromptPromptId": "",
        "systemPromptComponentIds": [],
    })


async def stats(request: Request) -> Response:
    return _json(_stats)


def create_app() -> Starlette:
    return Starlette(routes=[
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ])


if __name__ == "__main__":
    from benchmarks.servers import serve_forever

    serve_forever(create_app(), path="/v1")
