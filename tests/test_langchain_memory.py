"""LangGraph checkpointer traffic as memory messages (verbose level only), memory with an explicit
handler, and an uninstrument that puts every wrapped method back, each asserted on what the checked
ingest server stored.

LangGraph saves checkpoints and task writes on background threads, concurrently with each other and
with the next step: the relative order of two memory writes, or of a memory write and the next task,
is a race. So each test asserts the whole conversation as a multiset (every message with its parent),
the exact order of everything that is not a memory write, and the order the saves guarantee:
the checkpoint read comes first, checkpoints are saved step by step.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_langchain_harness)
from __future__ import annotations

import asyncio
import operator
import types
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from convotel_langchain import CallbackHandler, LangChainInstrumentor
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from test_langchain_agents import Row, assert_causal, labelled, rows_sorted
from test_langchain_events import scripted_answer
from test_langchain_harness import Traced, chat_model, model_server, traced  # noqa: F401

FIRST, SECOND = "hello there", "what should I pack?"
SAVER_METHODS = ("get_tuple", "aget_tuple", "put", "aput", "put_writes", "aput_writes")
STORE_METHODS = ("get", "aget", "put", "aput", "search", "asearch", "delete", "adelete")


class Memo(MessagesState):
    notes: Annotated[list[str], operator.add]


def memo_graph(server: Any, checkpointer: Any) -> Any:
    """chat (a real model call), then left and right in parallel (LangGraph commits those from worker
    threads, outside the graph's context); left reads the long-term store."""
    model = chat_model(server)

    def chat(state: Memo) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def left(state: Memo, *, store: BaseStore) -> dict[str, Any]:
        store.get(("notes",), "left")
        return {"notes": ["left"]}

    def right(state: Memo) -> dict[str, Any]:
        return {"notes": ["right"]}

    graph = StateGraph(Memo)
    for name, node in (("chat", chat), ("left", left), ("right", right)):
        graph.add_node(name, node)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", "left")
    graph.add_edge("chat", "right")
    graph.add_edge("left", END)
    graph.add_edge("right", END)
    return graph.compile(name="memo", checkpointer=checkpointer, store=InMemoryStore())


def ask(question: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(question)]}


def label(m: Any) -> Any:
    """A memory message by what it read or wrote; any other by its text."""
    if m.content == "checkpointer.get_tuple":
        return f"get_tuple found step {m.output['step']}" if m.output["found"] else "get_tuple nothing"
    if m.content == "checkpointer.put":
        return f"put step {m.input['step']} ({m.input['source']})"
    if m.content == "checkpointer.put_writes":
        return f"put_writes {'+'.join(sorted(m.input['channels']))}"
    return m.content


def rows(messages: list[Any]) -> list[Row]:
    return labelled(messages, label)


def turn(question: str, *, verbose: bool, store: bool = True, first_step: int | None = None) -> list[Row]:
    """One invoke of ``memo_graph``: the conversation, the store read when ``store`` (instrumented), then
    the checkpointer traffic from ``first_step``, the step of the input checkpoint (the read finds the
    one before it)."""
    wf = "workflow:memo"
    asker = "task:chat" if verbose else wf
    answer = scripted_answer(question)
    out: list[Row] = [("workflow", "memo", None)]
    if verbose:
        out.append(("task", "chat", wf))
    out += [("user_message", question, asker), ("final_response", answer, f"user_message:{question}")]
    if verbose:
        out += [("task", "left", wf), ("task", "right", wf)]
    if store:
        out.append(("memory_read", "store.get", "task:left" if verbose else wf))
    if first_step is None:
        return out
    read = "get_tuple nothing" if first_step < 0 else f"get_tuple found step {first_step - 1}"
    out.append(("memory_read", read, wf))
    out += [("memory_write", f"put step {first_step + i} ({'input' if i == 0 else 'loop'})", wf) for i in range(4)]
    out += [("memory_write", f"put_writes {channels}", wf)
            for channels in ("branch:to:chat+messages", "branch:to:left+branch:to:right+messages", "notes", "notes")]
    return out


