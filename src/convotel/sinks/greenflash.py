"""Greenflash ``POST /v1/messages``: the one place that knows its URL, headers and shapes.

The API key lives only inside a :class:`_Secret` (whose repr masks it), goes into the
request headers at send time, and is scrubbed from any error text the API sends back, so
it never reaches logs, exceptions or reprs. Exceptions raised here carry no
``__cause__``/``__context__``, so traceback-with-locals tools find no headers either.

A 2xx answer whose body is not the documented JSON counts as delivered (the API accepted
the request; re-sending would only be deduplicated), with one warning per sink.
"""

from __future__ import annotations

import email.utils
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from convotel.delivery.wire import dumps
from convotel.messages import ConversationBatch
from convotel.sinks._http import Answer, InvalidURL, KeepAliveClient, TransportError
from convotel.sinks.base import MessageStatus, SendResult, SinkError

logger = logging.getLogger("convotel.sinks.greenflash")

DEFAULT_BASE_URL = "https://www.greenflash.ai/api/v1"
_STATUSES: frozenset[str] = frozenset(("created", "deduplicated"))
_ERROR_TEXT_CHARS = 300

_HINTS = {
    400: "the API says the request is invalid",
    401: "the API key was not accepted; check GREENFLASH_API_KEY",
    403: "the API key may not write here; check the key's permissions and GREENFLASH_PRODUCT_ID",
    404: "nothing found; check base_url and GREENFLASH_PRODUCT_ID",
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _Secret:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'"


class GreenflashSink:
    """Sends one conversation batch per request (pipelined when several are due). Never retries itself
    (delivery does)."""

    name = "greenflash"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        product_id: str | None = None,
        timeout_s: float = 10.0,
        max_request_bytes: int = 4_000_000,
        max_messages_per_request: int = 500,
        pipeline_depth: int = 32,
    ) -> None:
        if not api_key:
            raise ValueError("GreenflashSink needs an API key: pass api_key= or set GREENFLASH_API_KEY")
        self._key = _Secret(api_key)
        self.base_url = base_url.rstrip("/")
        self.product_id = product_id
        self.timeout_s = timeout_s
        self.max_request_bytes = max_request_bytes
        self.max_messages_per_request = max_messages_per_request
        self._url = f"{self.base_url}/messages"
        # What ``to_wire(product_id=...)`` adds after the messages (the product, like the URL, is fixed here).
        self._product_json = b',"productId":' + dumps(product_id) if product_id else b""
        try:
            self._client: KeepAliveClient | None = KeepAliveClient(self.base_url, timeout_s=timeout_s,
                                                                   pipeline_depth=pipeline_depth)
        except InvalidURL:
            self._client = None  # said on every send, as a permanent error
        self._warned_unreadable = False

    def __repr__(self) -> str:
        return f"GreenflashSink(base_url={self.base_url!r}, product_id={self.product_id!r}, api_key='***')"

    def send(self, batch: ConversationBatch) -> SendResult:
        outcome = self.send_many([batch])[0]
        if isinstance(outcome, SinkError):
            raise outcome  # raised here, not in an except block: no chained exception (see module doc)
        return outcome

    def send_many(self, batches: Sequence[ConversationBatch]) -> list[SendResult | SinkError]:
        """One request per batch, pipelined on the kept-alive connection; an outcome per batch, in order."""
        if self._client is None:
            error = SinkError(f"base_url {self.base_url!r} is not a usable http(s) URL", transient=False)
            return [error] * len(batches)
        headers = {"Authorization": f"Bearer {self._key.value}", "Content-Type": "application/json",
                   "User-Agent": "convotel"}
        answers = self._client.post_many("/messages", [self._body(batch) for batch in batches], headers)
        return list(map(self._outcome, batches, answers))  # an answer per body

    def _outcome(self, batch: ConversationBatch, answer: Answer | TransportError) -> SendResult | SinkError:
        if isinstance(answer, TransportError):
            if answer.timeout:
                return SinkError(f"Greenflash did not answer within {self.timeout_s:g}s", transient=True)
            return SinkError(f"cannot reach Greenflash at {self._url}: {answer}", transient=True)
        if answer.is_success:
            return SendResult(self._statuses(batch, answer))
        return self._error(answer)

    def _body(self, batch: ConversationBatch) -> bytes:
        """``wire.dumps(batch.to_wire(product_id=...))``; from the encoding delivery sized when it passes
        it (``message_json``, and ``envelope_json``, else the envelope is encoded here): the messages'
        bytes go in the envelope's empty ``"messages":[]`` (its first occurrence: inside a JSON string
        every quote is escaped) and the product id right after it, where ``to_wire`` puts it; which
        gives the same bytes."""
        messages = getattr(batch, "message_json", None)
        if messages is None:
            return dumps(batch.to_wire(product_id=self.product_id))
        head = getattr(batch, "envelope_json", None)
        if head is None:
            head = dumps(batch.without_messages().to_wire())
        cut = head.index(b'"messages":[]') + 12
        return b"".join((head[:cut], messages, b"]", self._product_json, head[cut + 1:]))

    def _statuses(self, batch: ConversationBatch, response: Answer) -> dict[str, MessageStatus]:
        said: dict[str, Any] = {}
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            data = None
        # orjson decodes objects as dicts: ``dict`` is the exact (and much cheaper) test here.
        items = data.get("messages") if isinstance(data, dict) else None
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and item.get("status") in _STATUSES:
                    said[str(item.get("externalMessageId"))] = item["status"]
        elif not self._warned_unreadable:
            self._warned_unreadable = True
            logger.warning("convotel: Greenflash answered %d with a body that is not the documented JSON; "
                           "counting such requests as delivered (warned once)", response.status)
        # Messages the answer does not mention were accepted with the request.
        return {m.external_message_id: said.get(m.external_message_id, "created") for m in batch.messages}

    def _error(self, response: Answer) -> SinkError:
        status = response.status
        text = self._error_text(response)
        if status == 413:
            return SinkError(f"Greenflash refused the request as too large (413): {text}", transient=False,
                             status=status, too_large=True)
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return SinkError(f"Greenflash answered {status}: {text}", transient=True, status=status,
                             retry_after_s=retry_after)
        if 300 <= status < 400:
            hint = f"redirected to {response.headers.get('location')!r}; set base_url to the final address"
        else:
            hint = _HINTS.get(status, "the API refused the request")
        return SinkError(f"Greenflash answered {status}, {hint}: {text}", transient=False, status=status)

    def _error_text(self, response: Answer) -> str:
        """The API's own words, short, with the key scrubbed should it ever be echoed."""
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, Mapping):
            found = next((data[k] for k in ("error", "message", "detail") if data.get(k)), data)
            text = found if isinstance(found, str) else dumps(found).decode()
        else:
            text = response.body.decode("utf-8", "replace").strip() or "(empty body)"
        return text.replace(self._key.value, "***")[:_ERROR_TEXT_CHARS]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
