"""LangChainInstrumentor: automatic injection with langchain-core alone, one handler per run,
symmetric uninstrument, zero-code, and a handler that forgets finished runs (memory stays flat)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from convotel_langchain import CallbackHandler, LangChainInstrumentor
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import convotel

REPO = Path(__file__).resolve().parents[1]

_BLOCK_LANGCHAIN = """
import importlib.abc, sys

class _NoLangchain(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "langchain" or name.startswith("langchain."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, _NoLangchain())
try:
    import langchain  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the langchain package is still importable")
"""

_APP = """
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph import END, START, MessagesState, StateGraph

model = GenericFakeChatModel(messages=iter([AIMessage("Hello from the graph."), AIMessage("Hello from the chain.")]))
graph = StateGraph(MessagesState)
graph.add_node("reply", lambda state: {"messages": [model.invoke(state["messages"])]})
graph.add_edge(START, "reply")
graph.add_edge("reply", END)
graph.compile(name="tiny").invoke({"messages": [("user", "hi graph")]},
                                  config={"configurable": {"thread_id": "tiny-thread"}})
chain = ChatPromptTemplate.from_messages([("system", "Be {tone}."), ("human", "{q}")]) | model
with convotel.conversation("tiny-chain"):
    chain.invoke({"tone": "brief", "q": "hi chain"})
"""


def _run(command: list[str], script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*command, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_init_instruments_langchain_without_the_langchain_package() -> None:
    """convotel.init() alone: the handler reaches every run with only langchain-core importable."""
    script = _BLOCK_LANGCHAIN + textwrap.dedent("""
        import json
        import convotel
        from convotel.exporter import ConvotelSpanProcessor
        from convotel.pipeline import Pipeline
        from opentelemetry.sdk.trace import TracerProvider

        class Collect:
            batches = []
            def submit(self, batches): self.batches.extend(batches)
            def flush(self, timeout_s): return True
            def shutdown(self, timeout_s): return True

        collect = Collect()
        provider = TracerProvider()
        pipeline = Pipeline([collect])
        provider.add_span_processor(ConvotelSpanProcessor(pipeline))
        runtime = convotel.init(tracer_provider=provider, sink="none")
    """) + _APP + textwrap.dedent("""
        provider.force_flush()
        pipeline.flush()
        out = {}
        for batch in collect.batches:
            out.setdefault(batch.conversation.external_conversation_id, []).extend(
                (m.message_type, m.content) for m in batch.messages)
        import sys
        print(json.dumps({"instrumentors": sorted(type(i).__name__ for i in runtime.instrumentors),
                          "conversations": out, "langchain_imported": "langchain" in sys.modules}))
        convotel.shutdown()
    """)
    result = json.loads(_run([sys.executable], script).stdout.strip().splitlines()[-1])
    assert "LangChainInstrumentor" in result["instrumentors"]
    assert result["langchain_imported"] is False
    # (The workflow is announced at start and again at end: same id, the API keeps one.)
    conversations = {k: list(dict.fromkeys(tuple(m) for m in v)) for k, v in result["conversations"].items()}
    assert conversations == {
        "tiny-thread": [("workflow", "tiny"), ("user_message", "hi graph"),
                        ("final_response", "Hello from the graph.")],
        "tiny-chain": [("user_message", "hi chain"), ("assistant_message", "Hello from the chain.")],
    }


def test_zero_code_opentelemetry_instrument() -> None:
    """``OTEL_TRACES_EXPORTER=convotel opentelemetry-instrument python app.py``: no convotel call in the app
    except the conversation context."""
    app = "import convotel\n" + textwrap.dedent(_APP) + "\n"
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    env = {"OTEL_TRACES_EXPORTER": "convotel", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
           "CONVOTEL_SINK": "console", "OTEL_BSP_SCHEDULE_DELAY": "10"}
    err = _run([str(instrument), sys.executable], _BLOCK_LANGCHAIN + app, env).stderr
    assert "[convotel] conversation tiny-thread" in err, err[-3000:]
    assert "[convotel] conversation tiny-chain" in err, err[-3000:]
    for line in ("workflow", "user_message", "final_response", "assistant_message", "'Hello from the chain.'"):
        assert line in err, err[-3000:]


# -- in-process ---------------------------------------------------------------------------------------------
@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _chain() -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage("ok")] * 1000))
    return ChatPromptTemplate.from_messages([("human", "{q}")]) | model


def _span_names(exporter: InMemorySpanExporter) -> list[str]:
    names = [s.name for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "convotel_langchain"]
    exporter.clear()
    return names


def test_one_handler_per_run_and_symmetric_uninstrument(provider: TracerProvider,
                                                        exporter: InMemorySpanExporter) -> None:
    from langgraph.store.base import BaseStore
    from langgraph.store.memory import InMemoryStore

    originals = {name: vars(BaseStore)[name] for name in ("get", "aget", "put", "aput", "search", "delete")}
    chain = _chain()
    instrumentor = LangChainInstrumentor()
    for _ in range(2):  # instrument, uninstrument, and again: the hook is registered once
        instrumentor.instrument(tracer_provider=provider)
        try:
            chain.invoke({"q": "hi"})
            assert _span_names(exporter) == ["chat", "RunnableSequence"]
            chain.invoke({"q": "hi"}, config={"callbacks": [CallbackHandler(tracer_provider=provider)]})
            assert _span_names(exporter) == ["chat", "RunnableSequence"]  # the explicit one only
            InMemoryStore().put(("ns",), "k", {"v": 1})
            assert _span_names(exporter) == ["store.put"]
        finally:
            instrumentor.uninstrument()
        chain.invoke({"q": "hi"})
        InMemoryStore().put(("ns",), "k", {"v": 1})
        assert _span_names(exporter) == []
        assert {name: vars(BaseStore)[name] for name in originals} == originals

    from convotel_langchain._instrumentor import _switch
    from langchain_core.tracers.context import _configure_hooks

    assert sum(1 for hook in _configure_hooks if hook[0] is _switch) == 1


def test_explicit_handler_needs_no_instrumentor(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    handler = CallbackHandler(tracer_provider=provider)
    _chain().invoke({"q": "hi"}, config={"callbacks": [handler]})
    assert _span_names(exporter) == ["chat", "RunnableSequence"]
    _chain().invoke({"q": "hi"})
    assert _span_names(exporter) == []


# -- memory: the handler forgets finished runs --------------------------------------------------------------
@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


def _workload() -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage("done")] * 10**7))

    def step(state: MessagesState) -> dict[str, Any]:
        echo.invoke({"name": "echo", "args": {"text": "x"}, "id": "call_1", "type": "tool_call"})
        return {"messages": [model.invoke(state["messages"][-1:])]}

    graph = StateGraph(MessagesState)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph.compile(name="loop")


def _own_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Live bytes allocated by convotel_langchain's own code (run records, their maps, attributes)."""
    mine = snapshot.filter_traces([tracemalloc.Filter(True, "*convotel_langchain*")])
    return sum(stat.size for stat in mine.statistics("filename"))


def _memory_growth(runs: int) -> tuple[int, int, CallbackHandler]:
    provider = TracerProvider()  # spans are made and dropped: what stays alive is the handler's
    handler = CallbackHandler(tracer_provider=provider)
    graph = _workload()
    config = {"callbacks": [handler], "configurable": {"thread_id": "mem"}}
    for _ in range(200):  # warm up caches (LangChain's, LangGraph's, ours)
        graph.invoke({"messages": [("user", "hi")]}, config=config)
    gc.collect()
    tracemalloc.start(1)
    try:
        graph.invoke({"messages": [("user", "hi")]}, config=config)
        gc.collect()
        before = _own_bytes(tracemalloc.take_snapshot())
        for _ in range(runs):
            graph.invoke({"messages": [("user", "hi")]}, config=config)
        gc.collect()
        after = _own_bytes(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    return before, after, handler


@pytest.fixture
def _no_instrumentor() -> Iterator[None]:
    from convotel_langchain._instrumentor import _switch

    assert _switch.handler is None
    yield


def test_memory_flat_over_runs_short(_no_instrumentor: None) -> None:
    before, after, handler = _memory_growth(300)
    assert handler.active_runs == 0
    assert after - before < 4_000, f"the handler kept {after - before} bytes over 300 runs"


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_memory_flat_over_10_000_runs(_no_instrumentor: None) -> None:
    before, after, handler = _memory_growth(10_000)
    assert handler.active_runs == 0
    assert after - before < 4_000, f"the handler kept {after - before} bytes over 10,000 runs"


def test_conversation_context_is_restored_after_runs(provider: TracerProvider) -> None:
    handler = CallbackHandler(tracer_provider=provider)
    graph = _workload()
    graph.invoke({"messages": [("user", "hi")]}, config={"callbacks": [handler], "configurable": {"thread_id": "t"}})
    assert convotel.context.current() is None
    from opentelemetry import trace

    from convotel.instrumentation import context_attributes

    assert context_attributes() == {}
    assert not trace.get_current_span().get_span_context().is_valid
