"""``LangChainInstrumentor``: the handler in every run, store (and, verbose, checkpointer) accesses as memory spans.

The handler is injected through ``langchain_core``'s public
``register_configure_hook``: every callback manager LangChain configures (for any
runnable, chat model, tool or retriever, sync or async) asks the registered hooks
for handlers. Nothing here imports the ``langchain`` package, so it works with
``langchain-core`` alone. The hook is registered once per process and answers
with the active instrumentor's handler, or with nothing once uninstrumented; a
run that already carries a :class:`CallbackHandler` (passed explicitly) does not
get a second one.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from . import _checkpoints, _store
from ._memory import MemoryTracer, Patches
from .package import TRACER_NAME, _instruments
from .version import __version__

if TYPE_CHECKING:
    from ._handler import CallbackHandler


class _HandlerSwitch:
    """What LangChain's configure hook reads (it calls ``.get()``, like on a ``ContextVar``)."""

    __slots__ = ("handler",)

    def __init__(self) -> None:
        self.handler: CallbackHandler | None = None

    def get(self, default: Any = None) -> CallbackHandler | None:
        return self.handler


_switch = _HandlerSwitch()
_registered = False
_register_lock = threading.Lock()


def _register_hook() -> None:
    global _registered
    with _register_lock:
        if _registered:
            return
        from langchain_core.tracers.context import register_configure_hook

        from ._handler import CallbackHandler

        register_configure_hook(_switch, True, CallbackHandler)  # type: ignore[arg-type]
        _registered = True


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument LangChain / LangGraph: ``instrument(tracer_provider=..., verbose=...)``."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    @property
    def handler(self) -> CallbackHandler | None:
        """The handler every run gets while instrumented."""
        return _switch.handler

    def _instrument(self, **kwargs: Any) -> None:
        from ._handler import CallbackHandler

        provider = kwargs.get("tracer_provider")
        handler = _switch.handler = CallbackHandler(
            tracer_provider=provider,
            verbose=kwargs.get("verbose"),
            capture_content=kwargs.get("capture_content"),
        )
        _register_hook()
        self._patches = Patches(MemoryTracer(trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)))
        self._patches.wrap(_store.targets())
        if handler.verbose:  # checkpointer traffic is verbose-level detail: otherwise not even wrapped
            _checkpoints.wrap_savers(self._patches)

    def _uninstrument(self, **kwargs: Any) -> None:
        _switch.handler = None
        patches: Patches | None = getattr(self, "_patches", None)
        if patches is not None:
            patches.restore()
