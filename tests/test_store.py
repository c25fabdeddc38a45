"""The SQLite store and the local sink: what gets stored, deduplicated, ordered and refused."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import greenflash_schema
from ingest_support import body, user
from convotel.messages import Conversation, ConversationBatch, Message
from convotel.sinks.base import SinkError
from convotel.sinks.local import LocalSink
from convotel.store import NotFoundError, Store, ValidationError, default_db_path
from convotel.store.schema import SCHEMA_VERSION


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "store.db") as opened:
        yield opened


# -- schema and paths ---------------------------------------------------------------------------


def test_new_store_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "store.db"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    with Store(path):  # reopening applies nothing twice
        pass
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(RuntimeError, match="upgrade convotel"):
        Store(path)


def test_default_path_is_under_the_working_directory_unless_configured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVOTEL_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_db_path() == tmp_path / ".convotel" / "convotel.db"
    monkeypatch.setenv("CONVOTEL_DB", str(tmp_path / "elsewhere.db"))
    with Store() as store:
        assert store.path == tmp_path / "elsewhere.db"


# -- ingest -------------------------------------------------------------------------------------


def test_ingest_creates_then_deduplicates(store: Store) -> None:
    first = store.ingest(body(user("m1"), user("m2", "again")))
    again = store.ingest(body(user("m1"), user("m2", "again"), user("m3", "new")))
    assert [m.status for m in first.messages] == ["created", "created"]
    assert [m.status for m in again.messages] == ["deduplicated", "deduplicated", "created"]
    assert again.conversation_id == first.conversation_id
    assert [m.message_id for m in again.messages[:2]] == [m.message_id for m in first.messages]
    assert [m.content for m in store.messages("conv-1")] == ["hi", "again", "new"]


def test_a_repeat_inside_one_request_is_deduplicated(store: Store) -> None:
    result = store.ingest(body(user("m1"), user("m1", "resent")))
    assert [m.status for m in result.messages] == ["created", "deduplicated"]
    assert [m.content for m in store.messages("conv-1")] == ["hi"]


def test_the_same_external_id_in_two_conversations_is_two_messages(store: Store) -> None:
    store.ingest(body(user("m1"), conversation="a"))
    result = store.ingest(body(user("m1"), conversation="b"))
    assert result.messages[0].status == "created"


def test_response_has_the_greenflash_shape(store: Store) -> None:
    from greenflash.types import CreateMessageResponse

    result = store.ingest(body({"role": "assistant", "content": "hello"}, systemPrompt="Be brief."))
    parsed = CreateMessageResponse.model_validate(result.to_response())
    assert parsed.success and parsed.conversation_id == result.conversation_id
    assert parsed.messages[0].message_type == "assistant_message" and parsed.messages[0].status == "created"
    assert parsed.messages[0].external_message_id is None
    assert parsed.system_prompt_prompt_id and len(parsed.system_prompt_component_ids) == 1


def test_request_fields_update_the_conversation(store: Store) -> None:
    store.ingest(body(user("m1"), model="gpt-4o", properties={"a": 1, "b": 1}, systemPrompt="Be brief."))
    store.ingest(body(user("m2"), externalOrganizationId="acme", properties={"b": 2}, productId="prod"))
    conversation = store.conversation("conv-1")
    assert conversation is not None
    assert (conversation.model, conversation.external_organization_id, conversation.product_id) == (
        "gpt-4o", "acme", "prod")
    assert conversation.properties == {"a": 1, "b": 2}
    assert conversation.system_prompt == "Be brief."
    assert conversation.message_count == 2
    assert store.conversation(conversation.id) == conversation


def test_product_id_alone_starts_a_new_conversation_each_time(store: Store) -> None:
    one = store.ingest({"externalUserId": "u", "productId": "p", "messages": [user("m1")]})
    two = store.ingest({"externalUserId": "u", "productId": "p", "messages": [user("m1")]})
    assert one.conversation_id != two.conversation_id
    follow_up = store.ingest({"externalUserId": "u", "conversationId": one.conversation_id,
                              "messages": [user("m1"), user("m2")]})
    assert [m.status for m in follow_up.messages] == ["deduplicated", "created"]


def test_an_unknown_conversation_id_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        store.ingest({"externalUserId": "u", "conversationId": "nope", "messages": [user("m1")]})
    assert caught.value.field == "conversationId" and caught.value.status == 404


def test_messages_read_in_created_at_then_arrival_order(store: Store) -> None:
    store.ingest(body(
        user("late", createdAt="2025-01-01T10:00:02Z"),
        user("early", createdAt="2025-01-01T12:00:01+02:00"),  # 10:00:01Z
        user("tie-a", createdAt="2025-01-01T10:00:03.000000Z"),
        user("tie-b", createdAt="2025-01-01T10:00:03Z"),
    ))
    stored = store.messages("conv-1")
    assert [m.external_message_id for m in stored] == ["early", "late", "tie-a", "tie-b"]
    assert stored[0].created_at == "2025-01-01T10:00:01.000000Z"


def test_messages_without_created_at_keep_request_order(store: Store) -> None:
    store.ingest(body(*(user(f"m{i}") for i in range(5))))
    assert [m.external_message_id for m in store.messages("conv-1")] == [f"m{i}" for i in range(5)]


def test_all_fields_round_trip(store: Store) -> None:
    message = {"externalMessageId": "t1", "messageType": "tool_call", "toolName": "search", "content": "c",
               "context": "ctx", "input": {"q": "x"}, "output": {"r": [1]}, "properties": {"latencyMs": 3},
               "model": "gpt-4o", "voice": {"speaker": "agent"}, "parentExternalMessageId": "u1"}
    store.ingest(body(user("u1"), message))
    stored = store.messages("conv-1")[1]
    assert (stored.tool_name, stored.content, stored.context, stored.input, stored.output, stored.properties,
            stored.model, stored.voice, stored.parent_external_message_id, stored.role) == (
        "search", "c", "ctx", {"q": "x"}, {"r": [1]}, {"latencyMs": 3}, "gpt-4o", {"speaker": "agent"}, "u1", None)


def test_role_messages_get_the_matching_type(store: Store) -> None:
    store.ingest(body({"role": "system", "content": "rules"}))
    (stored,) = store.messages("conv-1")
    assert (stored.role, stored.message_type, stored.external_message_id) == ("system", "system_message", None)


def test_reading_an_unknown_conversation_says_so(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no conversation 'nope'"):
        store.messages("nope")


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "field"), [
    (body({"messageType": "tool_call", "externalMessageId": "t"}), "messages[0].toolName"),
    (body(user("m1", role="user")), "messages[0].role"),
    (body(user("m1", input=["x"])), "messages[0].input"),
    (body(user("m1", createdAt="yesterday")), "messages[0].createdAt"),
    ({"externalUserId": "u", "messages": [user("m1")]}, "externalConversationId"),
    (body(), "messages"),
])
def test_invalid_bodies_name_the_field(store: Store, bad: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        store.ingest(bad)
    assert caught.value.field == field
    assert greenflash_schema.validate_create_params(bad) or field in {"messages[0].createdAt", "messages"}
    assert store.conversations() == []


def test_unserialisable_values_are_refused_by_field(store: Store) -> None:
    with pytest.raises(ValidationError) as caught:
        store.ingest(body(user("m1", properties={"when": object()})))
    assert caught.value.field == "messages[0].properties"


def test_strict_parents_must_come_first(store: Store) -> None:
    store.ingest(body(user("u1")), strict=True)
    ok = store.ingest(body(
        {"externalMessageId": "t1", "messageType": "tool_call", "toolName": "s", "parentExternalMessageId": "u1"},
        {"externalMessageId": "o1", "messageType": "observation", "parentExternalMessageId": "t1"},
    ), strict=True)
    assert [m.status for m in ok.messages] == ["created", "created"]
    with pytest.raises(ValidationError) as caught:
        store.ingest(body(
            user("u2"),
            {"externalMessageId": "o2", "messageType": "observation", "parentExternalMessageId": "t2"},
            {"externalMessageId": "t2", "messageType": "tool_call", "toolName": "s"},
        ), strict=True)
    assert caught.value.field == "messages[1].parentExternalMessageId"
    assert "u2" not in {m.external_message_id for m in store.messages("conv-1")}  # all or nothing


def test_strict_parent_message_ids_must_exist(store: Store) -> None:
    first = store.ingest(body(user("u1")))
    parent_id = first.messages[0].message_id
    store.ingest(body({"messageType": "thought", "parentMessageId": parent_id}), strict=True)
    with pytest.raises(ValidationError) as caught:
        store.ingest(body({"messageType": "thought", "parentMessageId": "missing"}), strict=True)
    assert caught.value.field == "messages[0].parentMessageId"


def test_lenient_mode_keeps_orphans(store: Store) -> None:
    store.ingest(body({"externalMessageId": "o", "messageType": "observation", "parentExternalMessageId": "gone"}))
    assert store.messages("conv-1")[0].parent_external_message_id == "gone"


# -- listing ------------------------------------------------------------------------------------


def test_cursor_pages_walk_every_conversation_once_newest_first(store: Store) -> None:
    for i in range(7):
        store.ingest(body(user("m"), conversation=f"c{i}", productId="even" if i % 2 == 0 else "odd"))
    seen, cursor = [], None
    while True:
        page = store.page_conversations(limit=3, cursor=cursor)
        seen.extend(c.external_id for c in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"c{i}" for i in reversed(range(7))]
    assert [c.external_id for c in store.page_conversations(limit=2, offset=5).items] == ["c1", "c0"]
    assert [c.external_id for c in store.page_conversations(product_id="even").items] == ["c6", "c4", "c2", "c0"]
    assert [c.external_id for c in store.conversations()] == [f"c{i}" for i in range(7)]


def test_a_foreign_cursor_is_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as caught:
        store.page_conversations(cursor="not-a-cursor")
    assert caught.value.field == "cursor"


# -- concurrency --------------------------------------------------------------------------------


def test_threads_ingest_into_one_conversation_without_losing_or_doubling(store: Store) -> None:
    statuses: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for round_ in range(10):
            # Overlapping ids: every thread also resends the shared ones.
            result = store.ingest(body(user(f"shared{round_}"), user(f"t{n}-{round_}")))
            with lock:
                statuses.extend((m.external_message_id or "", m.status) for m in result.messages)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = Counter(mid for mid, status in statuses if status == "created")
    assert set(created.values()) == {1}
    assert len(created) == 10 + 6 * 10
    assert len(store.messages("conv-1")) == 70


def _ingest_in_child(store: Store, n: int) -> None:
    for round_ in range(5):
        store.ingest(body(user(f"shared{round_}"), user(f"p{n}-{round_}")))


def test_forked_processes_share_the_file(store: Store) -> None:
    store.ingest(body(user("before-fork")))  # the parent holds an open connection when forking
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_ingest_in_child, args=(store, n)) for n in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert len(store.messages("conv-1")) == 1 + 5 + 3 * 5


# -- local sink ---------------------------------------------------------------------------------


def batch(*messages: Message, conversation: str = "conv-1") -> ConversationBatch:
    return ConversationBatch(Conversation(conversation, "alice"), list(messages), model="gpt-4o")


def test_local_sink_stores_and_deduplicates(store: Store) -> None:
    sink = LocalSink(store, product_id="prod")
    sent = batch(Message("u1", "user_message", 1_000, content="hi"),
                 Message("t1", "tool_call", 2_000, parent_external_message_id="u1", tool_name="search"))
    assert greenflash_schema.validate_create_params(sent.to_wire(product_id="prod")) == []
    first = sink.send(sent)
    second = sink.send(sent)
    sink.close()
    assert first.statuses == {"u1": "created", "t1": "created"} and first.created == 2
    assert second.deduplicated == 2
    conversation = store.conversation("conv-1")
    assert conversation is not None and conversation.product_id == "prod"
    assert store.schema_version == SCHEMA_VERSION  # close() left a store it does not own open


def test_local_sink_rejects_invalid_batches_for_good(store: Store) -> None:
    with pytest.raises(SinkError) as caught:
        LocalSink(store).send(batch(Message("t1", "tool_call", 1_000)))
    assert not caught.value.transient and caught.value.status == 400
    assert "messages[0].toolName" in str(caught.value)


def test_local_sink_reports_a_locked_store_as_transient(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    sink = LocalSink(Store(path, busy_timeout_s=0.05))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(batch(Message("u1", "user_message", 1_000, content="hi")))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert caught.value.transient
    assert sink.send(batch(Message("u1", "user_message", 1_000, content="hi"))).created == 1
    sink.store.close()


@pytest.mark.parametrize("given", ["path", "environment"])
def test_local_sink_opens_its_own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("CONVOTEL_DB", str(tmp_path / "env.db"))
    sink = LocalSink(tmp_path / "given.db") if given == "path" else LocalSink()
    sink.send(batch(Message("u1", "user_message", 1_000, content="hi")))
    sink.close()
    with pytest.raises(RuntimeError, match="closed"):
        sink.store.messages("conv-1")
    with Store(tmp_path / ("given.db" if given == "path" else "env.db")) as reopened:
        assert [m.content for m in reopened.messages("conv-1")] == ["hi"]
