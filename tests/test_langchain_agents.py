"""LangGraph agents on real ChatOpenAI over HTTP → the conversation stored by the local ingest server.

Every test asserts the whole conversation: message types, text, parents and
order, as the checked ingest server (strict, Greenflash schema) stored it.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_langchain_harness)
from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from convotel_langchain import CallbackHandler, LangChainInstrumentor
from convotel_openai import OpenAIInstrumentor
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_langchain_harness import Traced, chat_model, model_server, traced, weather_tools  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent

QUESTION = "weather in Paris and Tokyo?"
THOUGHT = "I'll check the weather in Paris, Tokyo."
SUMMARY = "Here is what I found: light rain, 14°C; sunny, 22°C."

Row = tuple[str, Any, Any]


def label(message: Any) -> Any:
    if message.message_type == "tool_call":
        return f"{message.tool_name}({','.join(str(v) for v in (message.input or {}).values())})"
    return message.content


def labelled(messages: list[Any], label_of: Callable[[Any], Any] = label) -> list[Row]:
    """(type, text, parent's text) per message, in arrival order: independent of ids."""
    by_id = {m.external_message_id: m for m in messages}
    out = []
    for m in messages:
        parent = by_id.get(m.parent_external_message_id) if m.parent_external_message_id else None
        assert m.parent_external_message_id is None or parent is not None, f"{m} has an unknown parent"
        out.append((m.message_type, label_of(m),
                    None if parent is None else f"{parent.message_type}:{label_of(parent)}"))
    return out


def rows(messages: list[Any]) -> list[Row]:
    """:func:`labelled`, parallel siblings sorted (their order is a race)."""
    return rows_sorted(labelled(messages))


def assert_causal(messages: list[Any]) -> None:
    """Parents come first, with an earlier createdAt."""
    seen: dict[str, Any] = {}
    for m in messages:
        if m.parent_external_message_id is not None:
            parent = seen.get(m.parent_external_message_id)
            assert parent is not None, f"{m.message_type} {label(m)!r} stored before its parent"
            assert parent.created_at < m.created_at
        seen[m.external_message_id] = m


def react_turn(workflow: str = "LangGraph", question: str = QUESTION, thought: str = THOUGHT,
               summary: str = SUMMARY, cities: tuple[tuple[str, str], ...] = (("Paris", "light rain, 14°C"),
                                                                             ("Tokyo", "sunny, 22°C"))) -> list[Row]:
    wf = f"workflow:{workflow}"
    out: list[Row] = [("workflow", workflow, None), ("user_message", question, wf),
                      ("thought", thought, f"user_message:{question}")]
    out += [("tool_call", f"get_weather({c})", f"thought:{thought}") for c, _ in cities]
    out += [("observation", w, f"tool_call:get_weather({c})") for c, w in cities]
    out += [("final_response", summary, f"observation:{cities[-1][1]}")]
    return rows_sorted(out)


def rows_sorted(expected: list[Row]) -> list[Row]:
    """Parallel tool calls finish in any order: sort each run of same-typed siblings."""
    canonical: list[Row] = []
    i = 0
    while i < len(expected):
        j = i
        while j < len(expected) and expected[j][0] == expected[i][0]:
            j += 1
        canonical.extend(sorted(expected[i:j], key=repr))
        i = j
    return canonical


def conversation(t: Traced, conversation_id: str) -> list[Row]:
    stored = t.stored(conversation_id)
    assert_causal(stored)
    return rows(stored)


@pytest.fixture
def openai_on(traced: Traced) -> OpenAIInstrumentor:
    return traced.instrument(OpenAIInstrumentor())


@pytest.fixture
def auto(traced: Traced) -> LangChainInstrumentor:
    return traced.instrument(LangChainInstrumentor())


def react_agent(server: Any, **kwargs: Any) -> Any:
    return create_react_agent(chat_model(server), weather_tools(), prompt="You are a concise travel assistant.",
                              **kwargs)


def ask(question: str = QUESTION) -> dict[str, Any]:
    return {"messages": [("user", question)]}


def test_the_openai_call_under_chatopenai_keeps_its_facts_and_leaves_the_messages_to_langchain(
        traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor, auto: LangChainInstrumentor) -> None:
    spans = InMemorySpanExporter()
    traced.provider.add_span_processor(SimpleSpanProcessor(spans))
    react_agent(model_server).invoke(ask(), config={"configurable": {"thread_id": "react-facts"}})
    by_scope: dict[str, list[Any]] = {}
    for span in spans.get_finished_spans():
        by_scope.setdefault(span.instrumentation_scope.name, []).append(span)
    model_runs = [s for s in by_scope["convotel_langchain"] if s.attributes.get("gen_ai.operation.name") == "chat"]
    openai_calls = by_scope["convotel_openai"]
    assert len(openai_calls) == len(model_runs) == 2
    for call, run in zip(openai_calls, model_runs, strict=True):
        assert call.parent is not None and call.parent.span_id == run.context.span_id
        assert call.attributes["convotel.covered_by"] == format(run.context.span_id, "016x")
        assert call.attributes["gen_ai.response.id"].startswith("chatcmpl-demo-")
        assert call.attributes["gen_ai.usage.input_tokens"] == run.attributes["gen_ai.usage.input_tokens"]
        # The messages are on the LangChain run; the call underneath does not serialize them again.
        assert "gen_ai.input.messages" in run.attributes and "gen_ai.input.messages" not in call.attributes
        assert "gen_ai.tool.definitions" not in call.attributes
        assert SUMMARY not in str(dict(call.attributes)) and "Paris" not in str(dict(call.attributes))
    assert conversation(traced, "react-facts") == react_turn()


# -- the prebuilt ReAct agent ------------------------------------------------------------------------
def test_react_agent_with_openai_instrumentor_reports_each_model_call_once(
        traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor, auto: LangChainInstrumentor) -> None:
    agent = react_agent(model_server)
    result = agent.invoke(ask(), config={"configurable": {"thread_id": "react-1"}})
    assert result["messages"][-1].content == SUMMARY

    assert conversation(traced, "react-1") == react_turn()
    stored = traced.stored("react-1")
    assert traced.conversation_ids() == ["react-1"]  # the OpenAI spans joined the thread, and were covered
    by_type = {m.message_type: m for m in stored}
    assert by_type["thought"].properties["usage"] == {"inputTokens": 13, "outputTokens": 27, "totalTokens": 40}
    assert by_type["thought"].properties["finishReason"] == "tool_calls"
    assert by_type["final_response"].properties["responseId"].startswith("chatcmpl-demo-")
    assert by_type["final_response"].model == "demo-model-2024-demo"
    stored_conversation = traced.server.store.conversation("react-1")
    assert stored_conversation.system_prompt == "You are a concise travel assistant."
    assert stored_conversation.model == "demo-model-2024-demo"


def test_second_invoke_on_a_thread_adds_only_the_new_turn(
        traced: Traced, model_server: Any, auto: LangChainInstrumentor) -> None:
    agent = react_agent(model_server, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "react-2"}}
    agent.invoke(ask(), config=config)
    first = traced.stored("react-2")
    agent.invoke(ask("and in Oslo?"), config=config)
    both = traced.stored("react-2")

    assert [m.external_message_id for m in both[: len(first)]] == [m.external_message_id for m in first]
    assert conversation(traced, "react-2") == react_turn() + rows_sorted([
        ("workflow", "LangGraph", None),
        ("user_message", "and in Oslo?", "workflow:LangGraph"),
        ("thought", "I'll check the weather in Oslo.", "user_message:and in Oslo?"),
        ("tool_call", "get_weather(Oslo)", "thought:I'll check the weather in Oslo."),
        ("observation", "snow, -2°C", "tool_call:get_weather(Oslo)"),
        ("final_response", "Here is what I found: snow, -2°C.", "observation:snow, -2°C"),
    ])


