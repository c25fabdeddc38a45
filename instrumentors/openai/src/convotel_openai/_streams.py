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

from collections.abc import Iterator
from typing import Any, Protocol

import wrapt
from opentelemetry.trace import Span

from ._call import Call
from ._utils import report


class StreamState(Protocol):
    broken: bool

    def process(self, item: Any) -> None: ...

    def apply(self, span: Span) -> None: ...


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


def _ignore(item: Any) -> None:
    """What a proxy does with chunks once its state failed on one."""


class _StreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """What both proxies share: the call, its state, ending once, the per-chunk hook."""

    def __init__(self, wrapped: Any, call: Call, state: StreamState, kind: str) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_state = state
        self._self_kind = kind
        # Per chunk: one bound-method call, no flag checks (a failure swaps in ``_ignore``).
        self._self_process = state.process

    def _self_failed(self) -> None:
        """The state could not take a chunk: it stops observing and reports no output."""
        self._self_state.broken = True
        self._self_process = _ignore
        report(f"{self._self_kind}.stream_chunk")

    def _self_end(self, exc: BaseException | None = None) -> None:
        _finish(self._self_call, self._self_state, self._self_kind, exc)

    def _self_stopped(self, exc: BaseException) -> None:
        """The SDK's iterator raised: the stream's end, or its failure."""
        self._self_end(None if isinstance(exc, (StopIteration, StopAsyncIteration)) else exc)

    def _self_take(self, item: Any) -> Any:
        try:
            self._self_process(item)
        except Exception:
            self._self_failed()
        return item

    def __del__(self) -> None:
        """A stream dropped before it ended (never raises from a finalizer)."""
        try:
            if not self._self_call.ended:
                self._self_end()
        except Exception:
            pass


class SyncStreamProxy(_StreamProxy):
    def __iter__(self) -> Iterator[Any]:
        """What ``for chunk in stream`` runs: a generator, as the SDK's own ``Stream.__iter__``
        is (resuming it costs less per chunk than a call of ``__next__`` through the proxy).
        It draws from the same SDK iterator as ``__next__``, so the two can be mixed."""
        next_item = self.__wrapped__.__next__
        process = self._self_process
        while True:
            try:
                item = next_item()
            except StopIteration:
                self._self_end()
                return
            except BaseException as exc:
                self._self_end(exc)
                raise
            try:
                process(item)
            except Exception:
                self._self_failed()
                process = _ignore
            yield item

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except BaseException as exc:
            self._self_stopped(exc)
            raise
        return self._self_take(item)

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end(exc)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncStreamProxy(_StreamProxy):
    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except BaseException as exc:
            self._self_stopped(exc)
            raise
        return self._self_take(item)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_end(exc)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end()

    async def aclose(self) -> None:
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            await closer()
        finally:
            self._self_end()


_PROXIES: dict[type, type[_StreamProxy] | None] = {}
_UNSEEN = object()


def proxy_class(kind: type) -> type[_StreamProxy] | None:
    """The proxy class for results of class ``kind``; ``None`` when they are no stream.

    The one place that decides what a stream is (cached per class: this runs per call)."""
    proxy = _PROXIES.get(kind, _UNSEEN)
    if proxy is _UNSEEN:
        if hasattr(kind, "__anext__"):
            proxy = AsyncStreamProxy
        elif hasattr(kind, "__next__"):
            proxy = SyncStreamProxy
        else:
            proxy = None
        _PROXIES[kind] = proxy
    return proxy  # type: ignore[return-value]


def wrap_stream(result: Any, call: Call, state: StreamState, kind: str) -> Any | None:
    """The proxy for a stream-like ``result``; ``None`` when it is not one."""
    proxy = proxy_class(type(result))
    return None if proxy is None else proxy(result, call, state, kind)


def finish_stream(proxy: Any) -> None:
    """End the span of one of our stream proxies now (``partial`` unless it had finished)."""
    if isinstance(proxy, _StreamProxy):
        proxy._self_end()
