"""A Greenflash-compatible ingest API over the local store (Starlette).

``POST /v1/messages`` validates and stores exactly like :meth:`Store.ingest`
and answers in Greenflash's ``CreateMessageResponse`` shape;
``GET /v1/interactions[/{id}]`` reads conversations back. Every route needs
``Authorization: Bearer <token>``. Errors are JSON
``{"success": false, "error": "...", "field": "messages[3].toolName"}``.
``sampleRate`` and ``forceSample`` are validated but not applied: the local
store keeps every request.
"""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from convotel.store import IngestError, Store, StoredConversation, StoredMessage, ValidationError
from convotel.store.db import derived_id
from convotel.store.validation import DEFAULT_MAX_BODY_BYTES, ROLE_MESSAGE_TYPES

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500
_ROLE_OF_TYPE: Final = {t: r for r, t in ROLE_MESSAGE_TYPES.items()}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, *, field: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked uploads have no Content-Length to trust
            raise _BodyTooLarge
    return bytes(body)


def _int_param(request: Request, name: str, *, low: int, high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        number = float(raw)  # the Greenflash SDK sends its float-typed params as "2.0"
    except ValueError:
        raise ValidationError(name, f"must be an integer; got {raw!r}") from None
    if not number.is_integer() or number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError(name, f"must be an integer {bounds}; got {raw!r}")
    return int(number)


def interaction_wire(conversation: StoredConversation) -> dict[str, Any]:
    """A conversation in the shape of Greenflash's ``Interaction``."""
    return {
        "id": conversation.id,
        "externalId": conversation.external_id,
        "createdAt": conversation.created_at,
        "updatedAt": conversation.updated_at,
        "participantId": derived_id("participant", conversation.external_user_id),
        "externalParticipantId": conversation.external_user_id,
        "organizationExternalId": conversation.external_organization_id,
        "productId": conversation.product_id,
        "model": conversation.model,
        "systemPrompt": conversation.system_prompt,
        "properties": conversation.properties,
        "messageCount": conversation.message_count,
    }


def message_wire(message: StoredMessage, parent_id: str | None) -> dict[str, Any]:
    """A stored message with ``InteractionDetail`` message fields plus everything that was ingested."""
    return {
        "messageId": message.id,
        "externalMessageId": message.external_message_id,
        "messageType": message.message_type,
        "role": message.role or _ROLE_OF_TYPE.get(message.message_type, message.message_type),
        "content": message.content,
        "context": message.context,
        "parentMessageId": parent_id,
        "parentExternalMessageId": message.parent_external_message_id,
        "toolName": message.tool_name,
        "input": message.input,
        "output": message.output,
        "properties": message.properties,
        "model": message.model,
        "timestamp": message.created_at,
        "createdAt": message.created_at,
    }


def create_app(store: Store, *, token: str, strict: bool = False, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               middleware: Sequence[Middleware] = ()) -> Starlette:
    """The ingest API over ``store``. ``strict`` also rejects parents not delivered before their children."""
    if not token:
        raise ValueError("the ingest server needs a bearer token: pass token= or set CONVOTEL_SERVE_TOKEN")
    expected = token.encode()

    def denied(request: Request) -> JSONResponse | None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), expected):
            return None
        return _error(401, "missing or wrong bearer token; send 'Authorization: Bearer <token>' "
                           "with the token `convotel serve` was started with",
                      headers={"WWW-Authenticate": 'Bearer realm="convotel"'})

    async def post_messages(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        try:
            raw = await _read_body(request, max_body_bytes)
        except _BodyTooLarge:
            return _error(413, f"request body is larger than {max_body_bytes} bytes; split the messages "
                               "over several requests", field="body")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not valid JSON ({exc})", field="body")
        try:
            result = await run_in_threadpool(store.ingest, body, strict=strict)
        except IngestError as exc:
            return _error(exc.status, str(exc), field=exc.field)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            return _error(503, "the store is busy; retry shortly", headers={"Retry-After": "1"})
        return JSONResponse(result.to_response())

    async def list_interactions(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        try:
            limit = _int_param(request, "limit", low=1, high=MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
            page = _int_param(request, "page", low=1)
            offset = _int_param(request, "offset", low=0)
            cursor = request.query_params.get("cursor")
            if sum(x is not None for x in (page, offset, cursor)) > 1:
                raise ValidationError("cursor", "use one of cursor, page or offset")
            start = (page - 1) * limit if page is not None else offset
            result = await run_in_threadpool(store.page_conversations, limit=limit, cursor=cursor, offset=start,
                                             product_id=request.query_params.get("productId"))
        except IngestError as exc:
            return _error(exc.status, str(exc), field=exc.field)
        headers = {}
        if result.has_more:
            if page is not None:
                following = request.url.include_query_params(page=page + 1)
            elif offset is not None:
                following = request.url.include_query_params(offset=offset + limit)
            else:
                following = request.url.include_query_params(cursor=result.next_cursor)
            headers["Link"] = f'<{following}>; rel="next"'
        return JSONResponse([interaction_wire(c) for c in result.items], headers=headers)

    async def get_interaction(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        ref = request.path_params["interaction_id"]

        def read() -> tuple[StoredConversation | None, list[StoredMessage]]:
            found = store.conversation(ref)
            return found, (store.messages(found.id) if found is not None else [])

        found, messages = await run_in_threadpool(read)
        if found is None:
            return _error(404, f"no interaction {ref!r}; list them with GET /v1/interactions", field="id")
        ids = {m.external_message_id: m.id for m in messages if m.external_message_id is not None}
        detail = interaction_wire(found)
        detail["participant"] = {"id": detail["participantId"], "externalId": found.external_user_id}
        detail["messages"] = [
            message_wire(m, m.parent_message_id or ids.get(m.parent_external_message_id or ""))
            for m in messages
        ]
        return JSONResponse(detail)

    return Starlette(
        routes=[
            Route("/v1/messages", post_messages, methods=["POST"]),
            Route("/v1/interactions", list_interactions, methods=["GET"]),
            Route("/v1/interactions/{interaction_id}", get_interaction, methods=["GET"]),
        ],
        middleware=list(middleware),
    )
