"""LangGraph long-term memory: ``BaseStore`` reads and writes fire no callbacks, so wrap them.

``get``/``search`` (and their async twins) become ``memory_read`` spans,
``put``/``delete`` ``memory_write`` spans. They take their conversation and their
parent run from the context the LangChain handler sets while a graph node runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from convotel import semconv
from convotel.instrumentation import capture_content, context_attributes, json_attr

#: (method, message type, positional parameter names after ``self``)
_METHODS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("get", "memory_read", ("namespace", "key")),
    ("search", "memory_read", ("namespace_prefix",)),
    ("put", "memory_write", ("namespace", "key", "value", "index")),
    ("delete", "memory_write", ("namespace", "key")),
)
_INPUT_KEYS = ("namespace", "namespace_prefix", "key", "query", "filter", "limit", "offset", "value")


def _inputs(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any], capture: bool) -> dict[str, Any]:
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    out: dict[str, Any] = {}
    for key in _INPUT_KEYS:
        value = bound.get(key)
        if value is None or (key == "value" and not capture) or (key == "query" and not capture):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _item(item: Any, capture: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": list(getattr(item, "namespace", ()) or ()), "key": getattr(item, "key", None)}
    if capture:
        out["value"] = getattr(item, "value", None)
    score = getattr(item, "score", None)
    if score is not None:
        out["score"] = score
    return out


def _outputs(method: str, result: Any, capture: bool) -> dict[str, Any] | None:
    if method == "get":
        return {"found": False} if result is None else {"found": True, "item": _item(result, capture)}
    if method == "search":
        return {"items": [_item(i, capture) for i in result or ()]}
    return None


class StoreTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start(self, method: str, message_type: str, names: tuple[str, ...], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> tuple[Span, bool]:
        capture = capture_content()
        attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: message_type, "db.operation.name": method}
        attrs[semconv.INPUT_VALUE] = json_attr(_inputs(names, args, kwargs, capture))
        attrs.update(context_attributes())
        attrs.pop(semconv.COVERED_BY, None)
        return self._tracer.start_span(f"store.{method}", attributes=attrs), capture

    @staticmethod
    def end(span: Span, method: str, result: Any, capture: bool) -> None:
        if span.is_recording():
            outputs = _outputs(method, result, capture)
            if outputs is not None:
                span.set_attribute(semconv.OUTPUT_VALUE, json_attr(outputs))
        span.end()

    @staticmethod
    def fail(span: Span, error: BaseException) -> None:
        if span.is_recording():
            span.set_attribute(semconv.ERROR_TYPE, type(error).__qualname__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__qualname__))
        span.end()

    def sync_wrapper(self, method: str, message_type: str, names: tuple[str, ...]) -> Callable[..., Any]:
        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                span, capture = self.start(method, message_type, names, args, kwargs)
            except Exception:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                self.fail(span, error)
                raise
            self.end(span, method, result, capture)
            return result

        return wrapper

    def async_wrapper(self, method: str, message_type: str, names: tuple[str, ...]) -> Callable[..., Any]:
        async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
            try:
                span, capture = self.start(method, message_type, names, args, kwargs)
            except Exception:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                self.fail(span, error)
                raise
            self.end(span, method, result, capture)
            return result

        return wrapper


def targets() -> list[tuple[type, str, str, str, tuple[str, ...], bool]]:
    """(class, attribute, method, message type, parameter names, is_async) to wrap; empty without LangGraph."""
    try:
        from langgraph.store.base import BaseStore
    except ImportError:
        return []
    classes: list[type] = [BaseStore]
    try:
        from langgraph.store.base.batch import AsyncBatchedBaseStore

        classes.append(AsyncBatchedBaseStore)
    except ImportError:
        pass
    out = []
    for cls in classes:
        for method, message_type, names in _METHODS:
            for attribute, is_async in ((method, False), (f"a{method}", True)):
                if attribute in vars(cls):
                    if cls is not BaseStore and not is_async:
                        continue  # AsyncBatchedBaseStore's sync methods call its async ones
                    out.append((cls, attribute, method, message_type, names, is_async))
    return out
