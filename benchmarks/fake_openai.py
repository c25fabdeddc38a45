"""A fast, canned OpenAI-compatible server for the benchmarks (runs in its own process).

Every answer is serialized once at import, so the server's own cost is a few
microseconds per request and the same for every configuration:

- ``POST /v1/chat/completions``: a chat completion, or an SSE stream of
  ``STREAM_CHUNKS`` content deltas (plus a usage chunk when the request asks
  for ``stream_options.include_usage``). A request that offers ``tools`` and
  carries no tool result yet gets a ``get_weather`` tool call; once a tool
  result is in the history it gets the final answer (the LangChain agent).
- ``POST /v1/responses``: a completed Responses API object with one
  ``output_text`` message.

Run: ``python -m benchmarks.fake_openai`` prints ``LISTENING http://127.0.0.1:PORT/v1``.
"""

from __future__ import annotations

import itertools

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1_760_000_000
ANSWER = (
    "Paris in spring is mild, usually between 10 and 18 degrees Celsius, with the occasional shower. "
    "Pack a light jacket and an umbrella, comfortable shoes for the cobbles, and book the Musee d'Orsay "
    "ahead: queues are long from April on. The Marais and Canal Saint-Martin are lovely for an evening walk."
)
TOOL_ANSWER = "It is light rain and 14 degrees in Paris right now, so take an umbrella."
STREAM_CHUNKS = 40
USAGE = {
    "prompt_tokens": 58, "completion_tokens": 71, "total_tokens": 129,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}


def _completion(message: dict, finish_reason: str, suffix: str) -> bytes:
    return orjson.dumps({
        "id": f"chatcmpl-bench-{suffix}", "object": "chat.completion", "created": CREATED, "model": MODEL,
        "choices": [{"index": 0, "message": {"refusal": None, "annotations": [], **message},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": USAGE, "service_tier": "default", "system_fingerprint": "fp_bench",
    })


CHAT = _completion({"role": "assistant", "content": ANSWER}, "stop", "chat")
TOOL_CALL = _completion({"role": "assistant", "content": None, "tool_calls": [{
    "id": "call_bench_weather", "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}, "tool_calls", "tool")
TOOL_FINAL = _completion({"role": "assistant", "content": TOOL_ANSWER}, "stop", "final")


def _sse(payloads: list[dict]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"


def _chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    return {"id": "chatcmpl-bench-stream", "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
            "service_tier": "default", "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            "usage": usage}


def _stream_payloads() -> list[dict]:
    words = ANSWER.split(" ")
    per = -(-len(words) // STREAM_CHUNKS)
    pieces = [" ".join(words[i:i + per]) + " " for i in range(0, len(words), per)]
    pieces[-1] = pieces[-1].rstrip()
    chunks = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [_chunk({"content": piece}) for piece in pieces]
    chunks.append(_chunk({}, "stop"))
    return chunks


_STREAM = _stream_payloads()
STREAM = _sse(_STREAM)
STREAM_WITH_USAGE = _sse(_STREAM + [{**_chunk({}), "choices": [], "usage": USAGE}])

RESPONSE = orjson.dumps({
    "id": "resp_bench", "object": "response", "created_at": CREATED, "completed_at": CREATED + 1,
    "status": "completed", "error": None, "incomplete_details": None,
    "instructions": "You are a concise travel assistant.", "max_output_tokens": None, "model": MODEL,
    "output": [{"type": "message", "id": "msg_bench", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": ANSWER, "annotations": [], "logprobs": []}]}],
    "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
    "service_tier": "default", "store": True, "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
    "top_p": 1.0, "truncation": "disabled",
    "usage": {"input_tokens": 58, "input_tokens_details": {"cached_tokens": 0},
              "output_tokens": 71, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 129},
    "user": None, "metadata": {},
})


_counter = itertools.count(1)


def _unique(payload: bytes, placeholder: bytes) -> bytes:
    """Every answer gets its own ids, as from the real API (some instrumentors key state by them)."""
    return payload.replace(placeholder, b"%s-%d" % (placeholder, next(_counter)))


async def chat_completions(request: Request) -> Response:
    body = await request.body()
    if b'"stream": true' in body or b'"stream":true' in body:
        payload = STREAM_WITH_USAGE if b"include_usage" in body else STREAM
        return Response(_unique(payload, b"chatcmpl-bench"), media_type="text/event-stream")
    if b'"tools"' in body:
        if b"tool_call_id" in body:
            return Response(_unique(TOOL_FINAL, b"chatcmpl-bench"), media_type="application/json")
        return Response(_unique(_unique(TOOL_CALL, b"chatcmpl-bench"), b"call_bench"), media_type="application/json")
    return Response(_unique(CHAT, b"chatcmpl-bench"), media_type="application/json")


async def responses(request: Request) -> Response:
    await request.body()
    return Response(_unique(_unique(RESPONSE, b"resp_bench"), b"msg_bench"), media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
    ])


if __name__ == "__main__":
    from benchmarks.servers import serve_forever

    serve_forever(create_app(), path="/v1")
