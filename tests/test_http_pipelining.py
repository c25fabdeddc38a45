"""Pipelined requests (``KeepAliveClient.post_many``) over real sockets, against servers that
pipeline properly, that close between answers, and that do not pipeline at all."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import orjson
import pytest
from rawhttp import LoopbackServer, content_length

from convotel._config import ConfigError, resolve
from convotel.messages import Conversation, ConversationBatch, Message
from convotel.sinks._http import KeepAliveClient, TransportError
from convotel.sinks.greenflash import GreenflashSink


def _split_request(buf: bytes) -> tuple[bytes, bytes] | None:
    """The first whole request's body and the bytes after it, or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = content_length(buf[:end])
    if len(buf) < end + 4 + length:
        return None
    return buf[end + 4:end + 4 + length], buf[end + 4 + length:]


class PipelineServer(LoopbackServer):
    """Echoes each request's body. ``close_after``: on a connection's n-th answer say
    ``Connection: close`` and close; ``drop_after``: close silently after n answers;
    ``naive``: read one request per ``recv`` and throw away whatever came with it (a server
    that does not pipeline). Records every body it answered and the most requests it found
    already waiting in one read."""

    def __init__(self, *, close_after: int = 0, drop_after: int = 0, naive: bool = False) -> None:
        self.close_after, self.drop_after, self.naive = close_after, drop_after, naive
        self.answered: list[bytes] = []
        self.most_waiting = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        buf, count = b"", 0
        while True:
            parsed = _split_request(buf)
            if parsed is None:
                data = conn.recv(1 << 20)
                if not data:
                    return
                buf += data
                continue
            waiting, rest = 0, buf
            while (more := _split_request(rest)) is not None:
                waiting, rest = waiting + 1, more[1]
            self.most_waiting = max(self.most_waiting, waiting)
            body, buf = parsed
            if self.naive:
                buf = b""
            count += 1
            closing = count == self.close_after
            self.answered.append(body)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                         % (len(body), b"Connection: close\r\n" if closing else b"", body))
            if closing or count == self.drop_after:
                return


@pytest.fixture
def serve() -> Iterator[type[PipelineServer]]:
    started: list[PipelineServer] = []

    class Started(PipelineServer):
        def __init__(self, **kw: int | bool) -> None:
            super().__init__(**kw)  # type: ignore[arg-type]
            started.append(self)

    yield Started
    for srv in started:
        srv.close()


BODIES = [b'{"n": %d}' % i for i in range(40)]


def test_many_requests_go_ahead_of_their_answers_on_one_connection(serve: type[PipelineServer]) -> None:
    srv = serve()
    client = KeepAliveClient(srv.url, timeout_s=2)
    answers = client.post_many("/messages", BODIES, {"Content-Type": "application/json"})
    assert [a.body for a in answers] == BODIES  # type: ignore[union-attr]
    assert srv.answered == BODIES and srv.connections == 1
    assert srv.most_waiting > 1  # written before the first answer came back
    assert client.post("/messages", b"{}", {}).body == b"{}"  # the connection stays usable
    assert srv.connections == 1
    client.close()


def test_a_pipeline_window_is_bounded(serve: type[PipelineServer]) -> None:
    srv = serve()
    client = KeepAliveClient(srv.url, timeout_s=2, pipeline_depth=4)
    answers = client.post_many("/messages", BODIES[:10], {})
    assert [a.body for a in answers] == BODIES[:10]  # type: ignore[union-attr]
    assert srv.most_waiting <= 4
    client.close()


def test_connection_close_mid_pipeline_resends_the_rest_on_a_new_connection(serve: type[PipelineServer]) -> None:
    srv = serve(close_after=3)
    client = KeepAliveClient(srv.url, timeout_s=2)
    answers = client.post_many("/messages", BODIES[:10], {})
    assert [a.body for a in answers] == BODIES[:10]  # type: ignore[union-attr]
    assert srv.answered == BODIES[:10]  # each answered once: a server closing says it ignored the rest
    assert srv.connections == 4 and client.pipeline_depth > 1  # closing is allowed; pipelining goes on
    client.close()


def test_a_server_that_drops_the_connection_mid_pipeline_gets_one_request_at_a_time(
        serve: type[PipelineServer]) -> None:
    srv = serve(drop_after=2)
    client = KeepAliveClient(srv.url, timeout_s=2)
    answers = client.post_many("/messages", BODIES[:6], {})
    assert [a.body for a in answers] == BODIES[:6]  # type: ignore[union-attr]
    assert srv.answered == BODIES[:6]
    assert client.pipeline_depth == 1
    client.close()


def test_a_server_that_does_not_pipeline_times_out_once_then_gets_one_at_a_time(
        serve: type[PipelineServer]) -> None:
    srv = serve(naive=True)
    client = KeepAliveClient(srv.url, timeout_s=0.3)
    answers = client.post_many("/messages", BODIES[:5], {})
    assert [a.body for a in answers] == BODIES[:5]  # type: ignore[union-attr]
    assert srv.answered == BODIES[:5]  # what it threw away was sent again, nothing twice
    assert client.pipeline_depth == 1  # so later requests do not wait for answers that never come
    assert [a.body for a in client.post_many("/messages", BODIES[5:8], {})] == BODIES[5:8]  # type: ignore[union-attr]
    assert srv.answered == BODIES[:8]
    client.close()


def test_nobody_listening_fails_every_request_of_the_window() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcomes = KeepAliveClient(f"http://127.0.0.1:{port}", timeout_s=1).post_many("/x", BODIES[:3], {})
    assert len(outcomes) == 3 and all(isinstance(o, TransportError) for o in outcomes)


def test_the_greenflash_sink_pipelines_due_conversations_unless_told_not_to(serve: type[PipelineServer]) -> None:
    batches = [ConversationBatch(Conversation(f"c{i}"), [Message(f"m{i}", "user_message", 1, content="hi")])
               for i in range(8)]
    for depth, most in ((32, 8), (1, 1)):
        srv = serve()
        sink = GreenflashSink("k", base_url=srv.url, pipeline_depth=depth)
        outcomes = sink.send_many(batches)
        assert [o.statuses for o in outcomes] == [{f"m{i}": "created"} for i in range(8)]  # type: ignore[union-attr]
        assert [orjson.loads(b)["externalConversationId"] for b in srv.answered] == [f"c{i}" for i in range(8)]
        assert srv.most_waiting == most
        sink.close()


@pytest.mark.parametrize(("value", "depth"), [(None, 32), ("1", 1), ("64", 64)])
def test_convotel_http_pipeline_sets_the_depth(value: str | None, depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is not None:
        monkeypatch.setenv("CONVOTEL_HTTP_PIPELINE", value)
    assert resolve(sink="none").http_pipeline == depth


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_a_bad_convotel_http_pipeline_is_a_clear_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOTEL_HTTP_PIPELINE", value)
    with pytest.raises(ConfigError, match="CONVOTEL_HTTP_PIPELINE.*at least 1"):
        resolve(sink="none")
