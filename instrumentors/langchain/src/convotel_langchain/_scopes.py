"""Context values a run sets while it is active, and how each is undone when it ends.

The conversation, the structural run and the model-call owner are convotel
*claims* (:func:`convotel.instrumentation.enter_run`, ``enter_model_call``,
:func:`convotel.context.push`): async LangChain ends runs in a copy of the
caller's context, where no reset can reach, so ending a run releases its claim
(:func:`convotel.context.release`) and a released claim reads as what it replaced.

OpenTelemetry's current context cannot be claimed that way, so it is only set
for runs driven synchronously (:func:`in_event_loop` is false); there a run ends
in the context it started in. :class:`OtelSlot` still copes with the one
out-of-order case LangChain has (``generate`` over several prompts: all start,
then all end).
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry import context as otel_context

_MAX_ORPHANS = 1024


def in_event_loop() -> bool:
    """Called from async LangChain (callbacks of a coroutine run inline in its task)."""
    return asyncio._get_running_loop() is not None


class OtelSlot:
    """OTel's current context, put back at run end even when runs end out of order: a run that
    attached ``value`` in place of ``old`` calls :meth:`leave` with both."""

    __slots__ = ("_orphans",)

    def __init__(self) -> None:
        self._orphans: dict[int, tuple[Any, Any]] = {}

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
