"""The shared part builders, and the OpenAI and LangChain instrumentors recording the same content alike."""

from __future__ import annotations

from typing import Any

import pytest
from convotel_langchain import _messages as langchain_messages
from convotel_openai import _messages as openai_messages
from langchain_core.messages import HumanMessage, ToolMessage

from convotel.message_parts import blob_part, content_text, image_part, join_text, text_part

TWO_TEXTS = [{"type": "text", "text": "rain"}, {"type": "text", "text": "14°C"}]


def test_content_text_joins_the_texts_of_a_list_with_a_newline() -> None:
    assert content_text(TWO_TEXTS) == "rain\n14°C"
    assert content_text(["a", {"type": "image_url"}, {"type": "text", "text": None}]) == "a\n"
    assert content_text([{"type": "output_text", "text": "x"}], ("output_text",)) == "x"
    assert (content_text(None), content_text("as is"), content_text(7)) == ("", "as is", "7")


def test_join_text_merges_only_adjacent_text_parts() -> None:
    reasoning = text_part("hmm", True, "reasoning")
    parts = [text_part("a", True), text_part("b", True), reasoning, text_part("c", True)]
    assert join_text(parts) == [{"type": "text", "content": "a\nb"}, reasoning, {"type": "text", "content": "c"}]
    assert join_text([text_part("a", False), text_part("b", False)]) == [{"type": "text"}]


def test_image_and_blob_parts_never_carry_inline_bytes() -> None:
    assert image_part("data:image/png;base64,iVBORw0KGgo=", True) == blob_part("image", "image/png")
    assert image_part("data:,raw", True) == {"type": "blob", "modality": "image"}
    assert image_part("https://example.com/cat.png", True)["uri"] == "https://example.com/cat.png"
    assert image_part("https://example.com/cat.png", False) == {"type": "uri", "modality": "image"}


@pytest.mark.parametrize("capture", [True, False])
def test_a_tool_result_in_parts_records_the_same_response_through_both(capture: bool) -> None:
    through_langchain = langchain_messages.message_entry(ToolMessage(TWO_TEXTS, tool_call_id="call_1"), capture)
    _, through_openai = openai_messages.input_messages(
        [{"role": "tool", "tool_call_id": "call_1", "content": TWO_TEXTS}], capture)
    assert [through_langchain] == through_openai
    if capture:
        assert through_langchain["parts"][0]["response"] == "rain\n14°C"


@pytest.mark.parametrize("capture", [True, False])
def test_a_user_message_in_parts_records_the_same_parts_through_both(capture: bool) -> None:
    content: list[Any] = [*TWO_TEXTS, {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    through_langchain = langchain_messages.message_entry(HumanMessage(content), capture)
    _, through_openai = openai_messages.input_messages([{"role": "user", "content": content}], capture)
    assert [through_langchain] == through_openai
    assert len(through_langchain["parts"]) == 2  # the two texts are one part, as if sent as one string
