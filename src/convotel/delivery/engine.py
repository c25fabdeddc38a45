"""Delivery: one worker thread per sink that groups, orders, splits, retries and spools.

Threads: ``submit()``/``flush()``/``shutdown()`` run on callers' threads and only touch the
state guarded by ``_lock``; everything under "worker-only" in :meth:`Delivery._reset` is
touched by the worker thread alone, so sends never hold the lock.

Accounting: every accepted batch gets a sequence number in acceptance order (the intake
and the spool backlog are both consumed in that order), and a batch is *resolved* once
each of its messages is delivered, skipped or dropped. ``flush()`` waits until every batch
accepted before the call is resolved.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from convotel.delivery.plan import causal_order, hold_orphans, split
from convotel.delivery.spool import Spool, decode, encode
from convotel.delivery.state import BatchEntry, ConvState, PlannedRequest
from convotel.delivery.stats import Counters, DeliveryStats
from convotel.messages import Conversation, ConversationBatch, Message
from convotel.sinks.base import Sink, SinkError

logger = logging.getLogger("convotel.delivery")

#: Longest ``Retry-After`` we honour; a longer ask is capped (the batch is retried then).
MAX_RETRY_AFTER_S = 120.0
_SPOOL_LOAD_ROWS = 256
_ERROR_PAUSE_S = 1.0  # after an unexpected worker error, so a persistent one cannot spin
_SEND_GROUP = 64  # conversations sent together (pipelined); progress is published after each group


def _valid(batch: object) -> bool:
    return (isinstance(batch, ConversationBatch) and isinstance(batch.conversation, Conversation)
            and isinstance(batch.messages, list) and all(isinstance(m, Message) for m in batch.messages))


class Delivery:
    """Hands conversation batches to one sink: never blocks the caller, never raises into it.

    - ``linger_s``: batches of a conversation arriving within this window go in one request.
    - ``parent_hold_s``: a message whose parent was neither sent nor is in the request waits
      this long for it (flush/shutdown release such messages at once).
    - ``max_pending_messages``: memory bound; past it submit() drops and counts, or, with a
      spool, keeps newer batches on disk only until there is room.
    - ``max_retries`` / ``backoff_base_s`` / ``backoff_cap_s``: transient errors are retried
      with full-jitter exponential backoff (or after ``Retry-After``, capped at 120 s).
    - ``sent_ids_capacity``: how many (conversation, message id) pairs are remembered as sent,
      so full-history resends only send what is new.
    - ``spool_path``: sqlite file that keeps handed-over batches until delivered; batches left
      there by a process that died are re-sent by the next Delivery opening the file.

    ``shutdown()`` also closes the sink.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        linger_s: float = 0.2,
        parent_hold_s: float = 5.0,
        max_pending_messages: int = 100_000,
        max_retries: int = 10,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        sent_ids_capacity: int = 100_000,
        spool_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._sink = sink
        self._name = str(getattr(sink, "name", type(sink).__name__))
        self._max_bytes = int(getattr(sink, "max_request_bytes", 4_000_000))
        self._max_count = int(getattr(sink, "max_messages_per_request", 500))
        self._linger_s = linger_s
        self._quantum = min(linger_s / 4, 0.05) if linger_s > 0 else 0.0
        self._hold_s = parent_hold_s
        self._max_pending = max_pending_messages
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._sent_capacity = sent_ids_capacity
        self._spool_path = spool_path
        self._closed = False
        self._shutdown_ok = True
        self._said: set[str] = set()
        # Objects inherited across fork() that must never be touched again (closing a sqlite
        # connection or an httpx pool in the child may deadlock on a lock a parent thread held).
        self._inherited: list[Any] = []
        self._reset()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork_in_child)
            os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m())

    # -- state ----------------------------------------------------------------------------
    def _reset(self) -> None:
        # Guarded by _lock. The worker waits on ``_wakeup`` (see _wake), flush() callers on the
        # ``_progress`` condition, so neither wakes the other for nothing.
        self._lock = threading.RLock()
        self._progress = threading.Condition(self._lock)
        self._intake: list[tuple[ConversationBatch, int | None, float]] = []  # taken whole by the worker
        # When the waiting worker wakes up by itself (monotonic; inf: only when told); None while
        # it works. submit() wakes it only for a batch due before then (see _enqueue).
        self._asleep_until: float | None = None
        # Held, except from a _wake() until the worker wakes up: a lock as a one-shot signal, as its
        # timed acquire is all a wait costs (a Condition's wait is Python code and a new lock each).
        self._wakeup = threading.Lock()
        self._wakeup.acquire()
        self._pending = 0  # messages accepted into memory and not yet resolved (the bound)
        self._spooled_only = 0  # messages accepted onto disk only, not yet loaded
        self._accepted = 0  # batches accepted (sequence numbers handed out)
        self._done_through = 0  # every batch with a sequence number <= this is resolved
        self._force = 0  # flush() calls in progress: send now, hold nothing
        self._flush_targets: list[int] = []  # what each waiting flush() waits for (woken only then)
        self._force_gen = 0
        self._stop = False
        self._backlog = False  # newer batches wait on disk only (memory full, or recovery)
        self._spool_news = False  # spool-only batches the worker has not looked at
        self._last_rowid = 0  # newest spool row this Delivery owns
        self._counters = Counters()
        # Worker-only.
        self._convs: dict[str, ConvState] = {}
        self._timers: list[tuple[float, int, str, int]] = []  # (when, tiebreak, conversation, token)
        self._tiebreak = itertools.count()
        self._live: dict[tuple[str, str], list[int]] = {}  # unresolved message -> batches holding it
        self._batches: dict[int, BatchEntry] = {}  # unresolved batches by sequence (ascending)
        self._ingested = 0
        self._cursor = 0  # highest spool row ingested
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._released = 0  # resolved messages not yet subtracted from _pending
        self._published_ingested = 0  # _ingested when _publish() last told submit() and flush()
        self._unspool: list[int] = []
        self._spool = None if self._closed else self._open_spool()
        self._worker = threading.Thread(target=self._run, name=f"convotel-delivery-{self._name}", daemon=True)
        if not self._closed:
            self._worker.start()

    def _open_spool(self) -> Spool | None:
        if self._spool_path is None:
            return None
        try:
            spool = Spool(self._spool_path)
            count, messages, top = spool.backlog()
        except Exception:
            logger.exception("convotel: cannot open the spool %s; delivering without it (nothing survives a "
                             "crash). Check that the directory is writable.", self._spool_path)
            return None
        if count:
            logger.info("convotel: re-sending %d spooled batches (%d messages) from %s", count, messages,
                        self._spool_path)
        self._accepted = count
        self._counters.submitted = messages
        self._spooled_only = messages
        self._last_rowid = top
        self._backlog = self._spool_news = count > 0
        return spool

    def _after_fork_in_child(self) -> None:
        # The parent's worker thread does not exist here and its queue is the parent's job.
        self._inherited.append(self._spool)
        self._said = set()
        self._reset()

    # -- caller side ----------------------------------------------------------------------
    def submit(self, batches: Iterable[ConversationBatch]) -> None:
        """Hand batches over. Never blocks on the network, never raises."""
        try:
            for batch in batches:
                if _valid(batch):
                    self._accept(batch)
                else:
                    self._invalid(type(batch).__name__)
        except Exception:  # the iterable itself broke (or is not one)
            self._invalid(type(batches).__name__)

    def _invalid(self, what: str) -> None:
        with self._lock:
            self._counters.dropped["invalid"] += 1
        self._say_once("bad-input", logging.WARNING, "convotel: submit() got a %s, not a valid ConversationBatch "
                       "or iterable of them; dropped it (counted in stats.dropped['invalid'])", what)

    def _accept(self, batch: ConversationBatch) -> None:
        n = len(batch.messages)
        if not n:
            return
        body = None
        if self._spool is not None:
            try:
                body = encode(batch)
            except Exception:
                self._say_once("spool-encode", logging.WARNING,
                               "convotel: a batch cannot be encoded for the spool; keeping it in memory only",
                               exc_info=True)
        refused = self._enqueue(batch, n, body)
        if refused == "shutdown":
            self._say_once("after-shutdown", logging.WARNING,
                           "convotel: submit() after shutdown(); dropping (counted in stats.dropped['shutdown'])")
        elif refused:
            self._say_once("queue-full", logging.WARNING,
                           "convotel: %s delivery is %d messages behind (max_pending_messages); dropping new "
                           "ones and counting them in stats.dropped['queue_full']. Is the API reachable?",
                           self._name, self._max_pending)

    def _enqueue(self, batch: ConversationBatch, n: int, body: bytes | None) -> str | None:
        """Accept a batch (memory, or disk only while the spool has a backlog); else the reason."""
        now = time.monotonic()
        with self._lock:
            counters = self._counters
            counters.submitted += n
            if self._closed:
                counters.dropped["shutdown"] += n
                return "shutdown"
            full = self._pending + n > self._max_pending
            # Past the bound (or behind a backlog), the spool keeps it on disk only, in order;
            # the worker loads it when there is room.
            if body is not None and (full or self._backlog) and self._spool_put(n, body) is not None:
                self._backlog = self._spool_news = True
                self._spooled_only += n
                self._accepted += 1
                self._wake()
                return None
            if full or self._backlog:  # jumping ahead of a backlog would break sequence order
                counters.dropped["queue_full"] += n
                return "queue_full"
            rowid = self._spool_put(n, body) if body is not None else None
            self._intake.append((batch, rowid, now))
            self._pending += n
            self._accepted += 1
            # A sleeping worker that wakes up before this batch is due takes it then (its linger
            # counts from now, not from when it is taken): one wake-up instead of two.
            asleep_until = self._asleep_until
            if asleep_until is not None and asleep_until > self._due(now):
                self._wake()
            return None

    def _wake(self) -> None:
        """Wakes the worker if it waits (called with ``_lock`` held); it then looks at everything."""
        if self._asleep_until is not None:
            self._asleep_until = None  # at most one release per wait: the worker re-takes it
            self._wakeup.release()

    def _spool_put(self, n: int, body: bytes) -> int | None:
        assert self._spool is not None
        try:
            rowid = self._spool.put(n, body)
        except Exception:
            self._say_once("spool-write", logging.WARNING,
                           "convotel: cannot write to the spool %s; new batches are kept in memory only "
                           "(check free disk space and permissions)", self._spool_path, exc_info=True)
            return None
        self._last_rowid = rowid
        return rowid

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver (or give up on) everything submitted before this call; ``False`` on timeout."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._lock:
            target = self._accepted
            if self._done_through >= target:
                return True
            self._force += 1
            self._force_gen += 1
            self._flush_targets.append(target)
            self._wake()
            try:
                while self._done_through < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._worker.is_alive():
                        return False
                    self._progress.wait(min(remaining, 0.5))  # re-check that the worker is alive
                return True
            finally:
                self._force -= 1
                self._flush_targets.remove(target)

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Flush within the deadline, stop the worker, close the sink. Safe to call twice."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._lock:
            if self._closed:
                return self._shutdown_ok
            self._closed = True
        ok = self.flush(timeout_s)
        with self._lock:
            self._stop = True
            self._wake()
        if self._worker.is_alive():
            self._worker.join(max(0.0, deadline - time.monotonic()))
        left = self.stats.pending
        if left:
            where = "kept in the spool for the next start" if self._spool is not None else "lost"
            logger.warning("convotel: %s delivery shut down with %d messages undelivered (%s)", self._name, left, where)
        if not self._worker.is_alive():
            self._close_resources()
        self._shutdown_ok = ok
        return ok

    def _close_resources(self) -> None:
        try:
            self._sink.close()
        except Exception:
            logger.debug("convotel: closing the %s sink failed", self._name, exc_info=True)
        if self._spool is not None:
            try:
                self._spool.close()
            except Exception:
                logger.debug("convotel: closing the spool failed", exc_info=True)

    @property
    def stats(self) -> DeliveryStats:
        with self._lock:
            return self._counters.snapshot(self._pending - self._released + self._spooled_only)

    def _say_once(self, kind: str, level: int, msg: str, *args: Any, exc_info: Any = False) -> None:
        if kind not in self._said:
            self._said.add(kind)
            logger.log(level, msg, *args, exc_info=exc_info)

    # -- worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        next_at: float | None = None
        force_gen = 0
        while True:
            with self._lock:
                while not (self._stop or self._intake or self._spool_news or self._force_gen != force_gen):
                    now = time.monotonic()
                    if next_at is not None and next_at <= now:
                        break
                    self._wait(next_at, now)
                if self._stop:
                    return
                items, self._intake = self._intake, []
                self._spool_news = False
                backlog = self._backlog
                force = self._force > 0
                new_force = self._force_gen != force_gen
                force_gen = self._force_gen
            try:
                next_at = self._step(items, backlog=backlog, force=force, new_force=new_force)
            except Exception:
                self._say_once("worker", logging.ERROR, "convotel: unexpected error in the %s delivery worker; "
                               "it keeps going (please report this)", self._name, exc_info=True)
                next_at = time.monotonic() + _ERROR_PAUSE_S
            self._publish()

    def _wait(self, until: float | None, now: float) -> None:
        """Releases ``_lock`` (held once) until _wake() or ``until`` (monotonic; None: no limit) comes,
        then takes it again."""
        self._asleep_until = math.inf if until is None else until
        self._lock.release()
        try:
            woken = self._wakeup.acquire() if until is None else self._wakeup.acquire(True, until - now)
        finally:
            self._lock.acquire()
        if not woken and self._asleep_until is None:
            self._wakeup.acquire()  # woken just as the wait timed out: take the signal (it is there)
        self._asleep_until = None

    def _due(self, accepted_at: float) -> float:
        """When a batch accepted at ``accepted_at`` is due: after ``linger_s``, rounded up to a grid of
        a quarter of it, so that conversations started close together leave in one wake-up of the
        worker, back to back (cheaper than one wake-up each), and none leaves before its linger."""
        due = accepted_at + self._linger_s
        quantum = self._quantum
        return math.ceil(due / quantum) * quantum if quantum > 0 else due

    def _step(self, items: list[tuple[ConversationBatch, int | None, float]], *, backlog: bool, force: bool,
              new_force: bool) -> float | None:
        for batch, rowid, accepted_at in items:
            self._ingest(batch, rowid, accepted_at, force)
        if new_force and force:
            for conv in list(self._convs.values()):
                self._schedule(conv, force)
        self._run_due(force)
        if backlog:
            self._load_backlog(force)
        return self._timers[0][0] if self._timers else None

    def _ingest(self, batch: ConversationBatch, rowid: int | None, accepted_at: float, force: bool) -> None:
        self._ingested += 1
        seq = self._ingested
        if rowid is not None:
            self._cursor = max(self._cursor, rowid)
        key = batch.conversation.key
        conv = self._convs.get(key)
        if conv is None:
            conv = self._convs[key] = ConvState(batch.conversation)
        conv.absorb(batch)
        live, sent, pending = self._live, self._sent, conv.pending
        lingering = bool(pending)  # else its linger starts with this batch
        held = skipped = 0
        for m in batch.messages:
            mid = m.external_message_id
            mkey = (key, mid)
            holders = live.get(mkey)
            if holders is not None or mkey in sent:
                # Already sent, or already queued (a client resending its history): first copy wins.
                skipped += 1
                if holders is not None and holders[-1] != seq:
                    holders.append(seq)
                    held += 1
                continue
            live[mkey] = [seq]
            held += 1
            pending[mid] = m
        if not lingering and pending:
            conv.due = self._due(accepted_at)
        if skipped:
            self._counters.skipped += skipped
            self._released += skipped
        if held:
            self._batches[seq] = BatchEntry(rowid, held)
        elif rowid is not None:
            self._unspool.append(rowid)
        self._schedule(conv, force)

    def _load_backlog(self, force: bool) -> None:
        """Move spool-only batches into memory, oldest first, while they fit the bound."""
        assert self._spool is not None
        now = time.monotonic()
        while True:
            try:
                rows = self._spool.load(self._cursor, _SPOOL_LOAD_ROWS)
            except Exception:
                self._say_once("spool-read", logging.ERROR, "convotel: cannot read the spool %s; retrying",
                               self._spool_path, exc_info=True)
                return
            for rowid, n, body in rows:
                in_memory = self._pending - self._released
                if in_memory > 0 and in_memory + n > self._max_pending:
                    return
                try:
                    batch = decode(body)
                except Exception:
                    self._say_once("spool-corrupt", logging.ERROR, "convotel: a spooled batch cannot be read; "
                                   "dropping it (counted in stats.dropped['spool_corrupt'])", exc_info=True)
                    with self._lock:
                        self._spooled_only -= n
                        self._counters.dropped["spool_corrupt"] += n
                    self._ingested += 1  # its sequence number is used up, with nothing left to resolve
                    self._cursor = rowid
                    self._unspool.append(rowid)
                    continue
                with self._lock:
                    self._spooled_only -= n
                    self._pending += n
                self._ingest(batch, rowid, now, force)
            with self._lock:
                if self._cursor >= self._last_rowid:  # caught up: submit() may use memory again
                    self._backlog = False
                    return
                if not rows:  # our rows vanished (file replaced?): count them as handled, or flush() waits forever
                    self._say_once("spool-vanished", logging.ERROR, "convotel: spooled batches disappeared from %s",
                                   self._spool_path)
                    self._cursor = self._last_rowid
                    self._ingested = self._accepted
                    self._spooled_only = 0
                    self._backlog = False
                    return

    def _schedule(self, conv: ConvState, force: bool) -> None:
        at = conv.next_at(force=force, hold_s=self._hold_s)
        if at is not None and at == conv.scheduled_at:
            return  # its live timer already says so
        conv.token += 1
        conv.scheduled_at = at
        if at is not None:
            heapq.heappush(self._timers, (at, next(self._tiebreak), conv.key, conv.token))
        elif self._convs.get(conv.key) is conv:
            del self._convs[conv.key]

    def _run_due(self, force: bool) -> None:
        timers = self._timers
        now = time.monotonic()
        if not timers or timers[0][0] > now:
            return  # woken for new batches only
        due: list[ConvState] = []
        while timers and timers[0][0] <= now:
            _, _, key, token = heapq.heappop(timers)
            conv = self._convs.get(key)
            if conv is not None and conv.token == token:
                conv.scheduled_at = None
                due.append(conv)
        sending: list[ConvState] = []
        for conv in due:
            if self._advance(conv, now, force):
                sending.append(conv)
            else:
                self._schedule(conv, force)
        # Each conversation's next request, of all that are due, leaves together (pipelined).
        for start in range(0, len(sending), _SEND_GROUP):
            if self._stop:  # shutdown's deadline passed; leave the rest (spooled, if on)
                return
            group = sending[start:start + _SEND_GROUP]
            self._send_heads(group)
            for conv in group:
                self._schedule(conv, force)

    def _advance(self, conv: ConvState, now: float, force: bool) -> bool:
        """Plans what the conversation has to send; whether its next request should leave now."""
        if conv.outbox:
            return now >= conv.retry_at
        ready = (force or conv.recheck or (conv.pending and now >= conv.due)
                 or (conv.held and now >= conv.hold_expiry(self._hold_s)))
        if not ready:
            return False
        conv.recheck = False
        self._plan(conv, now, force)
        return bool(conv.outbox)

    def _plan(self, conv: ConvState, now: float, force: bool) -> None:
        pending = conv.pending
        if not conv.held and self._parents_known(conv):
            # Nothing held and every parent is in this request or sent (or there is none): nothing waits.
            conv.pending = {}
            send, wait, orphans = list(pending.values()), [], []
            since: dict[str, float] = {}
            by_id: dict[str, Message] | None = pending  # what is sent, by id
        else:
            since = {mid: first_seen for mid, (_, first_seen) in conv.held.items()}
            candidates = [m for m, _ in conv.held.values()] + list(pending.values())
            conv.pending, conv.held = {}, {}
            send, wait, orphans = hold_orphans(
                candidates, since, now=now, hold_s=self._hold_s, release_all=force,
                is_sent=lambda mid: (conv.key, mid) in self._sent,
            )
            by_id = None
        for m in wait:
            conv.held[m.external_message_id] = (m, since.get(m.external_message_id, now))
        for m in orphans:
            logger.debug("convotel: sending message %s of conversation %s without its parent %s (not seen)",
                         m.external_message_id, conv.key, m.parent_external_message_id)
        if not send:
            return
        plan = split(conv.request([]), causal_order(send, by_id), max_bytes=self._max_bytes, max_count=self._max_count)
        for m, size in plan.too_large:
            logger.error("convotel: message %s of conversation %s is %d bytes as a request, over the %s limit of "
                         "%d; it cannot be delivered and was dropped (shorten its content or properties)",
                         m.external_message_id, conv.key, size, self._name, self._max_bytes)
            self._drop(conv, [m], "too_large")
        for m, exc in plan.unencodable:
            logger.error("convotel: message %s of conversation %s cannot be encoded as JSON (%s); dropped",
                         m.external_message_id, conv.key, exc)
            self._drop(conv, [m], "unencodable")
        for i, chunk in enumerate(plan.requests):
            conv.outbox.append(conv.request(chunk, plan.encoded[i], plan.envelope_json))

    def _parents_known(self, conv: ConvState) -> bool:
        """Whether each pending message's parent, if it has one, is pending too or already sent."""
        pending, sent, key = conv.pending, self._sent, conv.key
        for m in pending.values():
            parent = m.parent_external_message_id
            if parent is not None and parent not in pending and (key, parent) not in sent:
                return False
        return True

    def _send_heads(self, convs: list[ConvState]) -> None:
        """Sends the first request of each conversation and settles each by its outcome."""
        requests = [conv.outbox[0] for conv in convs]
        send_many = getattr(self._sink, "send_many", None)
        outcomes: list[Any]
        if send_many is not None:
            try:
                outcomes = send_many(requests)
                if not isinstance(outcomes, list) or len(outcomes) != len(requests):
                    raise TypeError(f"send_many() returned {type(outcomes).__name__}, not one outcome per batch")
            except Exception as exc:
                outcomes = [exc] * len(requests)
        else:
            outcomes = []
            for request in requests:
                try:
                    outcomes.append(self._sink.send(request))
                except Exception as exc:
                    outcomes.append(exc)
        for i, conv in enumerate(convs):  # as many outcomes: checked above
            self._settle(conv, requests[i], outcomes[i])
        self._publish()

    def _settle(self, conv: ConvState, request: ConversationBatch, outcome: Any) -> None:
        if isinstance(outcome, SinkError):
            self._failed(conv, request, outcome)
            return
        statuses = getattr(outcome, "statuses", None)
        conv.outbox.popleft()
        conv.attempts = 0
        if type(statuses) is not dict and not isinstance(statuses, Mapping):  # the exact test first: cheaper
            self._drop(conv, request.messages, "sink_error")
            problem = outcome if isinstance(outcome, BaseException) else TypeError(
                f"the sink returned {type(outcome).__name__}, not a SendResult with a statuses mapping")
            self._say_once("sink-error", logging.ERROR, "convotel: the %s sink failed unexpectedly; dropped its "
                           "batch (counted in stats.dropped['sink_error'])", self._name,
                           exc_info=(type(problem), problem, problem.__traceback__))
            return
        ids = [m.external_message_id for m in request.messages]
        deduplicated = list(map(statuses.get, ids)).count("deduplicated")
        counters = self._counters
        counters.requests += 1
        counters.deduplicated += deduplicated
        counters.delivered += len(ids) - deduplicated
        key = conv.key
        keys = [(key, mid) for mid in ids]
        self._mark_sent(keys)
        self._resolve(keys)
        if conv.held:
            conv.recheck = True

    def _failed(self, conv: ConvState, request: ConversationBatch, err: SinkError) -> None:
        messages = request.messages
        for waiting in conv.outbox:  # the bytes are for a prompt send; a retry encodes again
            if isinstance(waiting, PlannedRequest):
                waiting.message_json = waiting.envelope_json = None
        if err.too_large:
            conv.outbox.popleft()
            if len(messages) > 1:
                half = len(messages) // 2
                conv.outbox.extendleft([conv.request(messages[half:]), conv.request(messages[:half])])
            else:
                logger.error("convotel: %s refused message %s of conversation %s as too large (%s); dropped",
                             self._name, messages[0].external_message_id, conv.key, err)
                self._drop(conv, messages, "too_large")
            return
        if err.transient:
            conv.attempts += 1
            if conv.attempts <= self._max_retries:
                self._counters.retried += 1
                conv.retry_at = time.monotonic() + self._retry_delay(conv.attempts, err.retry_after_s)
                logger.debug("convotel: %s send failed (%s); retry %d for conversation %s", self._name, err,
                             conv.attempts, conv.key)
                return
            conv.outbox.popleft()
            conv.attempts = 0
            # No verdict from the API: a spooled copy stays on disk for the next start.
            self._drop(conv, messages, "retries_exhausted", keep_row=True)
            self._say_once("retries-exhausted", logging.ERROR,
                           "convotel: %s still failing after %d retries (%s); dropped %d messages of conversation "
                           "%s (counted in stats.dropped['retries_exhausted'])", self._name, self._max_retries,
                           err, len(messages), conv.key)
            return
        conv.outbox.popleft()
        conv.attempts = 0
        self._drop(conv, messages, "rejected")
        self._say_once(f"rejected-{err.status}", logging.ERROR,
                       "convotel: %s rejected a request (status %s): %s. Dropped %d messages of conversation %s; "
                       "further rejections like this are only counted (stats.dropped['rejected'])",
                       self._name, err.status, err, len(messages), conv.key)

    def _retry_delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
        # Full jitter: spreads retries of many conversations instead of stampeding together.
        return random.uniform(0.0, min(self._backoff_cap_s, self._backoff_base_s * 2 ** (attempt - 1)))

    def _drop(self, conv: ConvState, messages: list[Message], reason: str, *, keep_row: bool = False) -> None:
        self._counters.dropped[reason] += len(messages)
        key = conv.key
        self._resolve([(key, m.external_message_id) for m in messages], keep_row=keep_row)

    def _mark_sent(self, keys: list[tuple[str, str]]) -> None:
        sent = self._sent
        for mkey in keys:
            sent[mkey] = None
            sent.move_to_end(mkey)
        while len(sent) > self._sent_capacity:  # the oldest go (as if evicted one per insert)
            sent.popitem(last=False)

    def _resolve(self, keys: list[tuple[str, str]], *, keep_row: bool = False) -> None:
        """Marks these (conversation, message id) as resolved in every batch holding them."""
        live, batches = self._live, self._batches
        released = 0
        for mkey in keys:
            holders = live.pop(mkey, None)
            if holders is None:
                continue
            released += 1
            for seq in holders:
                entry = batches[seq]
                entry.remaining -= 1
                if keep_row:
                    entry.keep_row = True
                if not entry.remaining:
                    del batches[seq]
                    if entry.rowid is not None and not entry.keep_row:
                        self._unspool.append(entry.rowid)
        self._released += released

    def _publish(self) -> None:
        """Forget delivered spool rows, then tell submit() and flush() about progress."""
        if self._unspool:
            rows, self._unspool = self._unspool, []
            if self._spool is not None:
                try:
                    self._spool.delete(rows)
                except Exception:
                    self._say_once("spool-delete", logging.WARNING, "convotel: cannot delete delivered batches "
                                   "from the spool; they will be re-sent (and deduplicated) after a restart",
                                   exc_info=True)
        # Only this thread writes what is published: nothing new, no lock.
        if not self._released and self._ingested == self._published_ingested:
            return  # nothing ingested or resolved since the last time
        self._published_ingested = self._ingested
        oldest = next(iter(self._batches), None)
        done_through = self._ingested if oldest is None else oldest - 1
        if not self._released and done_through == self._done_through:
            return
        with self._lock:
            self._pending -= self._released
            self._released = 0
            self._done_through = done_through
            # Only flush() waits for progress: wake it when what it waits for is done, not per request.
            if self._flush_targets and self._done_through >= min(self._flush_targets):
                self._progress.notify_all()
