"""Redaction applies to every outgoing string, in the core, before delivery."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spans import assistant, chat_span, tool, user

from convotel.mapping import map_records
from convotel.redaction import build_text_redactor, redact_batches


def test_builtin_patterns() -> None:
    redact = build_text_redactor(["email", "phone", "card", "api_key"])
    assert redact is not None
    text = ("mail ana@example.com or call +1 415-555-0132, card 4111 1111 1111 1111, "
            "key sk-proj-abcdefghijklmnop1234, order 1234567890123")
    assert redact(text) == ("mail [REDACTED:email] or call [REDACTED:phone], card [REDACTED:card], "
                            "key [REDACTED:api_key], order 1234567890123")


def test_unknown_pattern_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown redaction pattern"):
        build_text_redactor(["ssn"])


def test_redaction_reaches_content_inputs_outputs_and_system_prompt() -> None:
    batches = map_records([chat_span(
        [user("I am bob@corp.io"), assistant(None, [("call_1", "email", {"to": "bob@corp.io"})]),
         tool("call_1", "sent to bob@corp.io")],
        [assistant("Done, bob@corp.io notified."), assistant("alt for bob@corp.io")],
        **{"gen_ai.system_instructions": '[{"type":"text","content":"Owner: root@corp.io"}]'})])
    hook = build_text_redactor(["email"], hook=lambda s: s.replace("Done", "OK"))
    assert hook is not None
    [batch] = redact_batches(batches, hook)
    wire = str([m.to_wire() for m in batch.messages]) + str(batch.system_prompt)
    assert "corp.io" not in wire
    assert batch.messages[-1].content == "OK, [REDACTED:email] notified."
    assert batch.messages[1].input == {"to": "[REDACTED:email]"}
    assert batch.system_prompt == "Owner: [REDACTED:email]"


# -- the fast path (a cheap precheck, no rebuild when nothing matched) changes no output ------------

_PIECES = ["sk-", "sk-ant-", "AKIA", "ghp_", "gho_", "xoxb-", "AIza", "Bearer ", "bEaReR\t", "@", "a@b.io", ".", "-",
           " ", "(", ")", "+1 ", "415", "555", "0132", "4111", "1111", "x", "Z", "_", "\x00", "é", "\n", "0", "9"]
_TEXT = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(alphabet="abcXYZ019 -._@()+", max_size=6)),
                 max_size=25).map("".join)


def _reference(patterns: tuple[str, ...]) -> Any:
    """The redactor without prechecks: every pattern's regex on every text."""
    from convotel.redaction import PATTERNS, _redact_cards

    def redact(text: str) -> str:
        for name in patterns:
            text = _redact_cards(text) if name == "card" else PATTERNS[name].sub(f"[REDACTED:{name}]", text)
        return text

    return redact


@settings(max_examples=400, deadline=None)
@given(_TEXT.map(lambda t: t + "1234567890123456"[: len(t) % 17]))
def test_each_precheck_holds_wherever_its_pattern_matches(text: str) -> None:
    from convotel.redaction import _CARD, _HINTS, PATTERNS

    for name, hint in _HINTS.items():
        pattern = _CARD if name == "card" else PATTERNS[name]
        if pattern.search(text):
            assert hint(text), (name, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TEXT, st.one_of(st.none(), _TEXT), st.one_of(st.none(), _TEXT)), min_size=1, max_size=4),
       st.one_of(st.none(), _TEXT),
       st.sampled_from([("api_key",), ("email",), ("api_key", "card", "email", "phone"), ("phone", "card")]))
def test_redacted_batches_equal_the_plain_redaction(rows: list[tuple[str, str | None, str | None]],
                                                    system_prompt: str | None, patterns: tuple[str, ...]) -> None:
    from convotel.messages import Conversation, ConversationBatch, Message

    messages = [Message(f"m{i}", "user_message", i, content=content, context=context,
                        input={"q": arg, "n": 1, "list": [arg]} if arg is not None else None,
                        properties={"alternatives": [{"content": content}], "kept": "sk-not-walked"})
                for i, (content, context, arg) in enumerate(rows)]
    batches = [ConversationBatch(Conversation("c"), messages, model="m", system_prompt=system_prompt)]
    fast = build_text_redactor(patterns)
    assert fast is not None
    got = redact_batches(batches, fast)
    want = redact_batches(batches, _reference(patterns))
    assert [m.to_wire() for m in got[0].messages] == [m.to_wire() for m in want[0].messages]
    assert got[0].system_prompt == want[0].system_prompt
    assert got[0].messages is not batches[0].messages  # new containers, whatever the path


def test_a_batch_without_matches_keeps_its_messages() -> None:
    [batch] = map_records([chat_span([user("plain words, nothing secret")], [assistant("fine")])])
    redact = build_text_redactor(["api_key", "email"])
    assert redact is not None
    [out] = redact_batches([batch], redact)
    assert all(a is b for a, b in zip(out.messages, batch.messages, strict=True))
    [changed] = redact_batches(map_records([chat_span([user("mail me: x@y.io")], [assistant("fine")])]), redact)
    assert changed.messages[0].content == "mail me: [REDACTED:email]" and changed.messages[1].content == "fine"


def test_a_hook_sees_every_string_even_when_no_pattern_matches() -> None:
    seen: list[str] = []
    redact = build_text_redactor(["api_key"], hook=lambda s: seen.append(s) or s.upper())
    assert redact is not None
    [batch] = redact_batches(map_records([chat_span([user("hello")], [assistant("world")])]), redact)
    assert {"hello", "world"} <= set(seen)
    assert [m.content for m in batch.messages] == ["HELLO", "WORLD"]
