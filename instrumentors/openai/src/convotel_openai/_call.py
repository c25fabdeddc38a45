"""One instrumented model call: its span, the content switch, ending exactly once."""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from convotel import semconv
from convotel.instrumentation import capture_content, context_attributes, record_failure

from ._utils import get, report

SERVER_PORT = "server.port"
PROVIDER_OPENAI = "openai"
PROVIDER_AZURE = "azure.ai.openai"
_AZURE_CLASSES = {"BaseAzureClient", "AzureOpenAI", "AsyncAzureOpenAI"}

# True while an instrumented SDK call runs in this context (see ``Call.__enter__``).
INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("convotel_openai_inside", default=False)

_PROVIDERS: dict[type, str] = {}
_MISSING = object()
# Client classes whose ``base_url`` is their ``_base_url`` (checked on the first call, per class).
_PLAIN_URL: dict[type, bool] = {}
# id(base_url object) -> (base_url object, client class, attributes). The SDK's ``base_url``
# setter replaces the object, never mutates it, so the object identifies the address; it is
# held here so its id is not reused while cached.
_SERVERS: dict[int, tuple[Any, type, dict[str, Any]]] = {}
_SERVERS_MAX = 256
_NO_CLIENT = {semconv.PROVIDER_NAME: PROVIDER_OPENAI}


def _provider(kind: type) -> str:
    provider = _PROVIDERS.get(kind)
    if provider is None:
        azure = any(c.__name__ in _AZURE_CLASSES for c in kind.__mro__)
        provider = _PROVIDERS[kind] = PROVIDER_AZURE if azure else PROVIDER_OPENAI
    return provider


def _server(url: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    host = get(url, "host")
    if host:
        attrs[semconv.SERVER_ADDRESS] = host
        port = get(url, "port")
        if not port:
            port = 443 if get(url, "scheme") == "https" else 80
        attrs[SERVER_PORT] = port
    return attrs


def _client_attributes(instance: Any) -> dict[str, Any]:
    """Cached per (base_url object, client class): a shared dict, never to be mutated.

    Reading the public ``client.base_url`` costs a microsecond in recent SDKs (a property with an
    import in it); where a class's ``base_url`` is its ``_base_url``, that is read instead.
    """
    client = get(instance, "_client")
    if client is None:
        return _NO_CLIENT
    kind = type(client)
    url = _MISSING
    if _PLAIN_URL.get(kind):
        url = client.__dict__.get("_base_url", _MISSING)
    if url is _MISSING:
        url = get(client, "base_url")
        if kind not in _PLAIN_URL:
            fields = getattr(client, "__dict__", None)
            _PLAIN_URL[kind] = fields is not None and fields.get("_base_url", _MISSING) is url
    cached = _SERVERS.get(id(url))
    if cached is not None and cached[0] is url and cached[1] is kind:
        return cached[2]
    attrs = {semconv.PROVIDER_NAME: _provider(kind), **_server(url)}
    if len(_SERVERS) >= _SERVERS_MAX:
        _SERVERS.clear()
    _SERVERS[id(url)] = (url, kind, attrs)
    return attrs


def client_attributes(instance: Any) -> dict[str, Any]:
    """Provider and server address of the resource's client."""
    return dict(_client_attributes(instance))


class Call:
    """The span of one SDK call. ``end``/``fail`` are idempotent and never raise.

    ``with call:`` around the SDK call makes the span current and marks the context as
    inside an instrumented call (an SDK helper delegating to ``create`` is not traced
    twice); an exception escaping the block fails the span (and is re-raised unchanged).
    """

    __slots__ = ("span", "capture", "ended", "conversation_known", "covered", "_token", "_inside")

    def __init__(self, span: trace.Span, capture: bool, conversation_known: bool = False,
                 covered: bool = False) -> None:
        self.span = span
        self.capture = capture
        self.ended = False
        self.conversation_known = conversation_known  # set by convotel.conversation(): responses must not override
        # A framework span (LangChain's chat model run) records this call's messages: this span
        # keeps the call's facts (model, usage, timing, errors) but no message content of its own.
        self.covered = covered
        self._token: Any = None
        self._inside: Any = None

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
            name = f"{operation} {model}"
        else:
            name = operation
        attrs.update(_client_attributes(instance))
        if extra:
            attrs.update(extra)
        context = context_attributes()
        if context:
            attrs.update(context)
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        covered = semconv.COVERED_BY in context
        return cls(span, not covered and capture_content(), semconv.CONVERSATION_ID in context, covered)

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def __enter__(self) -> Call:
        self._inside = INSIDE.set(True)
        try:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        except Exception:
            report("context.attach")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.fail(exc)
        INSIDE.reset(self._inside)
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
            record_failure(self.span, exc)
        except Exception:
            report("span.fail")
        self.end()