def test_automatic_and_explicit_handler_give_the_same_messages(
        traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor) -> None:
    agent = react_agent(model_server)
    agent.invoke(ask(), config={"configurable": {"thread_id": "explicit"},
                                "callbacks": [CallbackHandler(tracer_provider=traced.provider)]})
    traced.instrument(LangChainInstrumentor())
    agent.invoke(ask(), config={"configurable": {"thread_id": "automatic"}})
    # Instrumented, and a handler passed explicitly as well: still one handler, no duplicates.
    agent.invoke(ask(), config={"configurable": {"thread_id": "both"},
                                "callbacks": [CallbackHandler(tracer_provider=traced.provider)]})

    explicit, automatic, both = (traced.stored(c) for c in ("explicit", "automatic", "both"))
    assert rows(explicit) == rows(automatic) == rows(both) == react_turn()
    def fields(stored: list[Any]) -> list[tuple[Any, ...]]:  # (parallel observations may swap places)
        return sorted(((m.message_type, m.content, m.tool_name, m.input, m.output, m.model) for m in stored), key=repr)

    assert fields(explicit) == fields(automatic) == fields(both)


# -- sync, async, streaming, batch, threads ---------------------------------------------------------
def _run_sync_stream(agent: Any, thread: str) -> None:
    for _ in agent.stream(ask(), config={"configurable": {"thread_id": thread}}, stream_mode="messages"):
        pass


