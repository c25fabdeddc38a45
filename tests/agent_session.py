"""A five-turn tool-calling conversation through the real openai client, captured by convotel.

Used in-process by tests and as a script (``python agent_session.py MODEL_URL INGEST_URL TOKEN``)
for the "second, fresh process" check. The model is ``convotel.demo.scripted_openai``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai
from opentelemetry.sdk.trace import TracerProvider

import convotel
from convotel.demo.scripted_openai import WEATHER_TOOL, weather

CONVERSATION = "conv-trip-5"
SYSTEM = "You are a travel assistant."
QUESTIONS = (
    "What's the weather in Paris?",
    "And in London and Lima?",
    "Thanks, what should I pack?",
    "What about Oslo?",
    "Great, bye!",
)


@contextmanager
def captured(ingest_url: str, token: str, **options: Any) -> Iterator[convotel._runtime.Runtime]:
    """convotel.init() delivering to a Greenflash-compatible server, torn down afterwards."""
    options.setdefault("tracer_provider", TracerProvider())
    runtime = convotel.init(api_key=token, base_url=ingest_url, product_id="prod-test", sink="greenflash",
                            instrumentors=["openai"], **options)
    try:
        yield runtime
    finally:
        convotel.shutdown()


def converse(client: openai.OpenAI, after_call: Callable[[], None] = lambda: None) -> list[str]:
    """Run the five turns, resending the full history on every call; returns the answers."""
    history: list[dict[str, Any]] = []
    answers = []
    with convotel.conversation(CONVERSATION, user_id="user-456", organization_id="acme"):
        for question in QUESTIONS:
            history.append({"role": "user", "content": question})
            while True:
                response = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "system", "content": SYSTEM}, *history], tools=[WEATHER_TOOL])
                after_call()
                message = response.choices[0].message
                history.append(message.model_dump(exclude_none=True, exclude_unset=True))
                if not message.tool_calls:
                    answers.append(message.content or "")
                    break
                for call in message.tool_calls:
                    city = json.loads(call.function.arguments)["city"]
                    history.append({"role": "tool", "tool_call_id": call.id, "content": weather(city)})
    return answers


def main(model_url: str, ingest_url: str, token: str) -> None:
    with captured(ingest_url, token):
        client = openai.OpenAI(base_url=model_url, api_key="sk-test-not-a-real-key", max_retries=0)
        converse(client)


if __name__ == "__main__":
    main(*sys.argv[1:4])
