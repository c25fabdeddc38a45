"""Delivery against the fault server over real sockets: what arrives, in what order, counted how."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer
from hypothesis import given, settings
from hypothesis import strategies as st

from convotel.delivery import Delivery
from convotel.delivery.plan import SINK_HEADROOM_BYTES, causal_order, split
from convotel.delivery.stats import DeliveryStats
from convotel.delivery.wire import dumps
from convotel.messages import Conversation, ConversationBatch, Message
from convotel.sinks.base import SendResult, SinkError
from convotel.sinks.greenflash import GreenflashSink

KEY = "gf_test_key_delivery_0123456789"
FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}
SRC = str(Path(__file__).resolve().parents[1] / "src")


def msg(mid: str, t: int, parent: str | None = None, *, kind: str = "user_message", content: str | None = None,
        **extra: Any) -> Message:
    text = content if content is not None else f"text {mid}"
    return Message(mid, kind, 1_700_000_000_000_000_000 + t * 1000, content=text, parent_external_message_id=parent,
                   **extra)


def batch(conversation: str, *messages: Message, **fields: Any) -> ConversationBatch:
    return ConversationBatch(Conversation(conversation), list(messages), **fields)


def balanced(stats: DeliveryStats) -> bool:
    return stats.submitted == (stats.delivered + stats.deduplicated + stats.skipped + stats.dropped_total
                               + stats.pending)


def parents_first(requests: list[list[dict[str, Any]]]) -> bool:
    """Every parent that is delivered at all arrives before its child."""
    order: dict[str, int] = {}
    for request in requests:
        for m in request:
            order.setdefault(m["externalMessageId"], len(order))
    return all(order[m["parentExternalMessageId"]] < order[m["externalMessageId"]]
               for request in requests for m in request if m.get("parentExternalMessageId") in order)


@pytest.fixture
def make(srv: FaultServer) -> Iterator[Callable[..., Delivery]]:
    """Build a Delivery on a GreenflashSink pointed at the fault server; shut down at teardown."""
    made: list[Delivery] = []

    def build(sink: Any = None, *, sink_options: dict[str, Any] | None = None, **options: Any) -> Delivery:
        if sink is None:
            sink = GreenflashSink(KEY, base_url=srv.base_url, product_id="prod-1", **(sink_options or {}))
        delivery = Delivery(sink, **{**FAST, **options})
        made.append(delivery)
        return delivery

    yield build
    for delivery in made:
        delivery.shutdown(2)


# -- grouping and order -----------------------------------------------------------------------

def test_batches_of_one_conversation_are_merged_into_one_request(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=30)  # nothing leaves before flush(): merging is deterministic
    d.submit([batch("c1", msg("a", 1), msg("b", 2), model="m-1", properties={"v": 1})])
    d.submit([batch("c1", msg("b", 2, content="second copy"), msg("c", 3), model="m-2"),
              batch("c2", msg("x", 1))])
    d.submit([batch("c1", msg("d", 4), system_prompt="be brief")])
    assert d.flush(5)

    [request] = srv.accepted("c1")
    assert request.ids == ["a", "b", "c", "d"]
    assert request.messages[1]["content"] == "text b"  # first copy of an id wins
    assert request.body is not None
    envelope = (request.body["model"], request.body["systemPrompt"], request.body["properties"])
    assert envelope == ("m-2", "be brief", {"v": 1})  # later non-None wins
    assert request.body["productId"] == "prod-1"
    assert srv.delivered_ids("c2") == ["x"]
    stats = d.stats
    assert (stats.submitted, stats.delivered, stats.skipped, stats.requests) == (6, 5, 1, 2)
    assert balanced(stats)


def test_linger_sends_without_a_flush(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0.05)
    d.submit([batch("c1", msg("a", 1))])
    assert srv.wait_for(lambda got: len(got) == 1)
    assert srv.delivered_ids() == ["a"]


def test_linger_counts_from_submit_even_when_the_worker_takes_the_batch_later(
        make: Callable[..., Delivery]) -> None:
    import time

    sent_at: dict[str, float] = {}

    class Clocked:
        name, max_request_bytes, max_messages_per_request = "clocked", 10**6, 100

        def send(self, b: ConversationBatch) -> SendResult:
            sent_at[b.conversation.key] = time.monotonic()
            return SendResult({m.external_message_id: "created" for m in b.messages})

        def close(self) -> None: ...

    linger = 0.3
    d = make(Clocked(), linger_s=linger)
    submitted = {"c1": time.monotonic()}
    d.submit([batch("c1", msg("a", 1))])
    time.sleep(0.1)
    # The worker sleeps until c1 is due and takes this batch only then (no wake-up of its own).
    submitted["c2"] = time.monotonic()
    d.submit([batch("c2", msg("b", 1))])
    deadline = time.monotonic() + 10
    while len(sent_at) < 2 and time.monotonic() < deadline:  # no flush: the timers alone send them
        time.sleep(0.01)
    assert set(sent_at) == {"c1", "c2"}
    for key, at in sent_at.items():  # never before its own linger (later is allowed: a loaded machine)
        assert at - submitted[key] >= linger
    assert d.flush(5) and balanced(d.stats)


def test_messages_sorted_by_time_with_parents_before_children(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=30)
    # "obs" claims an earlier createdAt than its parent "call"; "late" arrives first.
    d.submit([batch("c1", msg("late", 9), msg("obs", 3, "call", kind="observation"))])
    d.submit([batch("c1", msg("call", 5, "think", kind="tool_call", tool_name="search"),
                    msg("user", 1), msg("think", 4, "user", kind="thought"))])
    assert d.flush(5)
    assert srv.delivered_ids() == ["user", "think", "call", "obs", "late"]
    assert parents_first([r.messages for r in srv.accepted()])


def test_already_sent_messages_are_not_sent_again(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0)
    history = [msg("u1", 1), msg("a1", 2, "u1", kind="assistant_message")]
    d.submit([batch("c1", *history)])
    assert d.flush(5)
    history += [msg("u2", 3, "a1"), msg("a2", 4, "u2", kind="assistant_message")]
    d.submit([batch("c1", *history)])  # clients resend the whole history every turn
    assert d.flush(5)
    assert [r.ids for r in srv.accepted()] == [["u1", "a1"], ["u2", "a2"]]
    assert (d.stats.skipped, d.stats.delivered) == (2, 4)


def test_conversations_are_independent_and_requests_of_one_are_serialized(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.fail(503, times=3, conversation="slow")
    d = make(linger_s=0)
    d.submit([batch("slow", msg("s1", 1))])
    d.submit([batch("fast", msg("f1", 1))])
    assert srv.wait_for(lambda got: "f1" in [i for r in got for i in r.ids])
    d.submit([batch("slow", msg("s2", 2, "s1"))])  # never overtakes s1, retrying or not
    assert d.flush(5)
    slow = [r.ids for r in srv.snapshot() if r.conversation == "slow"]
    assert slow == [["s1"], ["s1"], ["s1"], ["s1"], ["s2"]]
    assert d.stats.retried == 3


# -- parent hold --------------------------------------------------------------------------------

def test_orphan_waits_for_its_parent_from_a_later_submit(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0, parent_hold_s=30)
    d.submit([batch("c1", msg("child", 2, "parent", kind="observation"))])
    d.submit([batch("other", msg("x", 1))])
    # The worker handles conversations in timer order: once "other" arrived, "child" was planned.
    assert srv.wait_for(lambda got: any(r.conversation == "other" for r in got))
    assert srv.delivered_ids("c1") == []
    d.submit([batch("c1", msg("parent", 1, kind="tool_call", tool_name="t"))])
    assert srv.wait_for(lambda got: any(r.conversation == "c1" for r in got))
    assert [r.ids for r in srv.accepted("c1")] == [["parent", "child"]]


def test_orphan_is_sent_once_the_hold_expires(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0, parent_hold_s=0.05)
    d.submit([batch("c1", msg("child", 2, "never-seen"))])
    assert srv.wait_for(lambda got: len(got) == 1)
    assert srv.delivered_ids() == ["child"]


def test_flush_releases_held_messages_in_causal_order(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0, parent_hold_s=30)
    d.submit([batch("c1", msg("grandchild", 3, "child"), msg("child", 2, "missing"))])
    assert d.flush(5)
    assert srv.delivered_ids() == ["child", "grandchild"]


def test_held_child_goes_after_its_parent_delivered_in_an_earlier_request(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0, parent_hold_s=30)
    d.submit([batch("c1", msg("p", 1))])
    assert d.flush(5)
    d.submit([batch("c1", msg("c", 2, "p"))])  # parent already delivered: no hold
    assert srv.wait_for(lambda got: len(got) == 2)
    assert [r.ids for r in srv.accepted()] == [["p"], ["c"]]


# -- size limits ------------------------------------------------------------------------------

def test_split_by_message_count(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=30, sink_options={"max_messages_per_request": 3})
    ids = [f"m{i:02d}" for i in range(10)]
    d.submit([batch("c1", *(msg(i, n) for n, i in enumerate(ids)))])
    assert d.flush(5)
    assert [len(r.ids) for r in srv.accepted()] == [3, 3, 3, 1]
    assert srv.delivered_ids() == ids
    assert d.stats.requests == 4


def test_split_by_bytes_and_drop_a_message_that_can_never_fit(
        srv: FaultServer, make: Callable[..., Delivery], caplog: pytest.LogCaptureFixture) -> None:
    limit = 3000
    d = make(linger_s=30, sink_options={"max_request_bytes": limit})
    messages = [msg(f"m{i:02d}", i, content="x" * 400) for i in range(20)]
    messages.insert(7, msg("huge", 7, content="y" * limit))
    d.submit([batch("c1", *messages)])
    assert d.flush(5)
    requests = srv.accepted()
    assert len(requests) > 1
    assert all(len(r.raw) <= limit for r in requests)
    assert srv.delivered_ids() == [m.external_message_id for m in messages if m.external_message_id != "huge"]
    assert d.stats.dropped == {"too_large": 1}
    assert "huge" in caplog.text and "cannot be delivered" in caplog.text


def test_413_halves_the_request_until_it_fits(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.max_body_bytes = 2500  # the API is stricter than the sink believes
    d = make(linger_s=30)
    messages = [msg(f"m{i:02d}", i, content="x" * 400) for i in range(16)]
    d.submit([batch("c1", *messages)])
    assert d.flush(5)
    assert any(r.answered == 413 for r in srv.snapshot())
    assert srv.delivered_ids() == [m.external_message_id for m in messages]
    assert d.stats.delivered == 16 and d.stats.dropped_total == 0


# -- faults and retries -------------------------------------------------------------------

def test_429_retry_after_holds_that_conversation_while_others_flow(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.fail(429, retry_after="1", conversation="limited", body={"error": "slow down"})
    d = make(linger_s=0)
    d.submit([batch("limited", msg("l1", 1)), batch("free", msg("f1", 1))])
    assert d.flush(10)
    assert [(r.conversation, r.answered) for r in srv.snapshot()] == [("limited", 429), ("free", 200), ("limited", 200)]
    assert d.stats.retried == 1


def test_conversations_due_together_each_arrive_once_in_their_own_request(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0.05)
    d.submit([batch(f"c{i}", msg(f"m{i}", 1), msg(f"r{i}", 2, f"m{i}")) for i in range(150)])
    assert d.flush(10)
    assert sorted(srv.delivered_ids()) == sorted([f"m{i}" for i in range(150)] + [f"r{i}" for i in range(150)])
    assert sorted(r.conversation for r in srv.snapshot()) == sorted(f"c{i}" for i in range(150))
    assert (d.stats.requests, d.stats.delivered, d.stats.retried) == (150, 300, 0)


def test_faults_inside_a_group_sent_together_touch_only_their_conversations(
        srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.fail(503, conversation="c3")
    srv.close(conversation="c7")  # drops the connection mid-answer: later answers of the group are lost too
    srv.garbage(body=b"<html>", conversation="c11")
    srv.fail(400, conversation="c15", body={"error": "bad"})
    d = make(linger_s=0.05)
    d.submit([batch(f"c{i}", msg(f"m{i}", 1)) for i in range(20)])
    assert d.flush(10)
    assert set(srv.delivered_ids()) == {f"m{i}" for i in range(20)} - {"m15"}
    assert d.stats.delivered + d.stats.deduplicated == 19  # a resent request is deduplicated, never doubled
    assert d.stats.dropped == {"rejected": 1}
    assert balanced(d.stats)


def test_5xx_then_success(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.fail(502, times=1)
    srv.fail(503, times=1, body=b"upstream down")
    d = make(linger_s=0)
    d.submit([batch("c1", msg("a", 1), msg("b", 2))])
    assert d.flush(5)
    assert [r.answered for r in srv.snapshot()] == [502, 503, 200]
    assert (d.stats.retried, d.stats.delivered) == (2, 2)


def test_timeout_then_success(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.hang(1.5)
    d = make(linger_s=0, sink_options={"timeout_s": 0.3})
    d.submit([batch("c1", msg("a", 1))])
    assert d.flush(5)
    assert d.stats.retried >= 1
    assert d.stats.delivered + d.stats.deduplicated == 1
    assert srv.wait_for(lambda got: len(got) >= 2)
    assert set(srv.delivered_ids()) == {"a"}


def test_connection_dropped_mid_response_then_success(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.close()
    d = make(linger_s=0)
    d.submit([batch("c1", msg("a", 1))])
    assert d.flush(5)
    assert [r.answered for r in srv.snapshot()] == [0, 200]
    assert d.stats.retried == 1


def test_unreadable_2xx_counts_as_delivered_and_warns_once(
        srv: FaultServer, make: Callable[..., Delivery], caplog: pytest.LogCaptureFixture) -> None:
    srv.garbage(times=2)
    d = make(linger_s=0)
    d.submit([batch("c1", msg("a", 1)), batch("c2", msg("b", 1))])
    assert d.flush(5)
    assert d.stats.delivered == 2 and d.stats.retried == 0
    assert caplog.text.count("not the documented JSON") == 1


def test_permanent_400_is_dropped_counted_and_logged_once(
        srv: FaultServer, make: Callable[..., Delivery], caplog: pytest.LogCaptureFixture) -> None:
    srv.fail(400, times=None, conversation="bad", body={"error": "messages[0].toolName is required"})
    d = make(linger_s=0)
    d.submit([batch("bad", msg("b1", 1), msg("b2", 2)), batch("good", msg("g1", 1))])
    assert d.flush(5)
    d.submit([batch("bad", msg("b3", 3))])
    assert d.flush(5)
    stats = d.stats
    assert stats.dropped == {"rejected": 3}
    assert srv.delivered_ids() == ["g1"]
    assert stats.retried == 0
    lines = [r.getMessage() for r in caplog.records if "rejected a request" in r.getMessage()]
    assert len(lines) == 1
    assert "400" in lines[0] and "messages[0].toolName is required" in lines[0]
    assert balanced(stats)


def test_retries_give_up_after_max_retries(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    srv.fail(503, times=None)
    d = make(linger_s=0, max_retries=2)
    d.submit([batch("c1", msg("a", 1), msg("b", 2))])
    assert d.flush(5)
    assert len(srv.snapshot()) == 3
    assert d.stats.dropped == {"retries_exhausted": 2}


# -- bounds and robustness ----------------------------------------------------------------

def test_bounded_memory_drops_and_counts(make: Callable[..., Delivery], srv: FaultServer,
                                         caplog: pytest.LogCaptureFixture) -> None:
    d = make(linger_s=30, max_pending_messages=5)
    for i in range(8):
        d.submit([batch("c1", msg(f"m{i}", i))])
    stats = d.stats
    assert (stats.submitted, stats.pending, stats.dropped) == (8, 5, {"queue_full": 3})
    assert caplog.text.count("max_pending_messages") == 1
    assert d.flush(5)
    assert srv.delivered_ids() == [f"m{i}" for i in range(5)]
    assert balanced(d.stats)


class _BrokenSink:
    name = "broken"
    max_request_bytes = 1_000_000
    max_messages_per_request = 100

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def send(self, batch: ConversationBatch) -> Any:
        self.calls += 1
        if self.behaviour == "raise":
            raise RuntimeError("sink bug")
        return None  # "garbage": not a SendResult

    def close(self) -> None:
        raise RuntimeError("close bug")


@pytest.mark.parametrize("sink", [_BrokenSink("raise"), _BrokenSink("garbage"), object()],
                         ids=["raises", "returns-garbage", "not-a-sink"])
def test_submit_never_raises_even_with_a_broken_sink(sink: Any, make: Callable[..., Delivery]) -> None:
    d = make(sink, linger_s=0)
    d.submit([batch("c1", msg("a", 1))])
    assert d.flush(5)
    assert d.stats.dropped == {"sink_error": 1}
    assert d.shutdown(2)  # close() raising is swallowed too


def test_submit_never_raises_on_bad_input(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0)

    def exploding() -> Iterator[ConversationBatch]:
        yield batch("c1", msg("a", 1))
        raise ValueError("generator broke")

    not_a_list = ConversationBatch(Conversation("c"), None)  # type: ignore[arg-type]
    not_messages = ConversationBatch(Conversation("c"), ["not a message"])  # type: ignore[list-item]
    bad: list[Any] = [None, 42, [None, batch("c2", msg("b", 1))], [object()], [not_a_list], [not_messages],
                      exploding()]
    for item in bad:
        d.submit(item)
    assert d.flush(5)
    assert sorted(srv.delivered_ids()) == ["a", "b"]  # the valid ones still go
    assert d.stats.dropped == {"invalid": 7}


def test_shutdown_is_idempotent_and_later_submits_are_counted(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=30)
    d.submit([batch("c1", msg("a", 1))])
    assert d.shutdown(5)  # flushes first
    assert d.shutdown(5)
    d.submit([batch("c1", msg("b", 2))])
    assert srv.delivered_ids() == ["a"]
    assert d.stats.dropped == {"shutdown": 1}
    assert d.flush(1)  # nothing outstanding


def test_concurrent_submitters_lose_nothing(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=0.01)

    def submitter(t: int) -> None:
        for i in range(50):
            d.submit([batch(f"c{t}", msg(f"t{t}-{i}", i, f"t{t}-{i - 1}" if i else None))])

    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d.flush(10)
    for t in range(4):
        assert srv.delivered_ids(f"c{t}") == [f"t{t}-{i}" for i in range(50)]
    assert balanced(d.stats) and d.stats.delivered == 200


# -- fork -----------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_gets_a_fresh_worker_and_empty_state(srv: FaultServer, make: Callable[..., Delivery]) -> None:
    d = make(linger_s=30)
    d.submit([batch("parent", msg("p1", 1))])  # pending in the parent at fork time
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_fd)
            d.submit([batch("child", msg("k1", 1), msg("k2", 2, "k1"))])
            ok = d.flush(5)
            s = d.stats
            os.write(write_fd, json.dumps([ok, s.submitted, s.delivered, s.pending]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        child_report = json.loads(pipe.read() or "null")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_report == [True, 2, 2, 0]  # the parent's pending batch is not the child's
    assert srv.delivered_ids() == ["k1", "k2"]
    assert d.stats.submitted == 1 and d.stats.pending == 1  # parent untouched
    assert d.flush(5)
    assert srv.delivered_ids() == ["k1", "k2", "p1"]


# -- spool ----------------------------------------------------------------------------------

def _spool_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM convotel_spool").fetchone()[0])


def test_spool_overflow_keeps_batches_on_disk_instead_of_dropping(
        srv: FaultServer, make: Callable[..., Delivery], tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    d = make(linger_s=30, max_pending_messages=3, spool_path=str(spool))
    for i in range(10):
        d.submit([batch(f"c{i % 2}", msg(f"m{i}", i))])
    assert d.stats.dropped_total == 0 and d.stats.pending == 10
    assert d.flush(5)
    assert sorted(srv.delivered_ids()) == sorted(f"m{i}" for i in range(10))
    assert srv.delivered_ids("c0") == [f"m{i}" for i in range(0, 10, 2)]
    assert _spool_rows(spool) == 0
    assert balanced(d.stats)


def test_spool_is_emptied_by_delivery_and_rejection_but_kept_when_retries_run_out(
        srv: FaultServer, make: Callable[..., Delivery], tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    srv.fail(400, times=None, conversation="rejected")
    srv.fail(503, times=None, conversation="down")
    d = make(linger_s=0, max_retries=1, spool_path=str(spool))
    d.submit([batch("ok", msg("a", 1)), batch("rejected", msg("b", 1)), batch("down", msg("c", 1))])
    assert d.flush(5)
    assert d.stats.dropped == {"rejected": 1, "retries_exhausted": 1}
    assert _spool_rows(spool) == 1  # only the batch without a verdict, for the next start
    assert d.shutdown(2)

    srv.reset()  # the outage is over
    again = make(linger_s=0, spool_path=str(spool))
    assert again.flush(5)
    assert srv.delivered_ids() == ["c"]
    assert _spool_rows(spool) == 0


def test_unusable_spool_path_falls_back_to_memory(srv: FaultServer, make: Callable[..., Delivery], tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    d = make(linger_s=0, spool_path=str(blocker / "spool.db"))
    d.submit([batch("c1", msg("a", 1))])
    assert d.flush(5)
    assert srv.delivered_ids() == ["a"]
    assert "cannot open the spool" in caplog.text and "writable" in caplog.text


_CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {src!r})
    from convotel.delivery import Delivery
    from convotel.messages import Conversation, ConversationBatch, Message
    from convotel.sinks.greenflash import GreenflashSink

    role, base_url, spool = sys.argv[1:4]
    d = Delivery(GreenflashSink({key!r}, base_url=base_url, timeout_s=2), linger_s=0,
                 backoff_base_s=0.01, backoff_cap_s=0.05, max_retries=1_000_000, spool_path=spool)
    if role == "crash":
        for c in range(3):
            msgs, parent = [], None
            for i in range(20):
                mid = f"c{{c}}-m{{i:02d}}"
                msgs.append(Message(mid, "user_message", 10**18 + i, content="hi", parent_external_message_id=parent))
                parent = mid
            for i in range(0, 20, 5):
                d.submit([ConversationBatch(Conversation(f"conv{{c}}"), msgs[i:i + 5])])
        print("handed-over", flush=True)
        time.sleep(60)  # retrying against the outage until killed
    else:
        ok = d.flush(10)
        s = d.stats
        print(json.dumps({{"ok": ok, "submitted": s.submitted, "delivered": s.delivered, "pending": s.pending}}))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_spool_survives_sigkill_mid_outage(srv: FaultServer, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(src=SRC, key=KEY))
    spool = tmp_path / "spool.db"
    srv.fail(503, times=None)  # outage
    crash = subprocess.Popen([sys.executable, str(script), "crash", srv.base_url, str(spool)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert crash.stdout is not None and crash.stdout.readline().strip() == "handed-over"
        assert srv.wait_for(lambda got: len(got) >= 3)  # it is retrying right now
        crash.send_signal(signal.SIGKILL)
        assert crash.wait(10) == -signal.SIGKILL
    finally:
        if crash.poll() is None:
            crash.kill()
    assert srv.delivered_ids() == []

    srv.reset()  # the API is back; a new process starts on the same spool
    done = subprocess.run([sys.executable, str(script), "recover", srv.base_url, str(spool)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"ok": True, "submitted": 60, "delivered": 60, "pending": 0}
    for c in range(3):
        assert srv.delivered_ids(f"conv{c}") == [f"c{c}-m{i:02d}" for i in range(20)]
    assert _spool_rows(spool) == 0


# -- pure planning --------------------------------------------------------------------------

@st.composite
def _forests(draw: st.DrawFn) -> list[Message]:
    """Acyclic threads: a parent is an earlier message or an id never seen; times are random."""
    n = draw(st.integers(0, 30))
    messages = []
    for i in range(n):
        parent = draw(st.one_of(st.none(), st.integers(0, max(0, i - 1)), st.just(-1)))
        pid = None if parent is None or (parent >= i) else ("missing" if parent < 0 else f"m{parent}")
        messages.append(msg(f"m{i}", draw(st.integers(0, 50)), pid))
    return draw(st.permutations(messages))


@given(_forests())
@settings(max_examples=100, deadline=None)
def test_causal_order_puts_parents_first_and_keeps_everything(messages: list[Message]) -> None:
    ordered = causal_order(messages)
    assert sorted(m.external_message_id for m in ordered) == sorted(m.external_message_id for m in messages)
    position = {m.external_message_id: i for i, m in enumerate(ordered)}
    assert all(position[m.parent_external_message_id] < position[m.external_message_id]
               for m in messages if m.parent_external_message_id in position)


def test_causal_order_survives_a_parent_cycle() -> None:
    ordered = causal_order([msg("a", 1, "b"), msg("b", 2, "a")])
    assert sorted(m.external_message_id for m in ordered) == ["a", "b"]


@given(st.lists(st.integers(0, 600), max_size=40), st.integers(1, 7))
@settings(max_examples=100, deadline=None)
def test_split_respects_both_limits_and_order(sizes: list[int], max_count: int) -> None:
    limit = 2000
    messages = [msg(f"m{i}", i, content="z" * size) for i, size in enumerate(sizes)]
    plan = split(batch("conv", model="m"), messages, max_bytes=limit, max_count=max_count)
    too_large = {m.external_message_id for m, _ in plan.too_large}
    kept = [m.external_message_id for chunk in plan.requests for m in chunk]
    assert kept == [m.external_message_id for m in messages if m.external_message_id not in too_large]
    for chunk in plan.requests:
        assert 0 < len(chunk) <= max_count
        assert len(dumps(batch("conv", *chunk, model="m").to_wire())) <= limit - SINK_HEADROOM_BYTES
    for m, size in plan.too_large:
        assert len(dumps(batch("conv", m, model="m").to_wire())) == size > limit - SINK_HEADROOM_BYTES
    for chunk, after in zip(plan.requests, plan.requests[1:], strict=False):  # greedy: a chunk ends only when full
        assert (len(chunk) == max_count
                or len(dumps(batch("conv", *chunk, after[0], model="m").to_wire())) > limit - SINK_HEADROOM_BYTES)


def test_sink_result_statuses_are_counted(make: Callable[..., Delivery]) -> None:
    class Dedup:
        name, max_request_bytes, max_messages_per_request = "dedup", 10**6, 100

        def send(self, b: ConversationBatch) -> SendResult:
            return SendResult({m.external_message_id: "deduplicated" for m in b.messages})

        def close(self) -> None: ...

    d = make(Dedup(), linger_s=0)
    d.submit([batch("c1", msg("a", 1), msg("b", 2))])
    assert d.flush(5)
    assert (d.stats.deduplicated, d.stats.delivered) == (2, 0)


def test_413_down_to_single_messages_drops_them(make: Callable[..., Delivery]) -> None:
    class Refuses:
        name, max_request_bytes, max_messages_per_request = "refuses", 10**6, 100
        sizes: list[int] = []

        def send(self, b: ConversationBatch) -> SendResult:
            self.sizes.append(len(b.messages))
            raise SinkError("413", transient=False, status=413, too_large=True)

        def close(self) -> None: ...

    sink = Refuses()
    d = make(sink, linger_s=0)
    d.submit([batch("c1", *(msg(f"m{i}", i) for i in range(4)))])
    assert d.flush(5)
    assert sink.sizes == [4, 2, 1, 1, 2, 1, 1]
    assert d.stats.dropped == {"too_large": 4}