async def _run_async(agent: Any) -> None:
    await agent.ainvoke(ask(), config={"configurable": {"thread_id": "ainvoke"}})
    async for _ in agent.astream(ask(), config={"configurable": {"thread_id": "astream"}}, stream_mode="messages"):
        pass
    async for _ in agent.astream_events(ask(), config={"configurable": {"thread_id": "astream_events"}},
                                        version="v2"):
        pass


def test_sync_async_streaming_batch_and_threads_keep_their_parents(
        traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor, auto: LangChainInstrumentor) -> None:
    agent = react_agent(model_server)
    _run_sync_stream(agent, "stream")
    asyncio.run(_run_async(agent))
    agent.batch([ask(), ask()], config=[{"configurable": {"thread_id": "batch-a"}},
                                        {"configurable": {"thread_id": "batch-b"}}])
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: agent.invoke(ask(), config={"configurable": {"thread_id": f"thread-{n}"}}),
                      range(4)))

    threads = ["stream", "ainvoke", "astream", "astream_events", "batch-a", "batch-b"]
    threads += [f"thread-{n}" for n in range(4)]
    assert sorted(traced.conversation_ids()) == sorted(threads)
    for thread in threads:
        assert conversation(traced, thread) == react_turn(), thread
    for thread in ("stream", "astream", "astream_events"):  # streamed: usage from the last chunk
        thought = next(m for m in traced.stored(thread) if m.message_type == "thought")
        assert thought.properties["usage"]["totalTokens"] == 40, thread


# -- a hand-built graph: retriever, subgraph (sub-agent), parallel tools, final answer -------------
class GuideRetriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content="Spring in Paris is often rainy.", metadata={"source": "guide"}),
                Document(page_content="Tokyo is mild in spring.", metadata={"source": "guide"})]


def planner_graph(server: Any, **compile_kwargs: Any) -> Any:
    research = create_react_agent(chat_model(server), weather_tools(), name="research")
    writer = GenericFakeChatModel(messages=iter([AIMessage("Pack an umbrella for Paris.")] * 100))
    retriever = GuideRetriever()

    def retrieve(state: MessagesState) -> dict[str, Any]:
        retriever.invoke(state["messages"][-1].content)
        return {}

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [writer.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("retrieve", retrieve)
    graph.add_node("research", research)
    graph.add_node("answer", answer)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "research")
    graph.add_edge("research", "answer")
    graph.add_edge("answer", END)
    return graph.compile(name="planner", **compile_kwargs)


