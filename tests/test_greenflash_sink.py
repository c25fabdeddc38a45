"""GreenflashSink over real sockets: request shape, response parsing, error mapping, key hygiene."""

from __future__ import annotations

import io
import logging
import socket
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import orjson
import pytest
from faultserver import FaultServer
from greenflash.types import CreateMessageResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from convotel.delivery import Delivery
from convotel.delivery.plan import split
from convotel.delivery.state import PlannedRequest
from convotel.delivery.wire import dumps
from convotel.messages import Conversation, ConversationBatch, Message
from convotel.sinks.base import SinkError
from convotel.sinks.console import ConsoleSink
from convotel.sinks.greenflash import GreenflashSink, parse_retry_after

KEY = "gf_live_SUPERSECRET_do_not_leak_42"


def sample(conversation: str = "conv-1") -> ConversationBatch:
    return ConversationBatch(
        Conversation(conversation, "user-7", "org-3"),
        [
            Message("u1", "user_message", 1_700_000_000_000_000_000, content="What is the weather?"),
            Message("t1", "tool_call", 1_700_000_000_000_001_000, parent_external_message_id="u1",
                    tool_name="weather", input={"city": "Oslo"}),
        ],
        model="gpt-4o-mini",
        system_prompt="be brief",
    )


@pytest.fixture
def sink(srv: FaultServer) -> Iterator[GreenflashSink]:
    s = GreenflashSink(KEY, base_url=srv.base_url, product_id="prod-1", timeout_s=0.5)
    yield s
    s.close()


def test_posts_the_wire_body_with_bearer_auth(srv: FaultServer, sink: GreenflashSink) -> None:
    batch = sample()
    result = sink.send(batch)
    [got] = srv.snapshot()
    assert got.headers["authorization"] == f"Bearer {KEY}"
    assert got.headers["content-type"] == "application/json"
    assert got.body == batch.to_wire(product_id="prod-1")
    assert result.statuses == {"u1": "created", "t1": "created"}


def test_statuses_come_from_the_api_answer(sink: GreenflashSink) -> None:
    sink.send(sample())
    assert sink.send(sample()).statuses == {"u1": "deduplicated", "t1": "deduplicated"}


def test_fake_server_answers_in_greenflash_sdk_shape(srv: FaultServer, sink: GreenflashSink) -> None:
    raw = httpx.post(f"{srv.base_url}/messages", content=orjson.dumps(sample().to_wire()),
                     headers={"Authorization": f"Bearer {KEY}"}).content
    parsed = CreateMessageResponse.model_validate(orjson.loads(raw))
    assert [(m.external_message_id, m.status) for m in parsed.messages] == [("u1", "created"), ("t1", "created")]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 301])
def test_permanent_statuses(srv: FaultServer, sink: GreenflashSink, status: int) -> None:
    srv.fail(status, body={"error": "nope"})
    with pytest.raises(SinkError) as info:
        sink.send(sample())
    err = info.value
    assert (err.transient, err.too_large, err.status) == (False, False, status)
    assert "nope" in str(err)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(srv: FaultServer, sink: GreenflashSink, status: int) -> None:
    srv.fail(status, body=b"busy")
    with pytest.raises(SinkError) as info:
        sink.send(sample())
    assert (info.value.transient, info.value.status, info.value.retry_after_s) == (True, status, None)


def test_413_is_too_large(srv: FaultServer, sink: GreenflashSink) -> None:
    srv.fail(413)
    with pytest.raises(SinkError) as info:
        sink.send(sample())
    assert info.value.too_large and info.value.status == 413


def test_retry_after_seconds_and_http_date(srv: FaultServer, sink: GreenflashSink) -> None:
    srv.fail(429, retry_after="7")
    srv.fail(503, retry_after=format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True))
    with pytest.raises(SinkError) as first:
        sink.send(sample())
    with pytest.raises(SinkError) as second:
        sink.send(sample())
    assert first.value.retry_after_s == 7.0
    assert second.value.retry_after_s is not None and 20 < second.value.retry_after_s <= 30