def assert_turns(stored: list[Any], expected: list[list[Row]]) -> None:
    """The whole conversation, turn by turn: every message with its parent, the order of the
    non-memory messages, the read first and the checkpoints step by step."""
    assert_causal(stored)
    starts = [i for i, m in enumerate(stored) if m.message_type == "workflow"] + [len(stored)]
    assert len(starts) - 1 == len(expected)
    for begin, end, want in zip(starts, starts[1:], expected, strict=False):
        got = rows(stored)[begin:end]
        assert sorted(got, key=repr) == sorted(want, key=repr)
        plain = [r for r in got if not r[0].startswith("memory_")]
        assert plain == rows_sorted(plain) == rows_sorted([r for r in want if not r[0].startswith("memory_")])
        if any(r[1].startswith("get_tuple") for r in want):
            assert got[1][1].startswith("get_tuple")  # read as the run opens, before any step
            puts = [r[1] for r in got if r[1].startswith("put step")]
            assert puts == sorted(puts, key=lambda p: int(p.split()[2]))


def verbose_instrumentor(traced: Traced, **kwargs: Any) -> LangChainInstrumentor:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=traced.provider, **kwargs)
    traced.instrumentors.append(instrumentor)  # uninstrumented when the test ends
    return instrumentor


def methods(cls: type, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: vars(cls)[name] for name in names if name in vars(cls)}


