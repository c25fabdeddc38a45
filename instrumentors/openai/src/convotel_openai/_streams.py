"""Transparent proxies over the SDK's ``Stream`` / ``AsyncStream``.

Each chunk is handed to the app as soon as the SDK yields it (untouched, the same
object) after a cheap update of the stream state. The span ends exactly once,
whichever comes first: the end of the stream, an error while iterating, ``close()``,
leaving a ``with`` block, or the proxy being garbage collected (an abandoned
stream). A stream that ended before its finish reason carries ``convotel.partial``.

The proxies are ``wrapt.ObjectProxy``s, so ``isinstance(proxy, openai.Stream)``
holds and every other attribute (``response``, ``_iterator``...) is the SDK's.
"""

from __future__ import annotations

from typing import Any, Protocol

import wrapt
from opentelemetry.trace import Span

from ._call import Call
from ._utils import report


class StreamState(Protocol):
    broken: bool

    def process(self, item: Any) -> None: ...

    def apply(self, span: Span) -> None: ...


def _observe(state: StreamState, item: Any, kind: str) -> None:
    if state.broken:
        return
    try:
        state.process(item)
    except Exception:
        state.broken = True
        report(f"{kind}.stream_chunk")


def _finish(call: Call, state: StreamState, kind: str, exc: BaseException | None = None) -> None:
    if call.ended:
        return
    try:
        # A state that failed on some chunk is incomplete: better no output than a wrong one.
        if call.recording and not state.broken:
            state.apply(call.span)
    except Exception:
        report(f"{kind}.stream_end")
    if exc is None:
        call.end()
    else:
        call.fail(exc)


def _abandoned(proxy: Any) -> None:
    """``__del__``: a stream dropped before it ended (never raises from a finalizer)."""
    try:
        call = proxy._self_call
        if not call.ended:
            _finish(call, proxy._self_state, proxy._self_kind)
    except Exception:
        pass


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: Call, state: StreamState, kind: str) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_state = state
        self._self_kind = kind

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            _finish(self._self_call, self._self_state, self._self_kind)
            raise
        except BaseException as exc:
            _finish(self._self_call, self._self_state, self._self_kind, exc)
            raise
        _observe(self._self_state, item, self._self_kind)
        return item

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            _finish(self._self_call, self._self_state, self._self_kind, exc)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            _finish(self._self_call, self._self_state, self._self_kind)

    def __del__(self) -> None:
        _abandoned(self)


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, call: Call, state: StreamState, kind: str) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_state = state
        self._self_kind = kind

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            _finish(self._self_call, self._self_state, self._self_kind)
            raise
        except BaseException as exc:
            _finish(self._self_call, self._self_state, self._self_kind, exc)
            raise
        _observe(self._self_state, item, self._self_kind)
        return item

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            _finish(self._self_call, self._self_state, self._self_kind, exc)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            _finish(self._self_call, self._self_state, self._self_kind)

    async def aclose(self) -> None:
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            await closer()
        finally:
            _finish(self._self_call, self._self_state, self._self_kind)

    def __del__(self) -> None:
        _abandoned(self)


def wrap_stream(result: Any, call: Call, state: StreamState, kind: str) -> Any | None:
    """The proxy for a stream-like ``result``; ``None`` when it is not one."""
    if hasattr(type(result), "__anext__"):
        return AsyncStreamProxy(result, call, state, kind)
    if hasattr(type(result), "__next__"):
        return SyncStreamProxy(result, call, state, kind)
    return None


def finish_stream(proxy: Any) -> None:
    """End the span of one of our stream proxies now (``partial`` unless it had finished)."""
    if isinstance(proxy, (SyncStreamProxy, AsyncStreamProxy)):
        _finish(proxy._self_call, proxy._self_state, proxy._self_kind)
