"""Raw responses: ``with_raw_response`` (``LegacyAPIResponse``) and ``with_streaming_response``
(``APIResponse`` / ``AsyncAPIResponse``).

The app keeps the SDK's response object (or, for ``with_streaming_response``, a
transparent proxy of it). ``parse()`` caches on the response, which is what makes
this cheap: a streamed result's proxy is put in that cache so the app's
``parse()`` hands back the observed stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import wrapt

from ._call import Call
from ._streams import finish_stream, wrap_stream
from ._utils import report

if TYPE_CHECKING:
    from ._operations import Operation


def is_legacy_response_class(kind: type) -> bool:
    return kind.__name__ == "LegacyAPIResponse" and hasattr(kind, "parse")


def is_api_response_class(kind: type) -> bool:
    return any(c.__name__ == "BaseAPIResponse" for c in kind.__mro__)


def is_api_response(result: Any) -> bool:
    return is_api_response_class(type(result))


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

    def _self_read(self) -> None:
        if self._self_stream is None:
            _observe_body(self._self_call, self._self_op, self.__wrapped__)

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


def _reader(name: str) -> Callable[..., Any]:
    """A proxy method that calls the response's ``name`` and then observes the body."""

    def method(self: APIResponseProxy, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.__wrapped__, name)(*args, **kwargs)
        self._self_read()
        return result

    method.__name__ = name
    return method


def _async_reader(name: str) -> Callable[..., Any]:
    async def method(self: AsyncAPIResponseProxy, *args: Any, **kwargs: Any) -> Any:
        result = await getattr(self.__wrapped__, name)(*args, **kwargs)
        self._self_read()
        return result

    method.__name__ = name
    return method


_READERS = ("parse", "read", "text", "json")


class APIResponseProxy(_Base):
    """``with_streaming_response`` (sync): the span ends when the body is read, or at ``close()``."""

    parse, read, text, json = map(_reader, _READERS)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_closed()


class AsyncAPIResponseProxy(_Base):
    """``with_streaming_response`` (async)."""

    parse, read, text, json = map(_async_reader, _READERS)

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
