"""Chains, prompts, direct OpenAI calls inside nodes, agent actions, custom events, memory,
errors, retries and content capture, each asserted as the conversation the ingest server stored."""

# ruff: noqa: F811  (pytest fixtures imported from test_langchain_harness)
from __future__ import annotations

import asyncio
import warnings
from typing import Any

import openai
import pytest
from convotel_langchain import CallbackHandler, LangChainInstrumentor
from convotel_openai import OpenAIInstrumentor
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables.config import get_callback_manager_for_config
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from test_langchain_agents import QUESTION, THOUGHT, ask, assert_causal, conversation, rows, rows_sorted
from test_langchain_harness import Traced, chat_model, model_server, traced, weather_tools  # noqa: F401

import convotel
from convotel.demo import scripted_openai
from convotel.instrumentation import set_capture_content

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


def scripted_answer(question: str) -> str:
    """What the scripted server answers to a lone question (the demo's wording may change)."""
    message, _finish = scripted_openai._reply([{"role": "user", "content": question}], 1)  # type: ignore[misc]
    return str(message["content"])


@pytest.fixture
def instrumented(traced: Traced) -> Traced:
    traced.instrument(OpenAIInstrumentor())
    traced.instrument(LangChainInstrumentor())
    return traced


# -- prompt templates ---------------------------------------------------------------------------------
def test_chat_prompt_template_becomes_a_recognisable_system_prompt(instrumented: Traced, model_server: Any) -> None:
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You are {persona}. Answer in {style} style."),
        ("placeholder", "{history}"),
        ("human", "{question}"),
    ])
    chain = prompt | chat_model(model_server)
    with convotel.conversation("prompt-1", user_id="u-1"):
        chain.invoke({"persona": "a travel agent", "style": "terse", "question": "hi there", "history": []})

    assert conversation(instrumented, "prompt-1") == [
        ("user_message", "hi there", None),
        ("assistant_message", scripted_answer("hi there"), "user_message:hi there"),
    ]
    stored = instrumented.server.store.conversation("prompt-1")
    assert stored.external_user_id == "u-1"
    assert stored.system_prompt == {
        "components": [{"type": "system", "content": "You are {{persona}}. Answer in {{style}} style."}],
        "variables": {"persona": "a travel agent", "style": "terse"},
    }


# -- an OpenAI call made directly inside a node ------------------------------------------------------------
def _direct_graph(server: Any, *, use_async: bool) -> Any:
    model = chat_model(server)
    base_url = f"{server.url}/v1"

    def via_langchain(state: MessagesState) -> dict[str, Any]:
        model.invoke([HumanMessage("hi there")])
        client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
        client.chat.completions.create(model="demo-model", messages=[{"role": "user", "content": "hi again"}])
        return {}

    async def avia_langchain(state: MessagesState) -> dict[str, Any]:
        await model.ainvoke([HumanMessage("hi there")])
        # The chat model's run has ended (in a copied context): this call is not covered by it.
        client = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)
        await client.chat.completions.create(model="demo-model", messages=[{"role": "user", "content": "hi again"}])
        return {}

    graph = StateGraph(MessagesState)
    graph.add_node("work", avia_langchain if use_async else via_langchain)
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    return graph.compile(name="direct")


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_direct_openai_call_inside_a_node_is_captured_once_and_threaded(
        instrumented: Traced, model_server: Any, use_async: bool) -> None:
    graph = _direct_graph(model_server, use_async=use_async)
    config = {"configurable": {"thread_id": "direct"}}
    if use_async:
        asyncio.run(graph.ainvoke(ask(), config=config))
    else:
        graph.invoke(ask(), config=config)

    assert conversation(instrumented, "direct") == [
        ("workflow", "direct", None),
        ("user_message", "hi there", "workflow:direct"),
        ("final_response", scripted_answer("hi there"), "user_message:hi there"),
        ("user_message", "hi again", "workflow:direct"),
        ("assistant_message", scripted_answer("hi again"), "user_message:hi again"),
    ]
    assert instrumented.conversation_ids() == ["direct"]
    # Nothing leaked into the caller's context.
    assert convotel.context.current() is None
    assert convotel.instrumentation.context_attributes() == {}


