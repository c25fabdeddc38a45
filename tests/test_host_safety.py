"""The host app never sees an exception from convotel: broken mapping, unreachable API, odd answers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import convotel
import convotel.pipeline
from agent_session import captured
from convotel._asgi import serve_in_thread
from convotel.demo.scripted_openai import app as scripted_app
from faultserver import FaultServer
from openai_replay import closed_port_url

API_KEY = "gf-live-secret-4f9a8c2e"


@pytest.fixture
def model() -> Iterator[openai.OpenAI]:
    with serve_in_thread(scripted_app(), name="scripted-model") as server:
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test-not-a-real-key", max_retries=0)


def ask(client: openai.OpenAI, text: str) -> str | None:
    with convotel.conversation("safety"):
        return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}]).choices[0].message.content


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("convotel") and r.levelno >= logging.WARNING]


def test_unreachable_api(model: openai.OpenAI, caplog: pytest.LogCaptureFixture) -> None:
    with captured(closed_port_url(), API_KEY):
        answers = [ask(model, "hello") for _ in range(3)]
        convotel.flush(1.0)  # may give up; must not raise
    assert answers == ["Happy to help: ask me about the weather in any city."] * 3
    logged = "\n".join(warnings_of(caplog)) + caplog.text
    assert API_KEY not in logged


def test_garbage_answers_are_logged_once(model: openai.OpenAI, caplog: pytest.LogCaptureFixture) -> None:
    with FaultServer(api_key=API_KEY) as api:
        api.garbage(b"<html>oops</html>", times=None)
        with captured(api.base_url, API_KEY):
            answers = [ask(model, f"hello {i}") for i in range(3)]
            for _ in range(3):
                convotel.flush(5.0)
        assert len(api.snapshot()) >= 1
    assert answers == ["Happy to help: ask me about the weather in any city."] * 3
    unreadable = [w for w in warnings_of(caplog) if "not the documented JSON" in w]
    assert len(unreadable) == 1, warnings_of(caplog)
    assert API_KEY not in caplog.text


def test_a_mapping_bug_loses_only_that_span(model: openai.OpenAI, ingest_server: Any,
                                            monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = convotel.pipeline.map_record
    calls = {"n": 0}

    def flaky(record: Any, options: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("mapping bug")
        return real(record, options)

    monkeypatch.setattr(convotel.pipeline, "map_record", flaky)
    with captured(ingest_server.url, ingest_server.token) as runtime:
        first = ask(model, "first")
        convotel.flush(5)
        second = ask(model, "second")
        second_again = ask(model, "third")
        assert convotel.flush(5)
        assert runtime.pipeline.mapping_errors == 2
    assert (first, second, second_again) == ("Happy to help: ask me about the weather in any city.",) * 3
    contents = [m.content for m in ingest_server.store.messages("safety") if m.message_type == "user_message"]
    assert contents == ["third"]
    assert len([w for w in caplog.records if "could not map a span" in w.getMessage()]) == 1


def test_a_sink_that_raises_does_not_reach_the_app(model: openai.OpenAI, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from convotel.sinks.local import LocalSink

    def broken_send(self: Any, batch: Any) -> Any:
        raise ZeroDivisionError("sink bug")

    monkeypatch.setattr(LocalSink, "send", broken_send)
    convotel.init(sink="local", db_path=tmp_path / "store.db", tracer_provider=TracerProvider(), instrumentors=["openai"])
    try:
        assert ask(model, "hi") == "Happy to help: ask me about the weather in any city."
        convotel.flush(2)
    finally:
        convotel.shutdown()
