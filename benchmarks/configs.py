"""The configurations compared: how each one instruments the process and where its spans go.

Each ``setup_*`` runs inside the configuration's own subprocess (see
``benchmarks.worker``), before any scenario, and returns a :class:`Setup`.
Peers export through a ``BatchSpanProcessor`` and the real OTLP/HTTP exporter
to the loopback OTLP receiver; convotel either uses its own pipeline
(``convotel.init``) or sits as ``ConvotelSpanExporter`` in the same
``BatchSpanProcessor`` as the peers; both deliver to the loopback
Greenflash-compatible ingest server.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import sqlite3
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Environment the orchestrator passes to every worker.
ENV_OPENAI = "BENCH_OPENAI_URL"
ENV_OTLP = "BENCH_OTLP_URL"
ENV_INGEST = "BENCH_INGEST_URL"
ENV_INGEST_TOKEN = "BENCH_INGEST_TOKEN"
ENV_WORKER_CPUS = "BENCH_WORKER_CPUS"  # comma-separated CPUs a worker pins itself to
ENV_INGEST_DB = "BENCH_INGEST_DB"  # set when the ingest server is `convotel serve` (messages are counted there)
PRODUCT_ID = "bench-product"


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    kind: str  # "baseline" | "convotel" | "peer" | "diagnostic" (shown, never judged)
    packages: tuple[str, ...] = ()  # distributions whose versions the report shows
    note: str = ""


@dataclass
class Setup:
    flush: Callable[[], None]
    delivered: Callable[[], int]  # spans (peers) or messages (convotel) that reached the backend so far
    unit: str  # "span" | "msg" | ""
    invoke_config: dict[str, Any] | None = None  # LangChain: the config= passed to every invoke
    notes: list[str] = field(default_factory=list)


OPENAI_CONFIGS = (
    Config("none", "none (baseline)", "baseline"),
    Config("convotel", "convotel: `init()` pipeline", "convotel", ("convotel-openai",),
           "convotel.init(sink='greenflash') → its span processor → mapping → delivery → ingest server"),
    Config("convotel-bsp", "convotel: exporter in `BatchSpanProcessor`", "convotel", ("convotel-openai",),
           "ConvotelSpanExporter in the same BatchSpanProcessor as the peers, same mapping and delivery"),
    Config("convotel-nosink", "convotel, sink `none` (diagnostic: no delivery)", "diagnostic", ("convotel-openai",),
           "init(sink='none'): instrumentor, span processor and mapping; nothing is sent"),
    Config("openllmetry", "OpenLLMetry", "peer", ("opentelemetry-instrumentation-openai",)),
    Config("openinference", "OpenInference", "peer", ("openinference-instrumentation-openai",)),
    Config("otel-v2", "OTel official (openai-v2)", "peer",
           ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai")),
)

LANGCHAIN_CONFIGS = (
    Config("none", "none (baseline)", "baseline"),
    Config("convotel", "convotel: `CallbackHandler` + `init()` pipeline", "convotel", ("convotel-langchain",),
           "explicit CallbackHandler in config={'callbacks': [...]}, convotel.init(instrumentors=[]) pipeline"),
    Config("convotel-init", "convotel: `init()` (auto LangChain + OpenAI)", "convotel",
           ("convotel-langchain", "convotel-openai"),
           "one line: convotel.init() injects the handler and patches the OpenAI client"),
    Config("convotel-bsp", "convotel: handler, exporter in `BatchSpanProcessor`", "convotel", ("convotel-langchain",)),
    Config("convotel-nosink", "convotel: handler, sink `none` (diagnostic: no delivery)", "diagnostic",
           ("convotel-langchain",), "CallbackHandler + init(sink='none'): spans and mapping; nothing is sent"),
    Config("openinference", "OpenInference", "peer", ("openinference-instrumentation-langchain",)),
    Config("openllmetry", "OpenLLMetry", "peer", ("opentelemetry-instrumentation-langchain",)),
)

SUITE_CONFIGS = {"openai": OPENAI_CONFIGS, "langchain": LANGCHAIN_CONFIGS}


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- building blocks ---------------------------------------------------------------------------


def _provider() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": "convotel-bench"}))
    trace.set_tracer_provider(provider)
    return provider


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _otlp_setup() -> tuple[Any, Setup]:
    """A tracer provider exporting through BatchSpanProcessor + OTLP/HTTP to the loopback receiver."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = os.environ[ENV_OTLP]
    provider = _provider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))

    def flush() -> None:
        provider.force_flush(30_000)

    return provider, Setup(flush, lambda: int(_get_json(f"{base}/stats")["spans"]), "span")


