"""convotel instrumentor for LangChain and LangGraph.

Two ways in, same spans, same messages:

* automatic: ``LangChainInstrumentor().instrument(tracer_provider=...)`` (what
  ``convotel.init()`` and ``opentelemetry-instrument`` do) adds a
  :class:`CallbackHandler` to every LangChain run, with ``langchain-core`` alone
  installed, and records LangGraph long-term store reads and writes (and, at the
  verbose level, checkpointer traffic);
* explicit: ``chain.invoke(x, config={"callbacks": [CallbackHandler()]})``.

Importing this package does not import LangChain (entry-point discovery stays
cheap and quiet where LangChain is not installed); ``CallbackHandler`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._instrumentor import LangChainInstrumentor
from .package import TRACER_NAME
from .version import __version__

if TYPE_CHECKING:
    from ._handler import CallbackHandler

__all__ = ["TRACER_NAME", "CallbackHandler", "LangChainInstrumentor", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "CallbackHandler":
        from ._handler import CallbackHandler

        return CallbackHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