def planner_turn() -> list[Row]:
    return rows_sorted([
        ("workflow", "planner", None),
        ("retrieval", "GuideRetriever", "workflow:planner"),
        ("task", "research", "workflow:planner"),
        ("user_message", QUESTION, "task:research"),
        ("thought", THOUGHT, f"user_message:{QUESTION}"),
        ("tool_call", "get_weather(Paris)", f"thought:{THOUGHT}"),
        ("tool_call", "get_weather(Tokyo)", f"thought:{THOUGHT}"),
        ("observation", "light rain, 14°C", "tool_call:get_weather(Paris)"),
        ("observation", "sunny, 22°C", "tool_call:get_weather(Tokyo)"),
        # The sub-agent's answer is an assistant message under its task; the run's last answer is final.
        ("assistant_message", SUMMARY, "observation:sunny, 22°C"),
        ("final_response", "Pack an umbrella for Paris.", f"assistant_message:{SUMMARY}"),
    ])


def test_hand_built_graph_with_subgraph_retriever_and_parallel_tools(
        traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor, auto: LangChainInstrumentor) -> None:
    graph = planner_graph(model_server)
    graph.invoke(ask(), config={"configurable": {"thread_id": "planner-1"}, "metadata": {"user_id": "u-42"}})

    assert conversation(traced, "planner-1") == planner_turn()
    stored = traced.stored("planner-1")
    retrieval = next(m for m in stored if m.message_type == "retrieval")
    assert retrieval.input == {"query": QUESTION}
    assert retrieval.output == {"documents": [
        {"content": "Spring in Paris is often rainy.", "metadata": {"source": "guide"}},
        {"content": "Tokyo is mild in spring.", "metadata": {"source": "guide"}}]}
    assert traced.server.store.conversation("planner-1").external_user_id == "u-42"


def test_hand_built_graph_async_and_explicit(traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor) -> None:
    graph = planner_graph(model_server)
    handler = CallbackHandler(tracer_provider=traced.provider)

    async def run() -> None:
        await graph.ainvoke(ask(), config={"configurable": {"thread_id": "planner-async"}, "callbacks": [handler]})
        async for _ in graph.astream_events(ask(), config={"configurable": {"thread_id": "planner-events"},
                                                           "callbacks": [handler]}, version="v2"):
            pass

    asyncio.run(run())
    assert conversation(traced, "planner-async") == planner_turn()
    assert conversation(traced, "planner-events") == planner_turn()
    assert handler.active_runs == 0


def test_verbose_level_adds_nodes_as_tasks_and_chains(
        traced: Traced, model_server: Any, openai_on: OpenAIInstrumentor) -> None:
    graph = planner_graph(model_server)
    handler = CallbackHandler(tracer_provider=traced.provider, verbose=True)
    graph.invoke(ask(), config={"configurable": {"thread_id": "planner-verbose"}, "callbacks": [handler]})
    stored = traced.stored("planner-verbose")
    assert_causal(stored)
    types = [m.message_type for m in stored]
    assert types[0] == "workflow"
    tasks = [m.content for m in stored if m.message_type == "task"]
    assert tasks[:3] == ["retrieve", "research", "research"]  # the node, then the subgraph inside it
    assert {"agent", "tools", "answer"} <= set(tasks)
    assert types.count("chain_start") == types.count("chain_end") > 0
    # The conversation itself is the same, only with more structure around it.
    core = [(m.message_type, label(m)) for m in stored if m.message_type not in ("task", "chain_start", "chain_end")]
    assert sorted(core, key=repr) == sorted([(t, x) for t, x, _ in planner_turn() if t != "task"], key=repr)


@pytest.fixture(autouse=True)
def _no_leftover_handler() -> Iterator[None]:
    yield
    from convotel_langchain._instrumentor import _switch

    assert _switch.handler is None, "a test left LangChain instrumented"
