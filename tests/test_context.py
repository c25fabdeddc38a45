"""convotel.conversation(): nesting, decorator use, threads and asyncio tasks stay separate."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import convotel
from convotel.context import current
from convotel.instrumentation import context_attributes


def test_context_manager_sets_and_restores() -> None:
    assert current() is None
    with convotel.conversation("conv-789", user_id="user-456", organization_id="acme", properties={"plan": "pro"}):
        assert context_attributes() == {
            "gen_ai.conversation.id": "conv-789", "user.id": "user-456", "convotel.organization.id": "acme",
            "convotel.conversation.properties": '{"plan":"pro"}',
        }
        with convotel.conversation(user_id="user-9", properties={"step": 2}):
            inner = current()
            assert inner is not None
            assert (inner.conversation_id, inner.user_id, inner.organization_id) == ("conv-789", "user-9", "acme")
            assert dict(inner.properties or {}) == {"plan": "pro", "step": 2}
        assert current().user_id == "user-456"  # type: ignore[union-attr]
    assert current() is None and context_attributes() == {}


def test_decorator_sync_and_async() -> None:
    @convotel.conversation("conv-d", user_id="u-d")
    def handler() -> str | None:
        return current().conversation_id  # type: ignore[union-attr]

    @convotel.conversation("conv-a")
    async def ahandler() -> str | None:
        await asyncio.sleep(0)
        return current().conversation_id  # type: ignore[union-attr]

    assert handler() == "conv-d"
    assert asyncio.run(ahandler()) == "conv-a"
    assert current() is None


def test_concurrent_asyncio_tasks_do_not_leak() -> None:
    async def turn(name: str) -> list[str | None]:
        seen = []
        async with convotel.conversation(name):
            for _ in range(5):
                await asyncio.sleep(0)
                seen.append(current().conversation_id)  # type: ignore[union-attr]
        return seen

    async def main() -> list[list[str | None]]:
        return await asyncio.gather(*(turn(f"c{i}") for i in range(10)))

    results = asyncio.run(main())
    assert results == [[f"c{i}"] * 5 for i in range(10)]


def test_threads_are_isolated_and_copy_context_carries_it() -> None:
    seen: dict[str, object] = {}
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        with convotel.conversation(f"t{i}"):
            barrier.wait()
            seen[f"t{i}"] = current().conversation_id  # type: ignore[union-attr]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {f"t{i}": f"t{i}" for i in range(4)}

    with convotel.conversation("outer"):
        ctx = contextvars.copy_context()
    result: list[str | None] = []
    t = threading.Thread(target=lambda: result.append(ctx.run(lambda: current().conversation_id)))  # type: ignore[union-attr]
    t.start()
    t.join()
    assert result == ["outer"]
