"""The process-wide convotel runtime behind ``init()``, ``flush()`` and ``shutdown()``."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from convotel import instrumentation
from convotel._config import Settings, resolve
from convotel.mapping import MappingOptions
from convotel.pipeline import BatchConsumer, Pipeline

logger = logging.getLogger("convotel")
_lock = threading.RLock()
_runtime: Runtime | None = None
_pipeline_only: Pipeline | None = None


@dataclass
class Runtime:
    settings: Settings
    pipeline: Pipeline
    tracer_provider: TracerProvider
    instrumentors: list[Any] = field(default_factory=list)

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self.pipeline.flush(timeout_s)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        for instrumentor in self.instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception:
                logger.debug("convotel: uninstrument failed", exc_info=True)
        self.instrumentors.clear()
        return self.pipeline.shutdown(timeout_s)


def _sink_consumers(settings: Settings) -> tuple[list[BatchConsumer], str]:
    """One delivery per sink, and a line saying where the data goes."""
    from convotel.delivery import Delivery

    consumers: list[BatchConsumer] = []
    where: list[str] = []
    for name in settings.sinks:
        if name == "greenflash":
            from convotel.sinks.greenflash import GreenflashSink

            sink: Any = GreenflashSink(settings.api_key or "", base_url=settings.base_url,
                                       product_id=settings.product_id, pipeline_depth=settings.http_pipeline)
            where.append(f"Greenflash ({settings.base_url})")
        elif name == "local":
            from convotel.sinks.local import LocalSink

            sink = LocalSink(settings.db_path, product_id=settings.product_id)
            where.append(f"the local store {settings.db_path} (view it with `convotel show --db {settings.db_path}`)")
        else:
            from convotel.sinks.console import ConsoleSink

            sink = ConsoleSink()
            where.append("the console (stderr)")
        spool = settings.spool_path.with_name(f"{settings.spool_path.name}.{name}") if settings.spool_path else None
        consumers.append(Delivery(sink, spool_path=str(spool) if spool else None))
    return consumers, " and ".join(where) or "nowhere (sink none)"


def _build_pipeline(settings: Settings) -> tuple[Pipeline, str]:
    from convotel.redaction import redactor_from_settings

    consumers, where = _sink_consumers(settings)
    pipeline = Pipeline(
        consumers,
        options=MappingOptions(default_user_id=settings.default_user_id, verbose=settings.verbose),
        transform=redactor_from_settings(settings),
    )
    return pipeline, where


def _say(line: str) -> None:
    print(f"convotel: {line}", file=sys.stderr)


def _instrument(settings: Settings, provider: TracerProvider) -> list[Any]:
    wanted = None
    if settings.instrumentors is not None:
        wanted = {f"convotel_{n.removeprefix('convotel_')}" for n in settings.instrumentors}
    active: list[Any] = []
    instrumentor_eps = [ep for ep in entry_points(group="opentelemetry_instrumentor")
                        if ep.name.startswith("convotel_")]
    if not instrumentor_eps:
        return active
    # Instrumentor packages bring opentelemetry-instrumentation; the core does not need it otherwise.
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    for ep in instrumentor_eps:
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            instrumentor = ep.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                continue
            conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
            if conflict is not None:  # the library it instruments is not installed: nothing to do
                logger.debug("convotel: skipping %s: %s", ep.name, conflict)
                continue
            instrumentor.instrument(tracer_provider=provider, verbose=settings.verbose)
            if instrumentor.is_instrumented_by_opentelemetry:
                active.append(instrumentor)
        except Exception as error:  # a broken optional instrumentor must not break the app
            logger.warning("convotel: could not enable instrumentor %s: %r", ep.name, error)
            logger.debug("convotel: instrumentor failure", exc_info=True)
    return active


def init(*, tracer_provider: TracerProvider | None = None, **options: Any) -> Runtime:
    """See :func:`convotel.init`."""
    global _runtime
    with _lock:
        if _runtime is not None:
            return _runtime
        settings = resolve(**options)
        instrumentation.set_capture_content(settings.capture_content)
        pipeline, where = _build_pipeline(settings)
        from convotel.exporter import ConvotelSpanProcessor

        provider = tracer_provider
        if provider is None:
            current = trace.get_tracer_provider()
            provider = current if isinstance(current, TracerProvider) else None
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
            trace.set_tracer_provider(provider)
        provider.add_span_processor(ConvotelSpanProcessor(pipeline))
        _runtime = Runtime(settings, pipeline, provider, _instrument(settings, provider))
        for notice in settings.notices:
            _say(notice)
        _say(f"conversations go to {where}")
        atexit.register(shutdown)
        return _runtime


def ensure_pipeline() -> Pipeline:
    """The pipeline a bare ``ConvotelSpanExporter()`` uses (zero-code setups)."""
    global _pipeline_only
    with _lock:
        if _runtime is not None:
            return _runtime.pipeline
        if _pipeline_only is None:
            settings = resolve()
            instrumentation.set_capture_content(settings.capture_content)
            _pipeline_only, where = _build_pipeline(settings)
            _say(f"conversations go to {where}")
            # No atexit hook of our own: the SDK shuts its span processor down at exit, and that
            # processor's last export must still find this pipeline open.
        return _pipeline_only


def flush(timeout_s: float = 10.0) -> bool:
    with _lock:
        target = _runtime.pipeline if _runtime is not None else _pipeline_only
    return target.flush(timeout_s) if target is not None else True


def shutdown(timeout_s: float = 10.0) -> bool:
    global _runtime, _pipeline_only
    with _lock:
        runtime, pipeline_only = _runtime, _pipeline_only
        _runtime = _pipeline_only = None
    ok = True
    if runtime is not None:
        ok = runtime.shutdown(timeout_s)
    if pipeline_only is not None:
        ok = pipeline_only.shutdown(timeout_s) and ok
    return ok
