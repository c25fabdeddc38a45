"""Redaction applies to every outgoing string, in the core, before delivery."""

from __future__ import annotations

import pytest

from convotel.mapping import map_records
from convotel.redaction import build_text_redactor, redact_batches
from spans import assistant, chat_span, tool, user


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
