"""The wrapt wrappers around SDK methods: start the span, call, hand the result back.

The app always gets the SDK's result (or a transparent proxy of its stream /
streaming response) and the SDK's exception, the same object, re-raised
unchanged. A call made while another instrumented call is running in the same
context (an SDK helper delegating to ``create``) is not traced twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.trace import Tracer

from . import _raw
from ._call import INSIDE, Call
from ._operations import Operation
from ._streams import finish_stream, proxy_class
from ._utils import report

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
Args = tuple[Any, ...]
MARKER = "_convotel_openai"


try:
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
except ImportError:  # pragma: no cover - older opentelemetry-instrumentation

    def is_instrumentation_enabled() -> bool:
        return True


def _begin(tracer: Tracer, op: Operation, instance: Any, kwargs: Mapping[str, Any]) -> Call | None:
    """The call's started span; ``None`` inside another instrumented call or under OTel's
    ``suppress_instrumentation()`` (and when starting fails: the app's call goes on untraced)."""
    try:
        if INSIDE.get() or not is_instrumentation_enabled():
            return None
        call = Call.start(tracer, op.operation, kwargs.get("model"), instance, op.request_attributes(kwargs))
    except Exception:
        report(f"{op.kind}.start")
        return None
    if call.recording and not call.covered:
        try:
            call.span.set_attributes(op.content_attributes(kwargs, call.capture))
        except Exception:
            report(f"{op.kind}.request")
    return call


# What the instrumentation does with a result, by the result's class.
_PLAIN, _LEGACY, _API, _STREAM = range(4)
_RESULT_KINDS: dict[type, int] = {}


def _result_kind(kind: type) -> int:
    found = _RESULT_KINDS.get(kind)
    if found is None:
        if _raw.is_legacy_response_class(kind):
            found = _LEGACY
        elif _raw.is_api_response_class(kind):
            found = _API
        elif proxy_class(kind) is not None:  # what a stream is, ``_streams`` decides
            found = _STREAM
        else:
            found = _PLAIN
        _RESULT_KINDS[kind] = found
    return found


def _finish(call: Call, op: Operation, result: Any) -> Any:
    if not call.recording:
        call.end()
        return result
    try:
        kind = _result_kind(type(result))
        if kind == _LEGACY:
            return _raw.finish_legacy(call, op, result)
        if kind == _API:
            return _raw.finish_api_response(call, op, result)
        if kind == _STREAM and op.stream_state is not None:
            proxy = proxy_class(type(result))  # not None: that made it a _STREAM
            return proxy(result, call, op.stream_state(call), op.kind)  # type: ignore[misc]
        op.apply_response(call, result)
    except Exception:
        report(f"{op.kind}.response")
    call.end()
    return result


def sync_wrapper(tracer: Tracer, op: Operation) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(tracer, op, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        with call:
            result = wrapped(*args, **kwargs)
        return _finish(call, op, result)

    setattr(wrapper, MARKER, True)
    return wrapper


def async_wrapper(tracer: Tracer, op: Operation) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(tracer, op, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        with call:
            result = await wrapped(*args, **kwargs)
        return _finish(call, op, result)

    setattr(wrapper, MARKER, True)
    return wrapper


def helper_close_wrapper(is_async: bool) -> Wrapper:
    """``close()`` of the SDK's ``.stream()`` helpers closes the HTTP response behind our
    stream proxy's back; end the proxy's span right there instead of at garbage collection."""

    if is_async:

        async def aclose(wrapped: Callable[..., Any], instance: Any, args: Args, kwargs: dict[str, Any]) -> Any:
            try:
                return await wrapped(*args, **kwargs)
            finally:
                finish_stream(getattr(instance, "_raw_stream", None))

        setattr(aclose, MARKER, True)
        return aclose

    def close(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return wrapped(*args, **kwargs)
        finally:
            finish_stream(getattr(instance, "_raw_stream", None))

    setattr(close, MARKER, True)
    return close
