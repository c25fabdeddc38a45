"""`convotel.server` over real sockets: the Greenflash ingest contract, auth, limits, and reading back."""

from __future__ import annotations

import copy
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from greenflash import Greenflash
from greenflash.types import CreateMessageResponse

import greenflash_schema
from ingest_support import IngestServer, body, running_ingest_server, user


def post(server: IngestServer, payload: Any = None, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", server.headers)
    if payload is not None:
        kwargs["json"] = payload
    return httpx.post(f"{server.url}/messages", headers=headers, **kwargs)


# -- ingest -------------------------------------------------------------------------------------


def test_post_creates_then_deduplicates(ingest_server: IngestServer) -> None:
    tool = {"externalMessageId": "t1", "messageType": "tool_call", "toolName": "search", "input": {"q": "x"},
            "parentExternalMessageId": "u1"}
    first = post(ingest_server, body(user("u1"), tool))
    second = post(ingest_server, body(user("u1"), tool, user("u2", "more")))
    assert first.status_code == second.status_code == 200
    parsed = CreateMessageResponse.model_validate(second.json())
    assert parsed.success and parsed.conversation_id == first.json()["conversationId"]
    assert [(m.external_message_id, m.message_type, m.status) for m in parsed.messages] == [
        ("u1", "user_message", "deduplicated"), ("t1", "tool_call", "deduplicated"), ("u2", "user_message", "created")]
    assert parsed.system_prompt_component_ids == [] and parsed.system_prompt_prompt_id == ""
    assert [m.external_message_id for m in ingest_server.store.messages("conv-1")] == ["u1", "t1", "u2"]
    assert len(ingest_server.posted()) == 2


def test_the_official_sdk_talks_to_it(ingest_server: IngestServer) -> None:
    client = Greenflash(api_key=ingest_server.token, base_url=ingest_server.url, max_retries=0)
    created = client.messages.create(
        external_user_id="alice", external_conversation_id="sdk-conv", model="gpt-4o",
        system_prompt={"components": [{"content": "Be brief.", "type": "system"}]},
        messages=[{"external_message_id": "u1", "role": "user", "content": "hi"},
                  {"external_message_id": "t1", "message_type": "tool_call", "tool_name": "search",
                   "parent_external_message_id": "u1", "created_at": "2030-01-01T00:00:00Z"}],
    )
    assert [m.status for m in created.messages] == ["created", "created"]
    assert len(created.system_prompt_component_ids) == 1
    (listed,) = client.interactions.list()
    assert listed.id == created.conversation_id and listed.external_id == "sdk-conv"
    assert listed.external_participant_id == "alice" and listed.model == "gpt-4o"
    detail = client.interactions.get(created.conversation_id)
    assert [m.role for m in detail.messages] == ["user", "tool_call"]
    client.close()


# -- validation (one shared server: every request here is rejected) ------------------------------


@pytest.fixture(scope="module")
def rejecting_server(module_ingest_server: IngestServer) -> IngestServer:
    module_ingest_server.expect_rejections()
    return module_ingest_server


def valid_body() -> dict[str, Any]:
    return body(
        user("u1"),
        {"externalMessageId": "t1", "messageType": "tool_call", "toolName": "search", "input": {"q": "x"},
         "parentExternalMessageId": "u1"},
        {"externalMessageId": "o1", "messageType": "observation", "output": {"r": 1}, "parentExternalMessageId": "t1"},
        {"externalMessageId": "f1", "messageType": "final_response", "content": "done", "properties": {"a": 1}},
        systemPrompt={"components": [{"content": "Be brief."}]},
    )


def changed(edit: Any) -> dict[str, Any]:
    payload = copy.deepcopy(valid_body())
    edit(payload)
    return payload


# (id, edit, field named in the 400); ids in BEYOND_SDK are rules the SDK's types do not express.
RULES: list[tuple[str, Any, str]] = [
    ("missing-user", lambda b: b.pop("externalUserId"), "externalUserId"),
    ("user-not-string", lambda b: b.update(externalUserId=7), "externalUserId"),
    ("missing-messages", lambda b: b.pop("messages"), "messages"),
    ("messages-not-array", lambda b: b.update(messages={}), "messages"),
    ("no-conversation-key", lambda b: b.pop("externalConversationId"), "externalConversationId"),
    ("role-and-type", lambda b: b["messages"][0].update(role="user"), "messages[0].role"),
    ("neither-role-nor-type", lambda b: b["messages"][3].pop("messageType"), "messages[3].messageType"),
    ("unknown-type", lambda b: b["messages"][3].update(messageType="answer"), "messages[3].messageType"),
    ("unknown-role", lambda b: b["messages"].append({"role": "tool"}), "messages[4].role"),
    ("tool-call-without-name", lambda b: b["messages"][1].pop("toolName"), "messages[1].toolName"),
    ("both-parents", lambda b: b["messages"][2].update(parentMessageId="x"), "messages[2].parentMessageId"),
    ("input-not-object", lambda b: b["messages"][1].update(input="x"), "messages[1].input"),
    ("output-not-object", lambda b: b["messages"][2].update(output=[1]), "messages[2].output"),
    ("properties-not-object", lambda b: b["messages"][3].update(properties=1), "messages[3].properties"),
    ("unknown-message-key", lambda b: b["messages"][3].update(parentId="x"), "messages[3].parentId"),
    ("unknown-body-key", lambda b: b.update(versionId="v"), "versionId"),
    ("unknown-nested-key", lambda b: b["systemPrompt"]["components"][0].update(text="x"),
     "systemPrompt.components[0].text"),
    ("sample-rate-range", lambda b: b.update(sampleRate=2), "sampleRate"),
    ("bad-created-at", lambda b: b["messages"][0].update(createdAt="soon"), "messages[0].createdAt"),
]


BEYOND_SDK = {"neither-role-nor-type", "sample-rate-range", "bad-created-at"}


@pytest.mark.parametrize(("rule", "edit", "field"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_is_a_400_naming_the_field(rejecting_server: IngestServer, rule: str, edit: Any, field: str) -> None:
    payload = changed(edit)
    response = post(rejecting_server, payload)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["field"] == field
    assert field in response.json()["error"]
    if rule not in BEYOND_SDK:
        assert greenflash_schema.validate_create_params(payload), "the SDK schema should reject this too"


def test_the_fixture_fails_a_test_whose_payload_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"messages\[0\]\.toolName"):
        with running_ingest_server(tmp_path) as server:
            assert post(server, body({"messageType": "tool_call"})).status_code == 400


def test_the_valid_base_body_is_accepted(ingest_server: IngestServer) -> None:
    assert post(ingest_server, valid_body()).status_code == 200


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b"null"])
def test_garbage_is_a_400(rejecting_server: IngestServer, raw: bytes) -> None:
    response = post(rejecting_server, content=raw,
                    headers={**rejecting_server.headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_an_unknown_conversation_id_is_a_404(rejecting_server: IngestServer) -> None:
    response = post(rejecting_server, {"externalUserId": "u", "conversationId": "nope", "messages": [user("m")]})
    assert response.status_code == 404 and response.json()["field"] == "conversationId"


# -- strict parents -----------------------------------------------------------------------------


def test_strict_mode_rejects_a_parent_not_delivered_first(ingest_server: IngestServer) -> None:
    ingest_server.expect_rejections()
    orphan = body(user("u1"), {"externalMessageId": "o1", "messageType": "observation",
                               "parentExternalMessageId": "t1"})
    response = post(ingest_server, orphan)
    assert response.status_code == 400
    assert response.json()["field"] == "messages[1].parentExternalMessageId"
    assert ingest_server.store.conversation("conv-1") is None  # nothing from the rejected request
    assert post(ingest_server, body(user("u1"), {"externalMessageId": "t1", "messageType": "tool_call",
                                                 "toolName": "s", "parentExternalMessageId": "u1"})).status_code == 200
    assert post(ingest_server, orphan).status_code == 200  # its parent is stored now


def test_lenient_mode_accepts_orphans(make_ingest_server: Any) -> None:
    server = make_ingest_server(strict=False)
    orphan = body({"externalMessageId": "o1", "messageType": "observation", "parentExternalMessageId": "t1"})
    assert post(server, orphan).status_code == 200


# -- auth and limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}, {"Authorization": "Basic test-token"},
], ids=["none", "wrong-token", "no-scheme", "basic"])
def test_requests_without_the_token_are_401(rejecting_server: IngestServer, headers: dict[str, str]) -> None:
    for response in (post(rejecting_server, valid_body(), headers=headers),
                     httpx.get(f"{rejecting_server.url}/interactions", headers=headers),
                     httpx.get(f"{rejecting_server.url}/interactions/x", headers=headers)):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "test-token" not in response.text


