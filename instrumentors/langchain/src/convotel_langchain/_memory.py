"""Memory spans for LangGraph calls that fire no callbacks (store, checkpointer): wrap the methods.

Each wrapped method is described by a :class:`MemoryOp`; :class:`MemoryTracer` turns a
call into one ``memory_read`` / ``memory_write`` span that takes its conversation and
its parent run from the context the LangChain handler sets while a graph runs.
:class:`Patches` puts back exactly what was replaced.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from convotel import semconv
from convotel.instrumentation import capture_content, context_attributes, json_attr, record_failure

#: Set while a wrapped call runs: a wrapped method it reaches (``aput`` → ``put``, a subclass's
#: ``super().put``) is the same access, not a second one.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("convotel_memory_access", default=False)
_MISSING = object()
_MAX_SCOPES = 1024


class MemoryOp(NamedTuple):
    """How one method's calls become spans: ``inputs(bound arguments, capture)``, ``outputs(result, capture)``."""

    name: str  # span name, also the message's content: "store.get"
    message_type: str  # memory_read or memory_write
    method: str  # db.operation.name
    params: tuple[str, ...]  # positional parameter names after ``self``
    inputs: Callable[[dict[str, Any], bool], dict[str, Any]]
    outputs: Callable[[Any, bool], dict[str, Any]] | None = None
    #: which run a call belongs to, from its arguments alone (for calls made outside the run's context)
    scope: Callable[[dict[str, Any]], Hashable | None] | None = None


#: (class, attribute, op, is_async): one method to wrap.
Target = tuple[type, str, MemoryOp, bool]


def own_targets(cls: type, ops: Sequence[MemoryOp], *, sync: bool = True) -> list[Target]:
    """The methods of ``ops`` (each ``name`` and its async ``aname``) that ``cls`` itself defines;
    only the async ones unless ``sync``."""
    out: list[Target] = []
    for op in ops:
        for attribute, is_async in ((op.method, False), (f"a{op.method}", True)):
            if attribute in vars(cls) and (sync or is_async):
                out.append((cls, attribute, op, is_async))
    return out


class _Access:
    """One call's span: ``done(result)`` records what it returned; leaving the ``with`` on an
    exception records the failure. Never raises into the wrapped call."""

    __slots__ = ("span", "op", "capture", "_token")

    def __init__(self, span: Span | None, op: MemoryOp, capture: bool) -> None:
        self.span = span
        self.op = op
        self.capture = capture

    def __enter__(self) -> _Access:
        self._token = _inside.set(True)
        return self

    def done(self, result: Any) -> Any:
        span, self.span = self.span, None
        if span is not None:
            try:
                if span.is_recording() and self.op.outputs is not None:
                    span.set_attribute(semconv.OUTPUT_VALUE, json_attr(self.op.outputs(result, self.capture)))
                span.end()
            except Exception:
                pass
        return result

    def __exit__(self, exc_type: Any, error: BaseException | None, tb: Any) -> None:
        _inside.reset(self._token)
        span = self.span
        if span is not None and error is not None:
            self.span = None
            try:
                record_failure(span, error)
                span.end()
            except Exception:
                pass


class MemoryTracer:
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        #: scope → (context attributes, OTel context) of the run last seen using it
        self._scopes: dict[Hashable, tuple[dict[str, Any], Context]] = {}
        self._lock = threading.Lock()

    def access(self, op: MemoryOp, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Access:
        if _inside.get():
            return _Access(None, op, False)
        try:
            capture = capture_content()
            bound = dict(zip(op.params, args, strict=False))
            bound.update(kwargs)
            context = context_attributes()
            context.pop(semconv.COVERED_BY, None)
            parent = self._in_scope(op.scope(bound), context) if op.scope is not None else None
            attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: op.message_type, "db.operation.name": op.method,
                                     semconv.INPUT_VALUE: json_attr(op.inputs(bound, capture)), **context}
            return _Access(self._tracer.start_span(op.name, context=parent, attributes=attrs), op, capture)
        except Exception:
            return _Access(None, op, False)

    def _in_scope(self, scope: Hashable | None, context: dict[str, Any]) -> Context | None:
        """A call inside its run's context tells which run the scope belongs to; a call made outside it
        (synchronous LangGraph commits parallel tasks from worker threads) borrows that run's context
        while the run lasts. Returns the OTel parent to use (``None``: the current one)."""
        if scope is None:
            return None
        if semconv.STRUCTURAL_PARENT in context:
            current = otel_context.get_current()
            if trace.get_current_span(current).is_recording():
                with self._lock:
                    self._scopes.pop(scope, None)
                    if len(self._scopes) >= _MAX_SCOPES:
                        del self._scopes[next(iter(self._scopes))]
                    self._scopes[scope] = (dict(context), current)
            return None
        known = self._scopes.get(scope)
        if known is None or not trace.get_current_span(known[1]).is_recording():
            return None
        context.update(known[0])
        return known[1]

    def wrapper(self, op: MemoryOp, is_async: bool) -> Callable[..., Any]:
        if is_async:
            async def traced_async(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                                   kwargs: dict[str, Any]) -> Any:
                with self.access(op, args, kwargs) as access:
                    return access.done(await wrapped(*args, **kwargs))

            return traced_async

        def traced(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            with self.access(op, args, kwargs) as access:
                return access.done(wrapped(*args, **kwargs))

        return traced


class Patches:
    """Class attributes replaced while instrumented; :meth:`restore` puts back the very objects."""

    def __init__(self, tracer: MemoryTracer) -> None:
        self.tracer = tracer
        self._replaced: list[tuple[type, str, Any]] = []

    def replace(self, cls: type, attribute: str, value: Any) -> None:
        self._replaced.append((cls, attribute, vars(cls).get(attribute, _MISSING)))
        setattr(cls, attribute, value)

    def wrap(self, targets: Iterable[Target]) -> None:
        for cls, attribute, op, is_async in targets:
            self.replace(cls, attribute, wrapt.FunctionWrapper(vars(cls)[attribute], self.tracer.wrapper(op, is_async)))

    def restore(self) -> None:
        while self._replaced:
            cls, attribute, previous = self._replaced.pop()
            if previous is _MISSING:
                delattr(cls, attribute)
            else:
                setattr(cls, attribute, previous)
