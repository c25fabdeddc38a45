"""What every instrumentor shares: context attributes, the content switch, failures.

Instrumentors stamp each span with :func:`context_attributes` when it starts,
record message text only when :func:`capture_content` is true, and mark a failed
call with :func:`record_failure`.
"""

from __future__ import annotations

import contextvars
import logging
import os
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from convotel import semconv
from convotel.context import Claim, ConversationContext, current, held, release
from convotel.delivery.wire import dumps

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_capture_override: bool | None = None

# Set by framework instrumentors (LangChain) while their runs are active, so that a
# lower-level instrumentor (OpenAI) threads its spans under the same run and does
# not report a model call twice. They hold claims: see :class:`convotel.context.Claim`.
_run_parent: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("convotel_run_parent", default=None)
_model_call_owner: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("convotel_model_owner", default=None)


def enter_run(span_id: str) -> Claim:
    """Spans started inside get ``convotel.parent_span_id`` = ``span_id`` (a task/workflow span)."""
    return Claim(_run_parent, span_id)


def enter_model_call(span_id: str) -> Claim:
    """A framework span maps this model call; lower-level spans inside are marked ``convotel.covered_by``."""
    return Claim(_model_call_owner, span_id)


def leave(claim: Claim) -> None:
    """Undo :func:`enter_run` / :func:`enter_model_call`, from any context and in any order."""
    release(claim)


def set_capture_content(enabled: bool | None) -> None:
    """Set by ``convotel.init(capture_content=...)``; ``None`` goes back to the environment."""
    global _capture_override
    _capture_override = enabled


def env_flag(name: str) -> bool | None:
    """An on/off environment variable: True, False, or None when unset or neither."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def capture_content() -> bool:
    """Whether message text may leave the process.

    ``init(capture_content=...)`` first, then ``CONVOTEL_CAPTURE_CONTENT``, then
    OTel's ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``; default on.
    """
    if _capture_override is not None:
        return _capture_override
    own = env_flag("CONVOTEL_CAPTURE_CONTENT")
    if own is not None:
        return own
    otel = env_flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    return True if otel is None else otel


def context_attributes() -> dict[str, Any]:
    """Span attributes for the active ``convotel.conversation(...)`` and framework run, if any."""
    attrs: dict[str, Any] = {}
    if (run_parent := held(_run_parent)) is not None:
        attrs[semconv.STRUCTURAL_PARENT] = run_parent
    if (owner := held(_model_call_owner)) is not None:
        attrs[semconv.COVERED_BY] = owner
    ctx = current()
    if ctx is not None:
        attrs.update(conversation_attributes(ctx))
    return attrs


def conversation_attributes(ctx: ConversationContext) -> dict[str, Any]:
    """Span attributes of a conversation context: only the fields it sets."""
    attrs: dict[str, Any] = {}
    if ctx.conversation_id:
        attrs[semconv.CONVERSATION_ID] = ctx.conversation_id
    if ctx.user_id:
        attrs[semconv.USER_ID] = ctx.user_id
    if ctx.organization_id:
        attrs[semconv.ORGANIZATION_ID] = ctx.organization_id
    if ctx.properties:
        attrs[semconv.CONVERSATION_PROPERTIES] = json_attr(dict(ctx.properties))
    return attrs


def json_attr(value: Any) -> str:
    """Encode a structured value as a JSON string attribute (OTel attributes are flat)."""
    return dumps(value).decode()


_reported: set[tuple[str, str]] = set()


def report_fault(logger: logging.Logger, kind: str, unaffected: str) -> None:
    """Log the exception being handled, once per logger and ``kind``; never raises.

    Instrumentation faults must not reach the app: callers catch, call this, and carry on
    with the app's result unchanged. ``unaffected`` names what goes on (``"the run"``).
    """
    try:
        key = (logger.name, kind)
        if key in _reported:
            return
        _reported.add(key)
        logger.warning("%s: instrumentation error in %s; %s is unaffected (further errors of this kind are not "
                       "logged)", logger.name, kind, unaffected, exc_info=True)
    except Exception:  # pragma: no cover - logging itself failed
        pass


def record_failure(span: Span, error: BaseException) -> None:
    """Error type, HTTP status (when the error has one), the exception event and an error status."""
    if not span.is_recording():
        return
    attrs: dict[str, Any] = {semconv.ERROR_TYPE: type(error).__qualname__}
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        attrs[semconv.HTTP_RESPONSE_STATUS_CODE] = status
    span.set_attributes(attrs)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__qualname__))