def _ingest_counter() -> Callable[[], int]:
    db = os.environ.get(ENV_INGEST_DB)
    if db:
        def count() -> int:
            if not os.path.exists(db):
                return 0
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
                return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
        return count
    base = os.environ[ENV_INGEST].removesuffix("/v1")
    return lambda: int(_get_json(f"{base}/stats")["messages"])


def _greenflash_env() -> None:
    """What ``init()`` reads, for the exporter rows whose pipeline is built from the environment."""
    os.environ["CONVOTEL_SINK"] = "greenflash"
    os.environ["GREENFLASH_API_KEY"] = os.environ[ENV_INGEST_TOKEN]
    os.environ["GREENFLASH_BASE_URL"] = os.environ[ENV_INGEST]
    os.environ["GREENFLASH_PRODUCT_ID"] = PRODUCT_ID


def _convotel_init(instrumentors: list[str] | None, *, sink: str = "greenflash") -> Setup:
    import convotel

    provider = _provider()
    convotel.init(sink=sink, api_key=os.environ[ENV_INGEST_TOKEN], base_url=os.environ[ENV_INGEST],
                  product_id=PRODUCT_ID, tracer_provider=provider, instrumentors=instrumentors,
                  service_name="convotel-bench")

    def flush() -> None:
        provider.force_flush(30_000)
        convotel.flush(30.0)

    if sink == "none":
        return Setup(flush, lambda: 0, "none")
    return Setup(flush, _ingest_counter(), "msg")


def _convotel_bsp() -> tuple[Any, Setup]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import convotel
    from convotel.exporter import ConvotelSpanExporter

    _greenflash_env()
    provider = _provider()
    provider.add_span_processor(BatchSpanProcessor(ConvotelSpanExporter()))

    def flush() -> None:
        provider.force_flush(30_000)  # BatchSpanProcessor → exporter → pipeline queue
        convotel.flush(30.0)  # pipeline → mapping → delivery → ingest server

    return provider, Setup(flush, _ingest_counter(), "msg")


def _callback_handler(provider: Any) -> Any:
    from convotel_langchain import CallbackHandler

    params = inspect.signature(CallbackHandler).parameters
    return CallbackHandler(tracer_provider=provider) if "tracer_provider" in params else CallbackHandler()


# -- OpenAI suite ------------------------------------------------------------------------------


def setup_openai(name: str) -> Setup:
    if name == "none":
        return Setup(lambda: None, lambda: 0, "")
    if name == "convotel":
        from convotel_openai import OpenAIInstrumentor  # noqa: F401  (fail here, loudly, when it is missing)

        return _convotel_init(["openai"])
    if name == "convotel-bsp":
        from convotel_openai import OpenAIInstrumentor

        provider, setup = _convotel_bsp()
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return setup
    if name == "convotel-nosink":
        from convotel_openai import OpenAIInstrumentor  # noqa: F401

        return _convotel_init(["openai"], sink="none")
    if name == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "true")
        provider, setup = _otlp_setup()
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return setup
    if name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        provider, setup = _otlp_setup()
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return setup
    if name == "otel-v2":
        # Content on the span (as every other row has it): the "latest experimental" GenAI mode with
        # SPAN_ONLY capture. The default (stable) mode would send content to OTel log events instead.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        provider, setup = _otlp_setup()
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        setup.notes.append("content captured on spans (OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental, "
                           "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY)")
        return setup
    raise KeyError(name)


# -- LangChain suite ---------------------------------------------------------------------------


def setup_langchain(name: str) -> Setup:
    if name == "none":
        return Setup(lambda: None, lambda: 0, "")
    if name == "convotel":
        from opentelemetry import trace

        setup = _convotel_init([])  # no global patching: the handler is passed explicitly
        setup.invoke_config = {"callbacks": [_callback_handler(trace.get_tracer_provider())]}
        return setup
    if name == "convotel-init":
        from convotel_langchain import CallbackHandler  # noqa: F401

        return _convotel_init(None)
    if name == "convotel-bsp":
        provider, setup = _convotel_bsp()
        setup.invoke_config = {"callbacks": [_callback_handler(provider)]}
        return setup
    if name == "convotel-nosink":
        from opentelemetry import trace

        setup = _convotel_init([], sink="none")
        setup.invoke_config = {"callbacks": [_callback_handler(trace.get_tracer_provider())]}
        return setup
    if name == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        provider, setup = _otlp_setup()
        LangChainInstrumentor().instrument(tracer_provider=provider)
        return setup
    if name == "openllmetry":
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "true")
        provider, setup = _otlp_setup()
        LangchainInstrumentor().instrument(tracer_provider=provider)
        return setup
    raise KeyError(name)


SUITE_SETUP = {"openai": setup_openai, "langchain": setup_langchain}