def test_the_scheme_is_case_insensitive(ingest_server: IngestServer) -> None:
    assert post(ingest_server, body(user("u1")), headers={"Authorization": "bearer test-token"}).status_code == 200


def test_the_token_is_never_logged(make_ingest_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = make_ingest_server(token="sekrit-token-123")
    server.expect_rejections()
    with caplog.at_level(logging.DEBUG):
        post(server, body(user("u1")))
        post(server, body(user("u1")), headers={"Authorization": "Bearer sekrit-token-12"})
    assert "sekrit-token-12" not in caplog.text


def test_oversized_bodies_are_413(make_ingest_server: Any) -> None:
    server = make_ingest_server(max_body_bytes=2_000)
    server.expect_rejections()
    small = body(user("u1", "x" * 100))
    big = body(user("u1", "x" * 3_000))
    assert post(server, small).status_code == 200
    declared = post(server, big)
    assert declared.status_code == 413 and declared.json()["field"] == "body"

    def chunks() -> Any:  # no Content-Length: the limit must hold while streaming
        for _ in range(30):
            yield b" " * 100
    streamed = post(server, content=chunks(), headers={**server.headers, "Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert [m.external_message_id for m in server.store.messages("conv-1")] == ["u1"]


# -- reading back -------------------------------------------------------------------------------


def test_link_header_pages_through_every_interaction(ingest_server: IngestServer) -> None:
    for i in range(7):
        assert post(ingest_server, body(user("m"), conversation=f"c{i}")).status_code == 200
    for first_url in (f"{ingest_server.url}/interactions?limit=3", f"{ingest_server.url}/interactions?limit=3&page=1"):
        seen: list[str] = []
        pages = 0
        url: str | None = first_url
        while url is not None:
            response = httpx.get(url, headers=ingest_server.headers)
            assert response.status_code == 200
            seen.extend(item["externalId"] for item in response.json())
            pages += 1
            next_link = response.links.get("next")
            url = next_link["url"] if next_link else None
        assert seen == [f"c{i}" for i in reversed(range(7))]
        assert pages == 3


def test_bad_paging_parameters_are_400(rejecting_server: IngestServer) -> None:
    for query, field in (("limit=0", "limit"), ("limit=abc", "limit"), ("page=0", "page"),
                         ("cursor=zzz", "cursor"), ("page=1&cursor=x", "cursor")):
        response = httpx.get(f"{rejecting_server.url}/interactions?{query}", headers=rejecting_server.headers)
        assert response.status_code == 400, query
        assert response.json()["field"] == field


def test_interaction_detail_lists_messages_in_causal_order(ingest_server: IngestServer) -> None:
    created = post(ingest_server, body(
        user("u1", createdAt="2025-01-01T10:00:00Z"),
        {"externalMessageId": "t1", "messageType": "tool_call", "toolName": "search", "parentExternalMessageId": "u1",
         "createdAt": "2025-01-01T10:00:01Z"},
        {"externalMessageId": "o1", "messageType": "observation", "parentExternalMessageId": "t1",
         "output": {"r": 1}, "createdAt": "2025-01-01T10:00:02Z"},
        user("u0", "earlier", createdAt="2025-01-01T09:00:00Z"),
        model="gpt-4o",
    )).json()
    ids = {m["externalMessageId"]: m["messageId"] for m in created["messages"]}
    for ref in (created["conversationId"], "conv-1"):
        detail = httpx.get(f"{ingest_server.url}/interactions/{ref}", headers=ingest_server.headers).json()
        assert detail["id"] == created["conversationId"] and detail["model"] == "gpt-4o"
        assert [m["externalMessageId"] for m in detail["messages"]] == ["u0", "u1", "t1", "o1"]
        assert [m["parentMessageId"] for m in detail["messages"]] == [None, None, ids["u1"], ids["t1"]]
        assert detail["messages"][3]["output"] == {"r": 1}
        assert detail["messages"][2]["timestamp"] == "2025-01-01T10:00:01.000000Z"


def test_an_unknown_interaction_is_404(rejecting_server: IngestServer) -> None:
    response = httpx.get(f"{rejecting_server.url}/interactions/nope", headers=rejecting_server.headers)
    assert response.status_code == 404


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_posts_store_each_message_once(ingest_server: IngestServer) -> None:
    statuses: list[tuple[str, str]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(headers=ingest_server.headers) as http:
            for round_ in range(8):
                response = http.post(f"{ingest_server.url}/messages",
                                     json=body(user(f"shared{round_}"), user(f"t{n}-{round_}")))
                assert response.status_code == 200
                with lock:
                    statuses.extend((m["externalMessageId"], m["status"]) for m in response.json()["messages"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = Counter(mid for mid, status in statuses if status == "created")
    assert len(statuses) == 6 * 8 * 2
    assert set(created.values()) == {1} and len(created) == 8 + 6 * 8
    assert len(ingest_server.store.messages("conv-1")) == 8 + 6 * 8