@pytest.mark.parametrize("value,expected", [
    (None, None), ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("nan", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_timeout_is_transient(srv: FaultServer, sink: GreenflashSink) -> None:
    srv.hang(2.0)
    with pytest.raises(SinkError) as info:
        sink.send(sample())
    assert info.value.transient and "did not answer within 0.5s" in str(info.value)


def test_connection_dropped_mid_response_is_transient(srv: FaultServer, sink: GreenflashSink) -> None:
    srv.close()
    with pytest.raises(SinkError) as info:
        sink.send(sample())
    assert info.value.transient


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = GreenflashSink(KEY, base_url=f"http://127.0.0.1:{port}/api/v1", timeout_s=0.5)
    with pytest.raises(SinkError) as info:
        sink.send(sample())
    assert info.value.transient and "cannot reach Greenflash" in str(info.value)


def test_bad_base_url_is_permanent() -> None:
    with pytest.raises(SinkError) as info:
        GreenflashSink(KEY, base_url="ftp://example.invalid/api").send(sample())
    assert not info.value.transient and "base_url" in str(info.value)


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", b"[1, 2]", b'{"messages": "nope"}'])
def test_unreadable_2xx_counts_as_created_and_warns_once(
        srv: FaultServer, sink: GreenflashSink, caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    srv.garbage(body, times=2)
    assert sink.send(sample()).statuses == {"u1": "created", "t1": "created"}
    assert sink.send(sample()).created == 2
    assert caplog.text.count("not the documented JSON") == 1


def test_messages_missing_from_the_answer_count_as_created(srv: FaultServer, sink: GreenflashSink) -> None:
    srv.garbage(orjson.dumps({"messages": [{"externalMessageId": "u1", "status": "deduplicated"}]}))
    assert sink.send(sample()).statuses == {"u1": "deduplicated", "t1": "created"}


def test_empty_key_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="GREENFLASH_API_KEY"):
        GreenflashSink("")


# -- the key never leaks ------------------------------------------------------------------------

def _leaks(text: str) -> bool:
    return KEY in text or KEY[8:20] in text


def test_api_key_never_in_logs_errors_or_reprs(srv: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # includes httpx/httpcore debug logs
    sink = GreenflashSink(KEY, base_url=srv.base_url, product_id="p", timeout_s=0.3)
    assert not _leaks(repr(sink)) and not _leaks(str(vars(sink)))

    errors: list[SinkError] = []
    wrong = GreenflashSink(KEY + "x", base_url=srv.base_url)  # the server echoes a wrong key in its 401
    scenarios = [
        (wrong, lambda: None),
        (sink, lambda: srv.hang(1.0)),
        (sink, srv.close),
        (sink, lambda: srv.fail(500, body=KEY.encode())),
        (sink, lambda: srv.garbage(KEY.encode())),
    ]
    for sender, script in scenarios:
        script()
        try:
            sender.send(sample())
        except SinkError as err:
            errors.append(err)
    assert len(errors) == 4
    assert errors[0].status == 401 and "Invalid API key" in str(errors[0])
    for err in errors:
        assert err.__cause__ is None and err.__context__ is None
        assert not _leaks("".join(traceback.format_exception(err)) + repr(err.args))

    # Through delivery too: its log lines quote the API's error text.
    srv.fail(401, times=None, body={"error": f"bad key {KEY}"})
    delivery = Delivery(sink, linger_s=0, backoff_base_s=0.01, backoff_cap_s=0.02)
    delivery.submit([sample()])
    assert delivery.flush(5)
    assert delivery.stats.dropped == {"rejected": 2}
    delivery.shutdown(2)
    assert "rejected a request (status 401)" in caplog.text
    assert not _leaks(caplog.text)


# -- console sink -----------------------------------------------------------------------------

def test_console_sink_prints_compact_lines() -> None:
    out = io.StringIO()
    batch = sample()
    batch.messages.append(Message("o1", "observation", 1_700_000_000_000_002_000, parent_external_message_id="t1",
                                  content="Sunny,\n  18 degrees " + "and more " * 20))
    result = ConsoleSink(out).send(batch)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[convotel] conversation conv-1 user=user-7 org=org-3 model=gpt-4o-mini (3 messages)"
    assert lines[1].split() == ["user_message", "u1", "'What", "is", "the", "weather?'"]
    assert "tool_call" in lines[2] and "tool=weather" in lines[2] and "parent=u1" in lines[2]
    assert "\n" not in lines[3] and lines[3].rstrip().endswith("…'") and "parent=t1" in lines[3]
    assert result.created == 3


# -- the body built from delivery's encoded messages is the plain encoding, byte for byte ---------

_AWKWARD = st.sampled_from(['"messages":[]', '\\"messages\\":[]', "", "é ✓", "\x00", '"', "\\", "a" * 50])
_TEXTS = st.one_of(_AWKWARD, st.text(max_size=20))
_INT64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def _batches(draw: st.DrawFn) -> ConversationBatch:
    messages = [
        Message(f"m{i}", draw(st.sampled_from(["user_message", "tool_call", "final_response"])), 1_700_000_000 + i,
                content=draw(st.one_of(st.none(), _TEXTS)),
                parent_external_message_id=draw(st.one_of(st.none(), _TEXTS)),
                input=draw(st.one_of(st.none(), st.dictionaries(_TEXTS, _TEXTS, max_size=2))),
                properties=draw(st.one_of(st.none(), st.dictionaries(_TEXTS, _INT64, max_size=2))))
        for i in range(draw(st.integers(1, 4)))
    ]
    return ConversationBatch(
        Conversation(draw(_TEXTS), draw(_TEXTS), draw(st.one_of(st.none(), _TEXTS))), messages,
        model=draw(st.one_of(st.none(), _TEXTS)),
        system_prompt=draw(st.one_of(st.none(), _TEXTS, st.dictionaries(_TEXTS, _TEXTS, max_size=2))),
        properties=draw(st.one_of(st.none(), st.dictionaries(_TEXTS, _TEXTS, max_size=2))),
    )


@settings(max_examples=200, deadline=None)
@given(_batches(), st.one_of(st.none(), _TEXTS))
def test_body_from_encoded_messages_is_byte_identical(batch: ConversationBatch, product_id: str | None) -> None:
    sink = GreenflashSink(KEY, base_url="http://127.0.0.1:9", product_id=product_id)
    plan = split(batch, batch.messages, max_bytes=10**7, max_count=100)
    [encoded] = plan.encoded
    planned = PlannedRequest(batch.conversation, batch.messages, batch.model, batch.system_prompt,
                             batch.properties, encoded)
    assert sink._body(planned) == dumps(batch.to_wire(product_id=product_id))
    planned.message_json = None  # dropped after a failed attempt: encoded again, same bytes
    assert sink._body(planned) == dumps(batch.to_wire(product_id=product_id))
