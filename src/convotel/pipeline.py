"""From ended spans to sinks: one worker thread maps spans and hands batches to delivery.

The app thread only appends a finished span to a bounded deque (no copying, no
mapping, no I/O); the worker turns spans into records, records into messages,
and messages into per-sink deliveries.

An idle pipeline costs nothing: its worker sleeps until a span arrives (the first
``put()`` of a burst wakes it), then waits ``interval_s`` so that the burst's spans
are mapped together, and sleeps again once the queue is empty. A worker that polled
instead would wake an idle app twenty times a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from convotel.mapping import DEFAULT_OPTIONS, MappingOptions, map_record, merge
from convotel.messages import ConversationBatch
from convotel.records import SpanRecord, from_readable_span

logger = logging.getLogger("convotel")


class BatchConsumer(Protocol):
    def submit(self, batches: Sequence[ConversationBatch]) -> None: ...
    def flush(self, timeout_s: float) -> bool: ...
    def shutdown(self, timeout_s: float) -> bool: ...


Transform = Callable[[list[ConversationBatch]], list[ConversationBatch]]


class Pipeline:
    """Bounded hand-off from the SDK to delivery, with explicit flush and shutdown."""

    def __init__(
        self,
        consumers: Sequence[BatchConsumer],
        *,
        options: MappingOptions = DEFAULT_OPTIONS,
        transform: Transform | None = None,
        max_queue: int = 50_000,
        interval_s: float = 0.05,
    ) -> None:
        self._consumers = list(consumers)
        self._options = options
        self._transform = transform
        self._max_queue = max_queue
        self._interval_s = interval_s
        self.dropped = 0
        self.mapping_errors = 0
        self._init_state()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._init_state)

    def _init_state(self) -> None:
        # Also runs in a forked child: the parent's thread and queue do not exist there.
        self._queue: deque[Any] = deque()
        self._cond = threading.Condition()  # what flush() waits on: the worker's progress
        #: The sleeping worker's signal: set by the put() that finds it idle, by flush() and shutdown().
        self._wakeup = threading.Event()
        self._idle = False
        self._urgent = 0  # flush() calls waiting: the worker skips its wait for the rest of a burst
        self._taken = 0  # items the worker has popped (only the worker writes it, under the lock)
        self._processed = 0
        self._closed = False
        self._warned_full = False
        self._worker = threading.Thread(target=self._run, name="convotel-pipeline", daemon=True)
        self._worker.start()

    # -- app thread ---------------------------------------------------------------------------
    def put(self, item: Any) -> None:
        """Hand over an ended SDK span or a :class:`SpanRecord`. Never blocks, never raises."""
        if self._closed:
            self.dropped += 1
            return
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            if not self._warned_full:
                self._warned_full = True
                logger.warning("convotel: span queue full (%d); dropping spans and counting them", self._max_queue)
            return
        self._queue.append(item)
        if self._idle:
            self._idle = False
            self._wakeup.set()

    # -- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            if not self._queue and not self._closed:
                self._sleep()
            closing = self._closed
            self._drain()
            if closing and not self._queue:
                return

    def _sleep(self) -> None:
        """Wait for a span (or flush/shutdown), then ``interval_s`` more for the rest of its burst."""
        self._idle = True
        # A put() that appended before _idle was set did not signal: look again before waiting.
        if not self._queue and not self._closed:
            self._wakeup.wait()
        self._idle = False
        self._wakeup.clear()
        if not self._urgent and not self._closed:
            self._wakeup.wait(self._interval_s)  # flush() and shutdown() cut it short
            self._wakeup.clear()

    def _drain(self) -> None:
        items: list[Any] = []
        with self._cond:
            while self._queue:
                items.append(self._queue.popleft())
            self._taken += len(items)
        if not items:
            return
        try:
            self._process(items)
        finally:
            with self._cond:
                self._processed += len(items)
                self._cond.notify_all()

    def _process(self, items: list[Any]) -> None:
        mapped: list[ConversationBatch] = []
        for item in items:
            try:
                record = item if isinstance(item, SpanRecord) else from_readable_span(item)
                result = map_record(record, self._options)
            except Exception:  # a span we cannot read must not stop the others
                self.mapping_errors += 1
                if self.mapping_errors == 1:
                    logger.exception("convotel: could not map a span; skipping it (further errors counted silently)")
                continue
            if result is not None and result.messages:
                mapped.append(result)
        if not mapped:
            return
        batches = merge(mapped)
        if self._transform is not None:
            batches = self._transform(batches)
        for consumer in self._consumers:
            try:
                consumer.submit(batches)
            except Exception:
                logger.exception("convotel: a sink refused a batch")

    # -- control ------------------------------------------------------------------------------
    def _wait_handed_over(self, deadline: float) -> bool:
        """Wait until everything put before this call has been mapped and submitted."""
        with self._cond:
            target = self._taken + len(self._queue)
            if self._processed >= target:
                return True
            self._urgent += 1
            self._wakeup.set()
            try:
                while self._processed < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._worker.is_alive():
                        return self._processed >= target
                    self._cond.wait(min(remaining, 0.5))  # re-checks that the worker is alive
            finally:
                self._urgent -= 1
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Map everything handed over so far and deliver it; ``False`` if the deadline passed."""
        deadline = time.monotonic() + timeout_s
        ok = self._wait_handed_over(deadline)
        for consumer in self._consumers:
            ok = consumer.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        if self._closed:
            return True
        deadline = time.monotonic() + timeout_s
        ok = self._wait_handed_over(deadline)
        with self._cond:
            self._closed = True
        self._wakeup.set()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        for consumer in self._consumers:
            ok = consumer.shutdown(max(0.0, deadline - time.monotonic())) and ok
        return ok
