"""Raw responses: ``with_raw_response`` (``LegacyAPIResponse``) and ``with_streaming_response``
(``APIResponse`` / ``AsyncAPIResponse``).

The app keeps the SDK's response object (or, for ``with_streaming_response``, a
transparent proxy of it). ``parse()`` caches on the response, which is what makes
this cheap: a streamed result's proxy is put in that cache so the app's
``parse()`` hands back the observed stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import wrapt

from ._call import Call
from ._streams import finish_stream, wrap_stream
from ._utils import report

if TYPE_CHECKING:
    from ._operations import Operation


def is_legacy_response(result: Any) -> bool:
    return type(result).__name__ == "LegacyAPIResponse" and hasattr(result, "parse")


def is_api_response(result: Any) -> bool:
    return any(c.__name__ == "BaseAPIResponse" for c in type(result).__mro__)


def _is_stream(raw: Any) -> bool:
    flag = getattr(raw, "_is_sse_stream", None)
    if flag is None:
        flag = getattr(raw, "_stream", False)
    return bool(flag)


def _seed_stream(call: Call, op: Operation, raw: Any) -> Any | None:
    """Parse (lazily: no I/O) the raw streamed response, cache our proxy in its place."""
    cache = getattr(raw, "_parsed_by_type", None)
    key = getattr(raw, "_cast_to", None)
    if not isinstance(cache, dict) or key is None or op.stream_state is None:
        return None
    stream = raw._parse() if hasattr(raw, "_parse") and is_api_response(raw) else raw.parse()
    proxy = wrap_stream(stream, call, op.stream_state(call), op.kind)
    if proxy is not None:
        cache[key] = proxy
    return proxy


def finish_legacy(call: Call, op: Operation, raw: Any) -> Any:
    if _is_stream(raw):
        if _seed_stream(call, op, raw) is None:
            call.end()
        return raw
    op.apply_response(call, raw.parse())
    call.end()
    return raw


def _observe_body(call: Call, op: Operation, raw: Any) -> None:
    """A non-streamed body has been read: extract from its JSON and end the span."""
    if call.ended:
        return
    try:
        op.apply_response(call, orjson.loads(raw.http_response.content))
    except Exception:
        report(f"{op.kind}.streaming_response")
    call.end()


class _Base(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: Call, op: Operation, stream: Any) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_op = op
        self._self_stream = stream

    def _self_closed(self) -> None:
        if self._self_stream is not None:
            finish_stream(self._self_stream)
        else:
            self._self_call.end()

    def __del__(self) -> None:
        try:
            if not self._self_call.ended:
                self._self_closed()
        except Exception:
            pass


class APIResponseProxy(_Base):
    """``with_streaming_response`` (sync): the span ends when the body is read, or at ``close()``."""

    def _self_read(self) -> None:
        if self._self_stream is None:
            _observe_body(self._self_call, self._self_op, self.__wrapped__)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        result = self.__wrapped__.parse(*args, **kwargs)
        self._self_read()
        return result

    def read(self) -> Any:
        result = self.__wrapped__.read()
        self._self_read()
        return result

    def text(self) -> Any:
        result = self.__wrapped__.text()
        self._self_read()
        return result

    def json(self) -> Any:
        result = self.__wrapped__.json()
        self._self_read()
        return result

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_closed()


class AsyncAPIResponseProxy(_Base):
    """``with_streaming_response`` (async)."""

    def _self_read(self) -> None:
        if self._self_stream is None:
            _observe_body(self._self_call, self._self_op, self.__wrapped__)

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        result = await self.__wrapped__.parse(*args, **kwargs)
        self._self_read()
        return result

    async def read(self) -> Any:
        result = await self.__wrapped__.read()
        self._self_read()
        return result

    async def text(self) -> Any:
        result = await self.__wrapped__.text()
        self._self_read()
        return result

    async def json(self) -> Any:
        result = await self.__wrapped__.json()
        self._self_read()
        return result

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_closed()


def finish_api_response(call: Call, op: Operation, raw: Any) -> Any:
    stream = _seed_stream(call, op, raw) if _is_stream(raw) else None
    is_async = type(raw).__name__.startswith("Async") or any(
        c.__name__ == "AsyncAPIResponse" for c in type(raw).__mro__
    )
    return (AsyncAPIResponseProxy if is_async else APIResponseProxy)(raw, call, op, stream)
