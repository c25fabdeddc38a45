"""One instrumented model call: its span, the content switch, ending exactly once."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from convotel import semconv
from convotel.instrumentation import capture_content, context_attributes

from ._utils import get, report

SERVER_PORT = "server.port"
PROVIDER_OPENAI = "openai"
PROVIDER_AZURE = "azure.ai.openai"
_AZURE_CLASSES = {"BaseAzureClient", "AzureOpenAI", "AsyncAzureOpenAI"}


def client_attributes(instance: Any) -> dict[str, Any]:
    """Provider and server address of the resource's client."""
    client = get(instance, "_client")
    provider = PROVIDER_OPENAI
    if client is not None and any(c.__name__ in _AZURE_CLASSES for c in type(client).__mro__):
        provider = PROVIDER_AZURE
    attrs: dict[str, Any] = {semconv.PROVIDER_NAME: provider}
    url = get(client, "base_url")
    host = get(url, "host")
    if host:
        attrs[semconv.SERVER_ADDRESS] = host
        port = get(url, "port")
        if not port:
            port = 443 if get(url, "scheme") == "https" else 80
        attrs[SERVER_PORT] = port
    return attrs


class Call:
    """The span of one SDK call. ``end``/``fail`` are idempotent and never raise."""

    __slots__ = ("span", "capture", "ended", "conversation_known", "_token")

    def __init__(self, span: trace.Span, capture: bool, conversation_known: bool = False) -> None:
        self.span = span
        self.capture = capture
        self.ended = False
        self.conversation_known = conversation_known  # set by convotel.conversation(): responses must not override
        self._token: Any = None

    @classmethod
    def start(
        cls,
        tracer: trace.Tracer,
        operation: str,
        model: Any,
        instance: Any,
        extra: dict[str, Any] | None = None,
    ) -> Call:
        attrs: dict[str, Any] = {semconv.OPERATION_NAME: operation}
        if isinstance(model, str) and model:
            attrs[semconv.REQUEST_MODEL] = model
        attrs.update(client_attributes(instance))
        if extra:
            attrs.update(extra)
        context = context_attributes()
        attrs.update(context)
        name = f"{operation} {model}" if isinstance(model, str) and model else operation
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        return cls(span, capture_content(), semconv.CONVERSATION_ID in context)

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def activate(self) -> None:
        try:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        except Exception:
            report("context.attach")

    def deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:
                report("context.detach")

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self.span.end()
        except Exception:
            report("span.end")

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` as the call's failure and end the span."""
        if self.ended:
            return
        try:
            span = self.span
            if span.is_recording():
                span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
                status = getattr(exc, "status_code", None)
                if isinstance(status, int):
                    span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__qualname__))
        except Exception:
            report("span.fail")
        self.end()
