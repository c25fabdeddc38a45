"""The pipeline's worker: it sleeps while idle, wakes for a span, and flush() does not wait out its batching."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from spans import tool_span

from convotel.messages import ConversationBatch
from convotel.pipeline import Pipeline


class Collect:
    def __init__(self) -> None:
        self.batches: list[ConversationBatch] = []
        self.arrived = threading.Event()

    def submit(self, batches: list[ConversationBatch]) -> None:
        self.batches.extend(batches)
        self.arrived.set()

    def flush(self, timeout_s: float) -> bool:
        return True

    def shutdown(self, timeout_s: float) -> bool:
        return True

    def messages(self) -> list[tuple[str, str | None]]:
        return [(m.message_type, m.content) for b in self.batches for m in b.messages]


def test_a_span_that_arrives_after_an_idle_spell_is_mapped_without_a_flush() -> None:
    collect = Collect()
    pipeline = Pipeline([collect], interval_s=0.01)
    try:
        time.sleep(0.2)  # the worker has gone to sleep with nothing queued
        pipeline.put(tool_span("get_weather", "call_1", {"city": "Paris"}, "rain"))
        # The put() woke the worker: the batch arrives with no flush() to push it.
        assert collect.arrived.wait(10.0), "the sleeping worker never woke up for the span"
        assert collect.messages() == [("tool_call", None), ("observation", "rain")]
        call, observation = collect.batches[0].messages
        assert observation.parent_external_message_id == call.external_message_id
    finally:
        pipeline.shutdown(5.0)


def test_flush_cuts_the_batching_wait_short() -> None:
    collect = Collect()
    # A burst waits interval_s for its other spans; a flush() must not wait that out.
    pipeline = Pipeline([collect], interval_s=60.0)
    try:
        pipeline.put(tool_span("get_weather", "call_1", {"city": "Paris"}, "rain"))
        pipeline.put(tool_span("get_time", "call_2", {"city": "Paris"}, "noon", span_id="2222222222222222"))
        assert pipeline.flush(10.0) is True
        assert collect.messages() == [("tool_call", None), ("observation", "rain"),
                                      ("tool_call", None), ("observation", "noon")]
    finally:
        pipeline.shutdown(5.0)


def test_shutdown_maps_what_is_queued_and_refuses_what_comes_after() -> None:
    collect = Collect()
    pipeline = Pipeline([collect], interval_s=60.0)
    pipeline.put(tool_span("get_weather", "call_1", {"city": "Paris"}, "rain"))
    assert pipeline.shutdown(10.0) is True
    assert collect.messages() == [("tool_call", None), ("observation", "rain")]
    pipeline.put(tool_span("late", "call_3", {}, "x"))  # after shutdown: counted, not raised
    assert pipeline.dropped == 1


def _voluntary_switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        return int(next(line for line in status if line.startswith("voluntary_ctxt_switches")).split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts a thread's wake-ups through /proc")
def test_an_idle_pipeline_does_not_wake_its_thread() -> None:
    pipeline = Pipeline([Collect()], interval_s=0.01)
    try:
        pipeline.put(tool_span("get_weather", "call_1", {"city": "Paris"}, "rain"))
        assert pipeline.flush(10.0)
        worker = pipeline._worker  # the thread whose wake-ups the kernel counts
        time.sleep(0.1)  # done with the burst: asleep now
        before = _voluntary_switches(worker)
        time.sleep(1.0)
        # A polling worker (every interval_s) would have woken about a hundred times here.
        assert _voluntary_switches(worker) - before <= 2
    finally:
        pipeline.shutdown(5.0)