@pytest.fixture(autouse=True)
def _quiet_level(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CONVOTEL_VERBOSE", raising=False)
    yield
    from convotel_langchain._instrumentor import _switch

    assert _switch.handler is None, "a test left LangChain instrumented"
    assert "__init_subclass__" not in vars(BaseCheckpointSaver), "a test left checkpointers wrapped"


# -- verbose: checkpointer traffic ----------------------------------------------------------------------
def test_verbose_level_records_checkpoint_reads_and_writes_under_the_run(traced: Traced, model_server: Any) -> None:
    verbose_instrumentor(traced, verbose=True)
    graph = memo_graph(model_server, InMemorySaver())
    config = {"configurable": {"thread_id": "memo-1"}}
    graph.invoke(ask(FIRST), config=config)  # sync: parallel tasks are committed from worker threads
    asyncio.run(graph.ainvoke(ask(SECOND), config=config))  # async: aget_tuple, aput, aput_writes

    stored = traced.stored("memo-1")
    assert_turns(stored, [turn(FIRST, verbose=True, first_step=-1), turn(SECOND, verbose=True, first_step=3)])
    assert traced.conversation_ids() == ["memo-1"]  # nothing leaked into a conversation of its own
    read = next(m for m in stored if m.content == "checkpointer.get_tuple" and m.output["found"])
    assert read.input == {"thread_id": "memo-1"}
    assert read.output == {"found": True, "thread_id": "memo-1", "checkpoint_id": read.output["checkpoint_id"],
                           "step": 2, "source": "loop"}
    saves = [m for m in stored if m.content == "checkpointer.put"]
    assert [m.input.get("parent_checkpoint_id") for m in saves[1:]] == [m.input["checkpoint_id"] for m in saves[:-1]]
    assert all("value" not in str(m.input) for m in saves)  # ids, steps and channel names; never the state


def test_env_verbose_records_checkpoints_of_savers_defined_later(
        traced: Traced, model_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOTEL_VERBOSE", "1")
    verbose_instrumentor(traced)

    class AuditedSaver(InMemorySaver):  # defined after instrumenting, and calling the wrapped parent
        def put(self, *args: Any, **kwargs: Any) -> Any:
            return super().put(*args, **kwargs)

    memo_graph(model_server, AuditedSaver()).invoke(ask(FIRST), config={"configurable": {"thread_id": "audited"}})
    assert_turns(traced.stored("audited"), [turn(FIRST, verbose=True, first_step=-1)])  # each save once


# -- default level: nothing about checkpointers -----------------------------------------------------------
def test_default_level_leaves_checkpointers_alone(traced: Traced, model_server: Any) -> None:
    before = methods(InMemorySaver, SAVER_METHODS)
    verbose_instrumentor(traced)
    assert methods(InMemorySaver, SAVER_METHODS) == before  # not even wrapped: no cost
    graph = memo_graph(model_server, InMemorySaver())
    graph.invoke(ask(FIRST), config={"configurable": {"thread_id": "quiet"}})
    # A verbose handler of its own gives the run its structure, still no checkpointer traffic.
    handler = CallbackHandler(tracer_provider=traced.provider, verbose=True)
    graph.invoke(ask(FIRST), config={"configurable": {"thread_id": "quiet-verbose"}, "callbacks": [handler]})

    assert_turns(traced.stored("quiet"), [turn(FIRST, verbose=False)])
    assert_turns(traced.stored("quiet-verbose"), [turn(FIRST, verbose=True)])


# -- explicit handler ---------------------------------------------------------------------------------------
def test_explicit_handler_records_memory_only_with_the_instrumentor(traced: Traced, model_server: Any) -> None:
    graph = memo_graph(model_server, InMemorySaver())
    handler = CallbackHandler(tracer_provider=traced.provider, verbose=True)
    graph.invoke(ask(FIRST), config={"configurable": {"thread_id": "explicit"}, "callbacks": [handler]})
    verbose_instrumentor(traced, verbose=True)
    graph.invoke(ask(FIRST), config={"configurable": {"thread_id": "explicit-patched"}, "callbacks": [handler]})

    # The handler alone sees no store or checkpointer call (they fire no callbacks) ...
    assert_turns(traced.stored("explicit"), [turn(FIRST, verbose=True, store=False)])
    # ... with the instrumentor they thread under the explicit handler's run, and the run has one handler.
    assert_turns(traced.stored("explicit-patched"), [turn(FIRST, verbose=True, first_step=-1)])


# -- uninstrument ---------------------------------------------------------------------------------------------
def test_uninstrument_puts_back_every_wrapped_method(traced: Traced, model_server: Any) -> None:
    classes = {BaseCheckpointSaver: SAVER_METHODS, InMemorySaver: SAVER_METHODS, BaseStore: STORE_METHODS}
    before = {cls: methods(cls, names) for cls, names in classes.items()}
    instrumentor = verbose_instrumentor(traced, verbose=True)

    class LateSaver(InMemorySaver):
        def put(self, *args: Any, **kwargs: Any) -> Any:
            return super().put(*args, **kwargs)

    own_put = vars(LateSaver)["put"].__wrapped__
    assert all(vars(InMemorySaver)[name] is not before[InMemorySaver][name] for name in SAVER_METHODS)
    instrumentor.uninstrument()
    traced.instrumentors.remove(instrumentor)

    for cls, names in classes.items():
        after = methods(cls, names)
        assert after.keys() == before[cls].keys(), cls
        assert all(after[name] is before[cls][name] for name in after), cls
    assert vars(LateSaver)["put"] is own_put
    assert "__init_subclass__" not in vars(BaseCheckpointSaver)

    class AfterwardsSaver(InMemorySaver):
        def put(self, *args: Any, **kwargs: Any) -> Any:
            return super().put(*args, **kwargs)

    assert isinstance(vars(AfterwardsSaver)["put"], types.FunctionType)
    handler = CallbackHandler(tracer_provider=traced.provider, verbose=True)
    memo_graph(model_server, LateSaver()).invoke(
        ask(FIRST), config={"configurable": {"thread_id": "after"}, "callbacks": [handler]})
    assert_turns(traced.stored("after"), [turn(FIRST, verbose=True, store=False)])
