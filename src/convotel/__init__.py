"""convotel: LLM and agent conversations from OpenTelemetry spans.

One line turns it on::

    import convotel
    convotel.init()

and ``with convotel.conversation("conv-1", user_id="u-1"):`` says whose
conversation the calls inside belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from typing import Any

from convotel import _runtime
from convotel._config import ConfigError
from convotel.context import ConversationContext, conversation

__all__ = ["ConfigError", "ConversationContext", "conversation", "flush", "init", "shutdown"]
__version__ = "0.1.0"


def init(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    product_id: str | None = None,
    sink: str | list[str] | None = None,
    db_path: str | PathLike[str] | None = None,
    capture_content: bool | None = None,
    service_name: str | None = None,
    instrumentors: list[str] | None = None,
    user_id: str | None = None,
    verbose: bool | None = None,
    spool_path: str | PathLike[str] | None = None,
    redact_patterns: list[str] | None = None,
    redact: Callable[[str], str] | None = None,
    tracer_provider: Any = None,
) -> _runtime.Runtime:
    """Instrument the installed libraries and deliver their conversations.

    Every argument falls back to an environment variable: ``GREENFLASH_API_KEY``,
    ``GREENFLASH_BASE_URL``, ``GREENFLASH_PRODUCT_ID``, ``CONVOTEL_SINK``
    (``greenflash``, ``local``, ``console``, ``none``, or several comma-separated),
    ``CONVOTEL_DB``, ``CONVOTEL_CAPTURE_CONTENT``, ``OTEL_SERVICE_NAME``,
    ``CONVOTEL_INSTRUMENTORS`` (e.g. ``openai,langchain``), ``CONVOTEL_USER_ID``,
    ``CONVOTEL_VERBOSE``, ``CONVOTEL_SPOOL``, ``CONVOTEL_REDACT`` (pattern names
    ``email,phone,card,api_key`` or ``none``). Without an API key, conversations
    go to a local SQLite store (``convotel show`` prints them). Calling it again
    returns the running instance. Raises :class:`ConfigError` only for settings
    that cannot work (an unknown sink name).
    """
    return _runtime.init(
        api_key=api_key,
        base_url=base_url,
        product_id=product_id,
        sink=sink,
        db_path=db_path,
        capture_content=capture_content,
        service_name=service_name,
        instrumentors=instrumentors,
        user_id=user_id,
        verbose=verbose,
        spool_path=spool_path,
        redact_patterns=redact_patterns,
        redact=redact,
        tracer_provider=tracer_provider,
    )


def flush(timeout_s: float = 10.0) -> bool:
    """Deliver everything captured so far; ``False`` if the deadline passed first."""
    return _runtime.flush(timeout_s)


def shutdown(timeout_s: float = 10.0) -> bool:
    """Flush, stop the worker threads and uninstrument. Also runs at interpreter exit."""
    return _runtime.shutdown(timeout_s)
