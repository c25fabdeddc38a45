"""The instrumentor's own cost per call and per streamed chunk, without the SDK or the network.

    benchmarks/.venv/bin/python instrumentors/openai/bench/hotpath.py convotel   # or: otel-v2
    benchmarks/.venv/bin/python instrumentors/openai/bench/hotpath.py convotel chat 1000

With a scenario and a count it only runs that many calls (for an instruction count, which does
not care what else the machine is doing):

    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        benchmarks/.venv/bin/python instrumentors/openai/bench/hotpath.py convotel chat 1000

(minus the same with ``chat0``, divided by 1000: instructions per call).

The installed wrapper is called with a stand-in for the SDK method that returns a prebuilt
``ChatCompletion`` / ``Response`` or a stream of prebuilt chunks (the fake server's answers),
into a bare ``TracerProvider`` (no span processor: the export pipeline is not measured).
Times are the minimum over repetitions (robust to other load), minus the uninstrumented call.
"""

from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repo root, for benchmarks.fake_openai

import openai  # noqa: E402
import orjson  # noqa: E402
from openai._models import construct_type  # noqa: E402
from openai.resources.chat.completions import Completions  # noqa: E402
from openai.resources.responses import Responses  # noqa: E402
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402
from openai.types.responses import Response  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from benchmarks import fake_openai  # noqa: E402

COMPLETION = construct_type(type_=ChatCompletion, value=orjson.loads(fake_openai.CHAT))
RESPONSE = construct_type(type_=Response, value=orjson.loads(fake_openai.RESPONSE))
CHUNKS = [
    construct_type(type_=ChatCompletionChunk, value=orjson.loads(event[6:]))
    for event in fake_openai.STREAM_WITH_USAGE.split(b"\n\n")
    if event.startswith(b"data: {")
]
LONG = CHUNKS[:1] + CHUNKS[1:-3] * 5 + CHUNKS[-3:]  # the same stream with 100 more content chunks


class FakeStream:
    chunks = CHUNKS

    def __init__(self) -> None:
        self._it = iter(self.chunks)

    def __iter__(self) -> FakeStream:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> None:
        pass


class LongStream(FakeStream):
    chunks = LONG


def instrument(config: str) -> None:
    provider = TracerProvider()
    if config == "convotel":
        from convotel_openai import OpenAIInstrumentor
    elif config == "otel-v2":
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    else:
        raise SystemExit(f"unknown configuration {config!r}")
    OpenAIInstrumentor().instrument(tracer_provider=provider)


def scenarios() -> dict[str, Any]:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk", max_retries=0)
    chat_create = Completions.__dict__["create"]._self_wrapper
    responses_create = getattr(Responses.__dict__["create"], "_self_wrapper", None)
    messages = [{"role": "system", "content": fake_openai.ANSWER[:40]}, {"role": "user", "content": "Paris?"}]
    chat_kwargs = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2}
    stream_kwargs = {**chat_kwargs, "stream": True, "stream_options": {"include_usage": True}}
    del stream_kwargs["temperature"]
    responses_kwargs = {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "Paris?"}

    def drain(stream: Any) -> None:
        for _ in stream:
            pass

    return {
        "chat": lambda: chat_create(lambda **_: COMPLETION, client.chat.completions, (), chat_kwargs),
        "chat0": lambda: COMPLETION,
        "stream": lambda: drain(chat_create(lambda **_: FakeStream(), client.chat.completions, (), stream_kwargs)),
        "stream0": lambda: drain(FakeStream()),
        "long": lambda: drain(chat_create(lambda **_: LongStream(), client.chat.completions, (), stream_kwargs)),
        "long0": lambda: drain(LongStream()),
        "responses": (
            (lambda: responses_create(lambda **_: RESPONSE, client.responses, (), responses_kwargs))
            if responses_create is not None
            else (lambda: RESPONSE)
        ),
        "responses0": lambda: RESPONSE,
    }


def best_us(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=15)) / number * 1e6


def main() -> None:
    config = sys.argv[1] if len(sys.argv) > 1 else "convotel"
    instrument(config)
    runs = scenarios()
    if len(sys.argv) > 3:  # one scenario, a fixed number of calls (for valgrind)
        fn = runs[sys.argv[2]]
        for _ in range(20):
            fn()
        for _ in range(int(sys.argv[3])):
            fn()
        return
    out = {}
    for name in ("chat", "stream", "responses", "long"):
        number = 500 if name in ("stream", "long") else 2000
        for _ in range(200):
            runs[name]()
        out[name] = best_us(runs[name], number) - best_us(runs[name + "0"], number)
    per_chunk = (out["long"] - out["stream"]) / (len(LONG) - len(CHUNKS))
    print(
        f"{config}: µs per call: chat {out['chat']:.1f}, stream of {len(CHUNKS)} chunks {out['stream']:.1f}, "
        f"responses {out['responses']:.1f}; µs per chunk {per_chunk:.2f}"
    )


if __name__ == "__main__":
    main()
