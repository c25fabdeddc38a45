"""convotel instrumentor for the ``openai`` SDK.

``OpenAIInstrumentor().instrument(tracer_provider=...)`` wraps the SDK's model
calls so each one becomes a GenAI-semconv ``CLIENT`` span; ``uninstrument()``
puts the original functions back. Also registered under the
``opentelemetry_instrumentor`` entry point for ``opentelemetry-instrument``.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from . import _patching
from ._operations import CHAT, EMBEDDINGS, RESPONSES, Operation
from ._wrappers import async_wrapper, helper_close_wrapper, sync_wrapper
from .package import _instruments
from .version import __version__

__all__ = ["OpenAIInstrumentor", "__version__"]

TRACER_NAME = "convotel_openai"

# (module, class, method, operation or None for a stream helper's close())
_TARGETS: tuple[tuple[str, str, str, Operation | None], ...] = (
    ("openai.resources.chat.completions", "Completions", "create", CHAT),
    ("openai.resources.chat.completions", "AsyncCompletions", "create", CHAT),
    ("openai.resources.chat.completions", "Completions", "parse", CHAT),
    ("openai.resources.chat.completions", "AsyncCompletions", "parse", CHAT),
    # openai < 1.92 kept structured outputs under client.beta.chat.completions
    ("openai.resources.beta.chat.completions", "Completions", "parse", CHAT),
    ("openai.resources.beta.chat.completions", "AsyncCompletions", "parse", CHAT),
    ("openai.resources.responses", "Responses", "create", RESPONSES),
    ("openai.resources.responses", "AsyncResponses", "create", RESPONSES),
    ("openai.resources.responses", "Responses", "parse", RESPONSES),
    ("openai.resources.responses", "AsyncResponses", "parse", RESPONSES),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS),
    ("openai.lib.streaming.chat", "ChatCompletionStream", "close", None),
    ("openai.lib.streaming.chat", "AsyncChatCompletionStream", "close", None),
    ("openai.lib.streaming.responses", "ResponseStream", "close", None),
    ("openai.lib.streaming.responses", "AsyncResponseStream", "close", None),
)


def _resolve(module: str, cls: str) -> type | None:
    try:
        owner = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None
    return owner if isinstance(owner, type) else None


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument the ``openai`` SDK: chat completions (create, parse, streams, raw and
    streaming responses, ``.stream()`` helpers), the Responses API and embeddings."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=kwargs.get("tracer_provider"))
        for module, cls, name, op in _TARGETS:
            owner = _resolve(module, cls)
            original = owner.__dict__.get(name) if owner is not None else None
            if owner is None or original is None:
                continue
            # not inspect.iscoroutinefunction(): the SDK's @required_args hides ``async def``
            is_async = cls.startswith("Async")
            if op is None:
                wrapper = helper_close_wrapper(is_async)
            else:
                wrapper = (async_wrapper if is_async else sync_wrapper)(tracer, op)
            _patching.wrap(owner, name, wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        _patching.unwrap_all()
