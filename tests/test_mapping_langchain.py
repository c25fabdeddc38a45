"""Mapping support added for LangChain: framework thoughts (agent-action logs, on_text) as structural spans."""

from __future__ import annotations

from spans import TRACE, assistant, chat_span, user

from convotel.mapping import map_records
from convotel.records import SpanRecord


def thought_span(text: str | None, *, span_id: str = "7" * 16, parent: str | None = "a" * 16,
                 ended: bool = True) -> SpanRecord:
    attrs = {"convotel.message_type": "thought", "gen_ai.conversation.id": "conv-1"}
    if text is not None:
        attrs["convotel.content"] = text
    if parent:
        attrs["convotel.parent_span_id"] = parent
    start = 1_700_000_000_500_000_000
    return SpanRecord(TRACE, span_id, None, "thought", start, start if ended else None, attrs)


def test_thought_span_is_a_thought_with_its_text_under_its_run() -> None:
    run = SpanRecord(TRACE, "a" * 16, None, "invoke_agent AgentExecutor", 1_700_000_000_000_000_000, None,
                     {"convotel.message_type": "workflow", "gen_ai.conversation.id": "conv-1",
                      "gen_ai.agent.name": "AgentExecutor"})
    (batch,) = map_records([run, thought_span("I should look up Paris first.")])
    workflow, thought = batch.messages
    assert (workflow.message_type, workflow.content) == ("workflow", "AgentExecutor")
    assert (thought.message_type, thought.content) == ("thought", "I should look up Paris first.")
    assert thought.parent_external_message_id == workflow.external_message_id
    assert thought.properties is None and thought.input is None


def test_thought_without_captured_text_and_at_start() -> None:
    (batch,) = map_records([thought_span(None, parent=None)])
    assert [(m.message_type, m.content, m.parent_external_message_id) for m in batch.messages] == [
        ("thought", None, None)]
    assert all(not b.messages for b in map_records([thought_span("x", ended=False)]))


def test_thought_ids_are_per_span_and_stable() -> None:
    first = map_records([thought_span("a", span_id="1" * 16)])[0].messages[0]
    again = map_records([thought_span("a", span_id="1" * 16)])[0].messages[0]
    other = map_records([thought_span("a", span_id="2" * 16)])[0].messages[0]
    assert first.external_message_id == again.external_message_id != other.external_message_id


def test_framework_chat_span_flags_and_covered_lower_level_span() -> None:
    """What the LangChain handler relies on: final-response flag, and a covered OpenAI span adds nothing."""
    framework = chat_span([user("hi")], [assistant("hello")], **{"convotel.final_response": True})
    covered = chat_span([user("hi")], [assistant("hello")], span_id="9" * 16,
                        **{"convotel.covered_by": "00f067aa0ba902b7"})
    (batch,) = map_records([covered, framework])
    assert [(m.message_type, m.content) for m in batch.messages] == [
        ("user_message", "hi"), ("final_response", "hello")]
    sub_agent = chat_span([user("q"), assistant(None, [("c1", "t", {})]), {"role": "tool", "parts": [
        {"type": "tool_call_response", "id": "c1", "response": "r"}]}], [assistant("answer")],
        **{"convotel.final_response": False})
    (batch,) = map_records([sub_agent])
    assert batch.messages[-1].message_type == "assistant_message"
