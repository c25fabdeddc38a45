"""Many streamed calls ended every which way: every call ends exactly one span.

The short run is part of the default suite; ``-m soak`` runs the long one.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import openai
import pytest
from openai_replay import replay_server, request_kwargs
from openai_testing import chunk, sse_client
from opentelemetry.trace import StatusCode

import convotel

NAME = "test_chat_completion_streaming"
ASYNC_NAME = "test_async_chat_completion_streaming"

# mode -> (partial, error)
MODES = {
    "full": (False, False),
    "break_close": (True, False),
    "abandoned": (True, False),
    "with_break": (True, False),
    "never_read": (True, False),
    "cut": (True, True),
    "consumer_error": (True, True),
}
ORDER = list(MODES)


def _sync_call(c: openai.OpenAI, cut_client: openai.OpenAI, mode: str, kwargs: dict[str, Any]) -> None:
    if mode == "cut":
        try:
            for _ in cut_client.chat.completions.create(model="m", messages=[], stream=True):
                pass
        except openai.APIConnectionError:
            return
        raise AssertionError("cut stream did not fail")
    stream = c.chat.completions.create(**kwargs)
    if mode == "full":
        for _ in stream:
            pass
    elif mode == "break_close":
        for _ in stream:
            break
        stream.close()
    elif mode == "abandoned":
        next(stream)
    elif mode == "with_break":
        with stream:
            next(stream)
    elif mode == "consumer_error":
        try:
            with stream:
                for _ in stream:
                    raise LookupError("consumer")
        except LookupError:
            pass
    # never_read: dropped untouched


async def _async_call(c: openai.AsyncOpenAI, cut_client: openai.AsyncOpenAI, mode: str, kwargs: dict[str, Any]) -> None:
    if mode == "cut":
        try:
            async for _ in await cut_client.chat.completions.create(model="m", messages=[], stream=True):
                pass
        except openai.APIConnectionError:
            return
        raise AssertionError("cut stream did not fail")
    stream = await c.chat.completions.create(**kwargs)
    if mode == "full":
        async for _ in stream:
            pass
    elif mode == "break_close":
        async for _ in stream:
            break
        await stream.close()
    elif mode == "abandoned":
        await stream.__anext__()
    elif mode == "with_break":
        async with stream:
            await stream.__anext__()
    elif mode == "consumer_error":
        try:
            async with stream:
                async for _ in stream:
                    raise LookupError("consumer")
        except LookupError:
            pass


def _check(exporter: Any, expected: dict[str, str]) -> None:
    gc.collect()
    spans = exporter.get_finished_spans()
    assert len(spans) == len(expected)
    seen = set()
    for span in spans:
        conv = span.attributes["gen_ai.conversation.id"]
        assert conv not in seen
        seen.add(conv)
        partial, error = MODES[expected[conv]]
        assert bool(span.attributes.get("convotel.partial")) is partial, expected[conv]
        assert (span.status.status_code is StatusCode.ERROR) is error, expected[conv]
    assert seen == set(expected)


def run_stress(exporter: Any, calls: int, async_calls: int, threads: int) -> None:
    expected: dict[str, str] = {}
    kwargs = request_kwargs(NAME)
    cut_events = [chunk("partial "), chunk("answer")]
    with replay_server(NAME) as url:
        c = openai.OpenAI(base_url=url, api_key="test", max_retries=0)
        cut_client = sse_client(cut_events, cut=True)

        def worker(offset: int, count: int) -> None:
            for i in range(offset, offset + count):
                mode = ORDER[i % len(ORDER)]
                with convotel.conversation(f"sync-{i}"):
                    _sync_call(c, cut_client, mode, kwargs)

        per = calls // threads
        for t in range(threads):
            for i in range(t * per, (t + 1) * per):
                expected[f"sync-{i}"] = ORDER[i % len(ORDER)]
        workers = [threading.Thread(target=worker, args=(t * per, per)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        c.close()

    async def run_async() -> None:
        with replay_server(ASYNC_NAME) as aurl:
            ac = openai.AsyncOpenAI(base_url=aurl, api_key="test", max_retries=0)
            acut = sse_client(cut_events, cut=True, is_async=True)
            akwargs = request_kwargs(ASYNC_NAME)

            async def one(i: int) -> None:
                mode = ORDER[i % len(ORDER)]
                with convotel.conversation(f"async-{i}"):
                    await _async_call(ac, acut, mode, akwargs)

            for start in range(0, async_calls, 50):
                await asyncio.gather(*(one(i) for i in range(start, min(start + 50, async_calls))))
            await ac.close()

    for i in range(async_calls):
        expected[f"async-{i}"] = ORDER[i % len(ORDER)]
    asyncio.run(run_async())
    _check(exporter, expected)


def test_stream_stress_short(instrument, exporter):
    run_stress(exporter, calls=140, async_calls=70, threads=2)


@pytest.mark.soak
def test_stream_stress_soak(instrument, exporter):
    run_stress(exporter, calls=4000, async_calls=2000, threads=4)
