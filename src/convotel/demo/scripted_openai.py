"""A scripted OpenAI-compatible chat server: the demo's (and the tests') stand-in for a model.

It answers ``POST /v1/chat/completions`` deterministically from the request: a
question mentioning known cities gets parallel ``get_weather`` tool calls with a
short thought; once every call has its result, it answers with a summary; a
question about packing gets packing advice; anything else a plain invitation. Usage figures are computed from the text,
so runs are reproducible.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CITIES = ("Paris", "Tokyo", "London", "Lima", "Oslo")
WEATHER = {"Paris": "light rain, 14°C", "Tokyo": "sunny, 22°C", "London": "overcast, 12°C",
           "Lima": "mist, 17°C", "Oslo": "snow, -2°C"}


def weather(city: str) -> str:
    """The demo's tool: canned weather per city."""
    return WEATHER.get(city, "unknown")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _tokens(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", text)))


def _reply(messages: list[dict[str, Any]], turn: int) -> dict[str, Any]:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    question = str(last_user.get("content") or "")
    since_user = messages[messages.index(last_user) + 1:] if last_user in messages else []
    results = [m for m in since_user if m.get("role") == "tool"]
    cities = [c for c in CITIES if c.lower() in question.lower()]
    if cities and not results:
        calls = [
            {"id": f"call_{turn}_{i}", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
            for i, c in enumerate(cities)
        ]
        thought = f"I'll check the weather in {', '.join(cities)}."
        return {"role": "assistant", "content": thought, "tool_calls": calls}, "tool_calls"  # type: ignore[return-value]
    if results:
        lines = "; ".join(str(m.get("content")) for m in results)
        return {"role": "assistant", "content": f"Here is what I found: {lines}."}, "stop"  # type: ignore[return-value]
    if "pack" in question.lower():
        return {"role": "assistant", "content": "Pack layers and a light rain jacket."}, "stop"  # type: ignore[return-value]
    return {"role": "assistant", "content": "Happy to help: ask me about the weather in any city."}, "stop"  # type: ignore[return-value]


async def chat_completions(request: Request) -> JSONResponse:
    body = await request.json()
    messages = body.get("messages") or []
    turn = sum(1 for m in messages if m.get("role") in ("user", "tool"))
    message, finish = _reply(messages, turn)  # type: ignore[misc]
    prompt_tokens = sum(_tokens(str(m.get("content") or "")) for m in messages)
    completion_tokens = _tokens(message.get("content") or "") + 8 * len(message.get("tool_calls") or [])
    return JSONResponse({
        "id": f"chatcmpl-demo-{turn}-{len(messages)}",
        "object": "chat.completion",
        "created": 1_700_000_000 + turn,
        "model": f"{body.get('model', 'demo-model')}-2024-demo",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })


def app() -> Starlette:
    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])