# -- agent actions, on_text, custom events ---------------------------------------------------------
def test_agent_actions_text_and_custom_events(traced: Traced) -> None:
    """The callback sequence of a classic AgentExecutor (the ``langchain`` package is not installed)."""
    get_weather = weather_tools()[0]
    handler = CallbackHandler(tracer_provider=traced.provider)

    def executor(inputs: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        run = get_callback_manager_for_config(config).on_chain_start(None, inputs, name="AgentExecutor")
        run.on_agent_action(AgentAction("get_weather", {"city": "Paris"}, "I should look up Paris first."))
        observation = get_weather.invoke({"name": "get_weather", "args": {"city": "Paris"}, "id": "call_x",
                                          "type": "tool_call"}, config={"callbacks": run.get_child()})
        run.on_text(f"Observation: {observation.content}")
        dispatch_custom_event("progress", {"done": 1, "of": 1}, config={"callbacks": run.get_child()})
        run.on_agent_finish(AgentFinish({"output": "Rainy."}, "Final Answer: Rainy."))
        run.on_chain_end({"output": "Rainy."})
        return {"output": "Rainy."}

    with convotel.conversation("executor-1"):
        executor({"input": "weather in Paris?"}, {"callbacks": [handler]})

    assert conversation(traced, "executor-1") == [
        ("workflow", "AgentExecutor", None),
        ("thought", "I should look up Paris first.", "workflow:AgentExecutor"),
        ("tool_call", "get_weather(Paris)", "workflow:AgentExecutor"),
        ("observation", "light rain, 14°C", "tool_call:get_weather(Paris)"),
        ("thought", "Observation: light rain, 14°C", "workflow:AgentExecutor"),
        ("callback", "progress", "workflow:AgentExecutor"),
    ]
    event = traced.stored("executor-1")[-1]
    assert event.input == {"done": 1, "of": 1}
    assert handler.active_runs == 0


def test_custom_event_inside_a_graph_node(instrumented: Traced) -> None:
    def work(state: MessagesState) -> dict[str, Any]:
        dispatch_custom_event("checkpoint", {"step": "work"})
        return {}

    graph = StateGraph(MessagesState)
    graph.add_node("work", work)
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    graph.compile(name="evented").invoke(ask(), config={"configurable": {"thread_id": "evented"}})
    assert conversation(instrumented, "evented") == [
        ("workflow", "evented", None), ("callback", "checkpoint", "workflow:evented")]


# -- LangGraph long-term memory ------------------------------------------------------------------------
def test_store_reads_and_writes_are_memory_messages(instrumented: Traced) -> None:
    def remember(state: MessagesState, *, store: BaseStore) -> dict[str, Any]:
        store.put(("users", "u-1"), "prefs", {"units": "metric"})
        store.get(("users", "u-1"), "prefs")
        store.search(("users",), limit=5)
        store.delete(("users", "u-1"), "old")
        return {}

    async def arecall(state: MessagesState, *, store: BaseStore) -> dict[str, Any]:
        await store.aget(("users", "u-1"), "prefs")
        return {}

    graph = StateGraph(MessagesState)
    graph.add_node("remember", remember)
    graph.add_node("recall", arecall)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", END)
    app = graph.compile(name="memory", store=InMemoryStore())
    asyncio.run(app.ainvoke(ask(), config={"configurable": {"thread_id": "memory"}}))

    assert conversation(instrumented, "memory") == [
        ("workflow", "memory", None),
        ("memory_write", "store.put", "workflow:memory"),
        ("memory_read", "store.get", "workflow:memory"),
        ("memory_read", "store.search", "workflow:memory"),
        ("memory_write", "store.delete", "workflow:memory"),
        ("memory_read", "store.get", "workflow:memory"),  # aget: the same message
    ]
    put, get, search, delete, aget = instrumented.stored("memory")[1:]
    assert put.input == {"namespace": ["users", "u-1"], "key": "prefs", "value": {"units": "metric"}}
    assert get.output == {"found": True, "item": {"namespace": ["users", "u-1"], "key": "prefs",
                                                  "value": {"units": "metric"}}}
    assert search.input == {"namespace_prefix": ["users"], "limit": 5}
    assert search.output["items"][0]["key"] == "prefs"
    assert delete.input == {"namespace": ["users", "u-1"], "key": "old"}
    assert aget.output == get.output


# -- errors and retries ---------------------------------------------------------------------------------
def test_failing_tool_is_a_tool_error_under_its_call(instrumented: Traced, model_server: Any) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        raise ValueError(f"station offline in {city}")

    agent = create_react_agent(chat_model(model_server), ToolNode([get_weather], handle_tool_errors=True))
    result = agent.invoke({"messages": [("user", "weather in Paris?")]},
                          config={"configurable": {"thread_id": "tool-error"}})
    answer = result["messages"][-1].content
    thought = "I'll check the weather in Paris."
    assert conversation(instrumented, "tool-error") == [
        ("workflow", "LangGraph", None),
        ("user_message", "weather in Paris?", "workflow:LangGraph"),
        ("thought", thought, "user_message:weather in Paris?"),
        ("tool_call", "get_weather(Paris)", f"thought:{thought}"),
        ("tool_error", "station offline in Paris", "tool_call:get_weather(Paris)"),
        ("final_response", answer, "tool_error:station offline in Paris"),
    ]
    error = next(m for m in instrumented.stored("tool-error") if m.message_type == "tool_error")
    assert error.properties["error"]["type"] == "ValueError"


class FlakyChatModel(BaseChatModel):
    """Fails its first call, then answers."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "flaky"

    def _generate(self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("model unavailable")
        return ChatResult(generations=[ChatGeneration(message=AIMessage("Recovered."))])


def test_failed_attempt_and_retry(traced: Traced) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | FlakyChatModel().with_retry(
        stop_after_attempt=2, wait_exponential_jitter=False)
    with convotel.conversation("retry-1"):
        chain.invoke({"q": "hello?"}, config={"callbacks": [CallbackHandler(tracer_provider=traced.provider)]})
    assert conversation(traced, "retry-1") == [
        ("user_message", "hello?", None),
        ("llm", None, "user_message:hello?"),
        ("assistant_message", "Recovered.", "user_message:hello?"),
    ]
    failed = traced.stored("retry-1")[1]
    assert failed.properties["error"] == {"type": "ConnectionError", "message": "model unavailable"}


def test_failing_graph_keeps_what_happened(traced: Traced, model_server: Any) -> None:
    def explode(state: MessagesState) -> dict[str, Any]:
        raise RuntimeError("node failed")

    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [chat_model(model_server).invoke(state["messages"])]})
    graph.add_node("explode", explode)
    graph.add_edge(START, "model")
    graph.add_edge("model", "explode")
    graph.add_edge("explode", END)
    handler = CallbackHandler(tracer_provider=traced.provider)
    with pytest.raises(RuntimeError):
        graph.compile(name="failing").invoke({"messages": [("user", "hi there")]},
                                             config={"configurable": {"thread_id": "failing"}, "callbacks": [handler]})
    assert conversation(traced, "failing") == [
        ("workflow", "failing", None),
        ("user_message", "hi there", "workflow:failing"),
        ("final_response", scripted_answer("hi there"), "user_message:hi there"),
    ]
    assert handler.active_runs == 0
    assert convotel.context.current() is None


# -- content capture off ---------------------------------------------------------------------------------
def test_capture_off_keeps_structure_only(instrumented: Traced, model_server: Any) -> None:
    set_capture_content(False)
    agent = create_react_agent(chat_model(model_server), weather_tools(), prompt="secret system prompt")
    agent.invoke(ask(), config={"configurable": {"thread_id": "no-content"}})
    stored = instrumented.stored("no-content")
    assert_causal(stored)
    # The thought beside the tool calls stays (without its text): structure flows with capture off.
    assert [(m.message_type, m.tool_name) for m in stored] == [
        ("workflow", None), ("user_message", None), ("thought", None), ("tool_call", "get_weather"),
        ("tool_call", "get_weather"), ("observation", None), ("observation", None), ("final_response", None)]
    assert all(m.content in (None, "LangGraph") and m.input is None and m.output is None for m in stored)
    assert stored[2].properties["usage"]["totalTokens"] > 0
    assert instrumented.server.store.conversation("no-content").system_prompt is None


def test_planner_rows_helper_is_order_insensitive_for_parallel_siblings() -> None:
    a = [("tool_call", "t(b)", "x"), ("tool_call", "t(a)", "x")]
    assert rows_sorted(a) == rows_sorted(list(reversed(a)))
    assert rows([]) == []
    assert QUESTION and THOUGHT


# -- where the conversation comes from ------------------------------------------------------------------
def _echo_graph(answer: str) -> Any:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    model = GenericFakeChatModel(messages=iter([AIMessage(answer)] * 100))
    graph = StateGraph(MessagesState)
    graph.add_node("reply", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph.compile(name="echo")


def test_explicit_conversation_wins_over_thread_then_thread_then_trace(traced: Traced) -> None:
    handler = CallbackHandler(tracer_provider=traced.provider)
    graph = _echo_graph("Hi!")
    with convotel.conversation("explicit-conv", user_id="u-explicit"):
        graph.invoke(ask("one"), config={"callbacks": [handler], "configurable": {"thread_id": "ignored"},
                                         "metadata": {"user_id": "u-meta"}})
    graph.invoke(ask("two"), config={"callbacks": [handler], "configurable": {"thread_id": "thread-conv"},
                                     "metadata": {"user_id": "u-meta"}})
    graph.invoke(ask("three"), config={"callbacks": [handler]})

    ids = traced.conversation_ids()
    assert ids[:2] == ["explicit-conv", "thread-conv"] and len(ids) == 3
    fallback = ids[2]
    assert len(fallback) == 32 and int(fallback, 16)  # the run's trace id
    store = traced.server.store
    assert store.conversation("explicit-conv").external_user_id == "u-explicit"
    assert store.conversation("thread-conv").external_user_id == "u-meta"
    for conv, question in (("explicit-conv", "one"), ("thread-conv", "two"), (fallback, "three")):
        assert conversation(traced, conv) == [("workflow", "echo", None), ("user_message", question, "workflow:echo"),
                                              ("final_response", "Hi!", f"user_message:{question}")]


# -- text LLMs and reasoning blocks ---------------------------------------------------------------------
def test_text_llm_and_reasoning_content_blocks(traced: Traced) -> None:
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    handler = CallbackHandler(tracer_provider=traced.provider)
    with convotel.conversation("llm-1"):
        FakeListLLM(responses=["Paris."]).invoke("Capital of France?", config={"callbacks": [handler]})
    reasoning = AIMessage(content=[{"type": "reasoning", "reasoning": "The user wants a city."},
                                   {"type": "text", "text": "Lima."}])
    with convotel.conversation("reasoning-1"):
        GenericFakeChatModel(messages=iter([reasoning])).invoke("Capital of Peru?", config={"callbacks": [handler]})

    assert conversation(traced, "llm-1") == [
        ("user_message", "Capital of France?", None),
        ("assistant_message", "Paris.", "user_message:Capital of France?"),
    ]
    assert conversation(traced, "reasoning-1") == [
        ("user_message", "Capital of Peru?", None),
        ("thought", "The user wants a city.", "user_message:Capital of Peru?"),
        ("assistant_message", "Lima.", "thought:The user wants a city."),
    ]
    assert traced.stored("reasoning-1")[1].properties["kind"] == "reasoning"
