"""The wrapt wrappers around SDK methods: start the span, call, hand the result back.

The app always gets the SDK's result (or a transparent proxy of its stream /
streaming response) and the SDK's exception, the same object, re-raised
unchanged. A call made while another instrumented call is running in the same
context (an SDK helper delegating to ``create``) is not traced twice.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.trace import Tracer

from . import _raw
from ._call import Call
from ._operations import Operation
from ._streams import finish_stream, wrap_stream
from ._utils import report

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
MARKER = "_convotel_openai"

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("convotel_openai_inside", default=False)


try:
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
except ImportError:  # pragma: no cover - older opentelemetry-instrumentation

    def is_instrumentation_enabled() -> bool:
        return True


def _suppressed() -> bool:
    """Inside another instrumented call, or under OTel's ``suppress_instrumentation()``."""
    return _inside.get() or not is_instrumentation_enabled()


def _begin(tracer: Tracer, op: Operation, instance: Any, kwargs: Mapping[str, Any]) -> Call | None:
    try:
        if _suppressed():
            return None
        call = Call.start(tracer, op.operation, kwargs.get("model"), instance, op.request_attributes(kwargs))
    except Exception:
        report(f"{op.kind}.start")
        return None
    if call.recording:
        try:
            call.span.set_attributes(op.content_attributes(kwargs, call.capture))
        except Exception:
            report(f"{op.kind}.request")
    return call


def _finish(call: Call, op: Operation, result: Any) -> Any:
    if not call.recording:
        call.end()
        return result
    try:
        if _raw.is_legacy_response(result):
            return _raw.finish_legacy(call, op, result)
        if _raw.is_api_response(result):
            return _raw.finish_api_response(call, op, result)
        if op.stream_state is not None:
            proxy = wrap_stream(result, call, op.stream_state(call), op.kind)
            if proxy is not None:
                return proxy
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
        call.activate()
        inside = _inside.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _inside.reset(inside)
            call.deactivate()
        return _finish(call, op, result)

    setattr(wrapper, MARKER, True)
    return wrapper


def async_wrapper(tracer: Tracer, op: Operation) -> Wrapper:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(tracer, op, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        call.activate()
        inside = _inside.set(True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _inside.reset(inside)
            call.deactivate()
        return _finish(call, op, result)

    setattr(wrapper, MARKER, True)
    return wrapper


def helper_close_wrapper(is_async: bool) -> Wrapper:
    """``close()`` of the SDK's ``.stream()`` helpers closes the HTTP response behind our
    stream proxy's back; end the proxy's span right there instead of at garbage collection."""

    if is_async:

        async def aclose(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
