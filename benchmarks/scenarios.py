"""The workloads: the same application code for every configuration.

A scenario builder returns a zero-argument callable that performs one
"call" (one SDK call, or one LangChain invoke) and returns something the
worker checks once, so a configuration that breaks the app is caught.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.configs import ENV_OPENAI, Setup

SYSTEM = "You are a concise travel assistant. Answer in three sentences at most."
QUESTION = "What should I pack for a long weekend in Paris in April, and which museum should I book ahead?"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    build: Callable[[Setup], Callable[[], Any]]
    check: Callable[[Any], bool]
    #: calls per repetition relative to ``--calls`` (cheap scenarios get more, so each repetition
    #: takes roughly the same time)
    weight: float = 1.0


def _client() -> Any:
    import openai

    return openai.OpenAI(base_url=os.environ[ENV_OPENAI], api_key="sk-bench", max_retries=0, timeout=30)


# -- OpenAI ------------------------------------------------------------------------------------


def _chat(setup: Setup) -> Callable[[], Any]:
    client = _client()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

    def call() -> Any:
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)

    return call


def _chat_stream(setup: Setup) -> Callable[[], Any]:
    client = _client()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

    def call() -> Any:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        parts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    return call


def _responses(setup: Setup) -> Callable[[], Any]:
    client = _client()

    def call() -> Any:
        return client.responses.create(model="gpt-4o-mini", instructions=SYSTEM, input=QUESTION)

    return call


OPENAI_SCENARIOS = (
    Scenario("chat", "`chat.completions.create`", _chat, lambda r: bool(r.choices[0].message.content)),
    Scenario("chat-stream", "`chat.completions.create(stream=True)`, 40 chunks, read to the end", _chat_stream,
             lambda r: isinstance(r, str) and r.startswith("Paris"), weight=0.5),
    Scenario("responses", "`responses.create`", _responses, lambda r: bool(r.output_text)),
)


# -- LangChain ---------------------------------------------------------------------------------


def _prompt() -> Any:
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([
        ("system", "You are a concise travel assistant for {company}. Answer in three sentences at most."),
        ("human", "{question}"),
    ])


def _fake_chain(setup: Setup) -> Callable[[], Any]:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser

    from benchmarks.fake_openai import ANSWER

    chain = _prompt() | FakeListChatModel(responses=[ANSWER]) | StrOutputParser()
    inputs = {"company": "Acme Travel", "question": QUESTION}
    config = setup.invoke_config

    def call() -> Any:
        return chain.invoke(inputs, config=config)

    return call


def _chat_openai(**kwargs: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-4o-mini", base_url=os.environ[ENV_OPENAI], api_key="sk-bench",
                      max_retries=0, timeout=30, **kwargs)


def _openai_chain(setup: Setup) -> Callable[[], Any]:
    from langchain_core.output_parsers import StrOutputParser

    chain = _prompt() | _chat_openai(temperature=0.2) | StrOutputParser()
    inputs = {"company": "Acme Travel", "question": QUESTION}
    config = setup.invoke_config

    def call() -> Any:
        return chain.invoke(inputs, config=config)

    return call


def _agent(setup: Setup) -> Callable[[], Any]:
    """A hand-built tool-calling agent: model → tool → model, as one chain run."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.runnables import chain as as_chain
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"light rain, 14°C in {city}"

    model = _chat_openai().bind_tools([get_weather])

    @as_chain
    def agent(question: str) -> str:
        messages: list[Any] = [SystemMessage(SYSTEM), HumanMessage(question)]
        for _ in range(3):
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for tool_call in reply.tool_calls:
                messages.append(get_weather.invoke(tool_call))
        return str(messages[-1].content)

    config = setup.invoke_config

    def call() -> Any:
        return agent.invoke("What's the weather in Paris?", config=config)

    return call


LANGCHAIN_SCENARIOS = (
    Scenario("fake-chain", "prompt | fake chat model | parser (no I/O)", _fake_chain,
             lambda r: isinstance(r, str) and r.startswith("Paris"), weight=2.0),
    Scenario("openai-chain", "prompt | `ChatOpenAI` | parser (one HTTP call)", _openai_chain,
             lambda r: isinstance(r, str) and r.startswith("Paris"), weight=0.6),
    Scenario("agent", "tool-calling agent: `ChatOpenAI` → tool → `ChatOpenAI`", _agent,
             lambda r: isinstance(r, str) and "umbrella" in r, weight=0.35),
)

SUITE_SCENARIOS = {"openai": OPENAI_SCENARIOS, "langchain": LANGCHAIN_SCENARIOS}
