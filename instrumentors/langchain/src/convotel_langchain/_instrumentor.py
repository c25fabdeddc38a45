"""``LangChainInstrumentor``: the handler in every run, store accesses as memory spans.

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

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ._store import StoreTracer, targets
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
        from ._handler import CallbackHandler, _env_verbose

        provider = kwargs.get("tracer_provider")
        verbose = kwargs.get("verbose")
        _switch.handler = CallbackHandler(
            tracer_provider=provider,
            verbose=_env_verbose() if verbose is None else verbose,
            capture_content=kwargs.get("capture_content"),
        )
        _register_hook()
        store = StoreTracer(trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider))
        self._wrapped: list[tuple[type, str]] = []
        for cls, attribute, method, message_type, names, is_async in targets():
            factory = store.async_wrapper if is_async else store.sync_wrapper
            wrapt.wrap_function_wrapper(cls, attribute, factory(method, message_type, names))
            self._wrapped.append((cls, attribute))

    def _uninstrument(self, **kwargs: Any) -> None:
        _switch.handler = None
        for cls, attribute in getattr(self, "_wrapped", ()):
            current = vars(cls).get(attribute)
            original = getattr(current, "__wrapped__", None)
            if original is not None:
                setattr(cls, attribute, original)
        self._wrapped = []
