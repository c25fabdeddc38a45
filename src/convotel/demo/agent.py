"""The demo's agent: a plain OpenAI-client tool-calling loop that resends its whole history each turn."""

from __future__ import annotations

import json
from typing import Any

from convotel.demo.scripted_openai import WEATHER_TOOL, weather

SYSTEM_PROMPT = "You are a concise travel assistant. Use get_weather for current conditions."


def run_turn(client: Any, history: list[dict[str, Any]], question: str, *, model: str = "demo-model",
             max_steps: int = 5) -> str:
    """One user turn: call the model, run the tools it asks for, until it answers in text."""
    history.append({"role": "user", "content": question})
    for _ in range(max_steps):
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, *history],
            tools=[WEATHER_TOOL],
        )
        message = response.choices[0].message
        history.append(message.model_dump(exclude_none=True, exclude_unset=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            city = json.loads(call.function.arguments).get("city", "")
            history.append({"role": "tool", "tool_call_id": call.id, "content": weather(city)})
    return "(gave up after too many tool steps)"
