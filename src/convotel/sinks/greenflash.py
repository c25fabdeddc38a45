"""Greenflash ``POST /v1/messages``: the one place that knows its URL, headers and shapes.

The API key lives only inside an ``httpx.Headers`` object (whose repr masks it) and is
scrubbed from any error text the API sends back, so it never reaches logs, exceptions or
reprs. Exceptions raised here carry no ``__cause__``/``__context__``: httpx internals keep
raw header bytes in their frames, which traceback-with-locals tools would otherwise show.

A 2xx answer whose body is not the documented JSON counts as delivered (the API accepted
the request; re-sending would only be deduplicated), with one warning per sink.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import httpx
import orjson

from convotel.delivery.wire import dumps
from convotel.messages import ConversationBatch
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


class GreenflashSink:
    """Sends one conversation batch per request. Never retries itself (delivery does)."""

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
        client: httpx.Client | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("GreenflashSink needs an API key: pass api_key= or set GREENFLASH_API_KEY")
        # Sent with every request, so a caller-supplied client works as is.
        self._headers = httpx.Headers({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                                       "User-Agent": "convotel"})
        self.base_url = base_url.rstrip("/")
        self.product_id = product_id
        self.timeout_s = timeout_s
        self.max_request_bytes = max_request_bytes
        self.max_messages_per_request = max_messages_per_request
        self._url = f"{self.base_url}/messages"
        self._timeout = httpx.Timeout(connect=min(5.0, timeout_s), read=timeout_s, write=timeout_s, pool=timeout_s)
        self._owns_client = client is None
        self._client = client if client is not None else self._new_client()
        self._inherited: list[httpx.Client] = []
        self._warned_unreadable = False
        if self._owns_client and hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork_in_child)
            os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m())

    def _new_client(self) -> httpx.Client:
        # One worker sends at a time: a couple of kept-alive connections are plenty.
        return httpx.Client(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30.0),
            follow_redirects=False,
        )

    def _after_fork_in_child(self) -> None:
        # The parent's pooled sockets are not ours; never touch (or close) that client here.
        self._inherited.append(self._client)
        self._client = self._new_client()

    def __repr__(self) -> str:
        return f"GreenflashSink(base_url={self.base_url!r}, product_id={self.product_id!r}, api_key='***')"

    def send(self, batch: ConversationBatch) -> SendResult:
        outcome = self._post(dumps(batch.to_wire(product_id=self.product_id)))
        if isinstance(outcome, SinkError):
            raise outcome  # raised here, not in an except block: no chained httpx exception (see module doc)
        if outcome.is_success:
            return SendResult(self._statuses(batch, outcome))
        raise self._error(outcome)

    def _post(self, body: bytes) -> httpx.Response | SinkError:
        try:
            return self._client.post(self._url, content=body, headers=self._headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            return SinkError(f"Greenflash did not answer within {self.timeout_s:g}s ({type(exc).__name__})",
                             transient=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return SinkError(f"base_url {self.base_url!r} is not a usable http(s) URL: {exc}", transient=False)
        except httpx.HTTPError as exc:
            return SinkError(f"cannot reach Greenflash at {self._url}: {type(exc).__name__}: {exc}", transient=True)

    def _statuses(self, batch: ConversationBatch, response: httpx.Response) -> dict[str, MessageStatus]:
        said: dict[str, Any] = {}
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        items = data.get("messages") if isinstance(data, Mapping) else None
        if isinstance(items, list):
            for item in items:
                if isinstance(item, Mapping) and item.get("status") in _STATUSES:
                    said[str(item.get("externalMessageId"))] = item["status"]
        elif not self._warned_unreadable:
            self._warned_unreadable = True
            logger.warning("convotel: Greenflash answered %d with a body that is not the documented JSON; "
                           "counting such requests as delivered (warned once)", response.status_code)
        # Messages the answer does not mention were accepted with the request.
        return {m.external_message_id: said.get(m.external_message_id, "created") for m in batch.messages}

    def _error(self, response: httpx.Response) -> SinkError:
        status = response.status_code
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

    def _error_text(self, response: httpx.Response) -> str:
        """The API's own words, short, with the key scrubbed should it ever be echoed."""
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, Mapping):
            found = next((data[k] for k in ("error", "message", "detail") if data.get(k)), data)
            text = found if isinstance(found, str) else dumps(found).decode()
        else:
            text = response.content.decode("utf-8", "replace").strip() or "(empty body)"
        key = self._headers["Authorization"].removeprefix("Bearer ")
        return text.replace(key, "***")[:_ERROR_TEXT_CHARS]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
