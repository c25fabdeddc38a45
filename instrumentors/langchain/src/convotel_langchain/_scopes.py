"""Context values a run sets while it is active, and how each is undone when it ends.

The conversation, the structural run and the model-call owner are convotel
*claims* (:func:`convotel.instrumentation.enter_run`, ``enter_model_call``,
:func:`convotel.context.push`): async LangChain ends runs in a copy of the
caller's context, where no reset can reach, so ending a run releases its claim
and a released claim reads as what it replaced.

OpenTelemetry's current context cannot be claimed that way, so it is only set
for runs driven synchronously (:func:`in_event_loop` is false); there a run ends
in the context it started in. :class:`OtelSlot` still copes with the one
out-of-order case LangChain has (``generate`` over several prompts: all start,
then all end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from convotel import context as convotel_context
from convotel import instrumentation

_MAX_ORPHANS = 1024

Undo = tuple[Callable[..., None], tuple[Any, ...]]


def in_event_loop() -> bool:
    """Called from async LangChain (callbacks of a coroutine run inline in its task)."""
    return asyncio._get_running_loop() is not None


class OtelSlot:
    """OTel's current context, put back at run end even when runs end out of order."""

    __slots__ = ("_orphans",)

    def __init__(self) -> None:
        self._orphans: dict[int, tuple[Any, Any]] = {}

    def enter(self, value: Any) -> Undo:
        old = otel_context.get_current()
        otel_context.attach(value)
        return (self.leave, (old, value))

    def leave(self, old: Any, value: Any) -> None:
        orphans = self._orphans
        if otel_context.get_current() is not value:
            # A run that started after this one still holds the context here: when it
            # ends it skips back past this run's value.
            if len(orphans) >= _MAX_ORPHANS:
                orphans.clear()
            orphans[id(value)] = (value, old)
            return
        while orphans:
            entry = orphans.get(id(old))
            if entry is None or entry[0] is not old:
                break
            del orphans[id(old)]
            old = entry[1]
        otel_context.attach(old)


OTEL = OtelSlot()


def enter_run(span_id: str) -> Undo:
    return (instrumentation.leave, (instrumentation.enter_run(span_id),))


def enter_model_call(span_id: str) -> Undo:
    return (instrumentation.leave, (instrumentation.enter_model_call(span_id),))


def push_conversation(ctx: convotel_context.ConversationContext) -> Undo:
    return (convotel_context.pop, (convotel_context.push(ctx),))


def undo_all(undos: list[Undo]) -> None:
    for fn, args in reversed(undos):
        fn(*args)
