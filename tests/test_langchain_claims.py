"""The context claims framework instrumentors hold (run parent, model-call owner, pushed conversation):
released from any context, in any order, they read as what they replaced."""

from __future__ import annotations

import asyncio
import contextvars

from convotel import context, instrumentation
from convotel.instrumentation import context_attributes


def test_claims_nest_and_release_in_order() -> None:
    outer = instrumentation.enter_run("aaaa")
    inner = instrumentation.enter_run("bbbb")
    assert context_attributes()["convotel.parent_span_id"] == "bbbb"
    instrumentation.leave(inner)
    assert context_attributes()["convotel.parent_span_id"] == "aaaa"
    instrumentation.leave(outer)
    assert context_attributes() == {}


def test_claims_released_out_of_order() -> None:
    """``generate`` over several prompts: every model run starts, then every one ends."""
    first = instrumentation.enter_model_call("1111")
    second = instrumentation.enter_model_call("2222")
    instrumentation.leave(first)
    assert context_attributes()["convotel.covered_by"] == "2222"
    instrumentation.leave(second)
    assert context_attributes() == {}


def test_claim_released_in_a_copied_context_reads_through_in_the_original() -> None:
    """Async LangChain ends runs inside ``asyncio.create_task(..., context=copy_context())``."""
    claim = instrumentation.enter_model_call("3333")
    pushed = context.push(context.ConversationContext("thread-1", "u-1"))
    assert context_attributes()["gen_ai.conversation.id"] == "thread-1"

    def end() -> None:
        instrumentation.leave(claim)
        context.pop(pushed)

    contextvars.copy_context().run(end)
    assert context_attributes() == {}
    assert context.current() is None
    # A later claim does not chain onto released ones.
    again = instrumentation.enter_run("4444")
    assert again.previous is None
    instrumentation.leave(again)


def test_pushed_conversation_merges_under_explicit_and_survives_tasks() -> None:
    import convotel

    async def main() -> None:
        with convotel.conversation("explicit", user_id="u-2"):
            pushed = context.push(context.ConversationContext("explicit", "u-2", "org-1"))

            async def end() -> None:
                context.pop(pushed)

            await asyncio.create_task(end())
            assert context.current().organization_id is None  # type: ignore[union-attr]
            assert context.current().conversation_id == "explicit"  # type: ignore[union-attr]
        assert context.current() is None

    asyncio.run(main())
