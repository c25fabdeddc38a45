"""convotel.init() + the real openai client + a real ingest server: what arrives, once, in order."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import convotel
from agent_session import CONVERSATION, captured, converse
from convotel._asgi import ServerHandle, serve_in_thread
from convotel.demo.scripted_openai import app as scripted_app

TESTS = Path(__file__).parent


@pytest.fixture
def model_server() -> Iterator[ServerHandle]:
    with serve_in_thread(scripted_app(), name="scripted-model") as server:
        yield server


def tree(store: Any, conversation: str) -> list[tuple[Any, ...]]:
    """Stored messages as (type, content or toolName, index of parent) in stored order."""
    messages = store.messages(conversation)
    index = {m.external_message_id: i for i, m in enumerate(messages)}
    return [(m.message_type, m.tool_name or m.content,
             index.get(m.parent_external_message_id) if m.parent_external_message_id else None) for m in messages]


EXPECTED_FIVE_TURNS = [
    ("user_message", "What's the weather in Paris?", None),
    ("thought", "I'll check the weather in Paris.", 0),
    ("tool_call", "get_weather", 1),
    ("observation", "light rain, 14°C", 2),
    ("final_response", "Here is what I found: light rain, 14°C.", 3),
    ("user_message", "And in London and Lima?", None),
    ("thought", "I'll check the weather in London, Lima.", 5),
    ("tool_call", "get_weather", 6),
    ("tool_call", "get_weather", 6),
    ("observation", "overcast, 12°C", 7),
    ("observation", "mist, 17°C", 8),
    ("final_response", "Here is what I found: overcast, 12°C; mist, 17°C.", 10),
    ("user_message", "Thanks, what should I pack?", None),
    ("assistant_message", "Pack layers and a light rain jacket.", 12),
    ("user_message", "What about Oslo?", None),
    ("thought", "I'll check the weather in Oslo.", 14),
    ("tool_call", "get_weather", 15),
    ("observation", "snow, -2°C", 16),
    ("final_response", "Here is what I found: snow, -2°C.", 17),
    ("user_message", "Great, bye!", None),
    ("assistant_message", "Happy to help: ask me about the weather in any city.", 19),
]
# Created per request when flushing after every model call: only what is new is sent.
EXPECTED_CREATED_PER_CALL = [3, 2, 4, 3, 2, 3, 2, 2]


def statuses(request: Any) -> list[str]:
    return [m["status"] for m in request.response_json()["messages"]]


def test_five_turns_with_full_resend_store_each_message_once(model_server: ServerHandle, ingest_server: Any) -> None:
    client = openai.OpenAI(base_url=f"{model_server.url}/v1", api_key="sk-test-not-a-real-key", max_retries=0)
    with captured(ingest_server.url, ingest_server.token):
        answers = converse(client, after_call=lambda: convotel.flush())

    assert answers[0] == "Here is what I found: light rain, 14°C."
    assert tree(ingest_server.store, CONVERSATION) == EXPECTED_FIVE_TURNS
    posts = [r for r in ingest_server.requests if r.path == "/v1/messages"]
    assert [statuses(r).count("created") for r in posts] == EXPECTED_CREATED_PER_CALL
    assert all("deduplicated" not in statuses(r) for r in posts)
    body = posts[0].json()
    assert (body["externalConversationId"], body["externalUserId"], body["externalOrganizationId"]) == (
        CONVERSATION, "user-456", "acme")
    assert body["systemPrompt"] == "You are a travel assistant."
    first_answer = ingest_server.store.messages(CONVERSATION)[1]
    assert first_answer.properties["usage"]["totalTokens"] > 0
    assert first_answer.properties["finishReason"] == "tool_calls"
    # createdAt strictly increases along every parent link
    stored = ingest_server.store.messages(CONVERSATION)
    by_id = {m.external_message_id: m for m in stored}
    for m in stored:
        if m.parent_external_message_id:
            assert by_id[m.parent_external_message_id].created_at < m.created_at

    # A fresh process replaying the same conversation produces the same ids: all deduplicated.
    stored_ids = {m.external_message_id for m in stored}
    before = len(posts)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(TESTS / "agent_session.py"), f"{model_server.url}/v1", ingest_server.url,
                    ingest_server.token], check=True, env=env, timeout=120, capture_output=True)
    replayed = [r for r in ingest_server.requests if r.path == "/v1/messages"][before:]
    assert replayed, "the second process sent nothing"
    assert all(set(statuses(r)) == {"deduplicated"} for r in replayed)
    assert {m["externalMessageId"] for r in replayed for m in r.json()["messages"]} == stored_ids
    assert tree(ingest_server.store, CONVERSATION) == EXPECTED_FIVE_TURNS
