"""``convotel.conversation(...)``: who and what the current work belongs to.

Backed by a :class:`contextvars.ContextVar`, so it follows threads started with
``contextvars.copy_context()`` and asyncio tasks (which copy the context when
created), and never leaks between concurrent requests.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ConversationContext:
    conversation_id: str | None = None
    user_id: str | None = None
    organization_id: str | None = None
    properties: Mapping[str, Any] | None = None


_current: contextvars.ContextVar[ConversationContext | None] = contextvars.ContextVar(
    "convotel_conversation", default=None
)


def current() -> ConversationContext | None:
    """The innermost active conversation context, if any."""
    ctx = _current.get()
    while isinstance(ctx, Pushed) and ctx.released:
        ctx = ctx.previous
    return ctx


@dataclass(frozen=True, slots=True)
class Pushed(ConversationContext):
    """A context an instrumentor pushed; once popped it reads as the one it replaced."""

    previous: ConversationContext | None = None
    released: bool = False


def push(ctx: ConversationContext) -> Pushed:
    """For instrumentors that learn the conversation from a framework (LangGraph ``thread_id``)."""
    pushed = Pushed(ctx.conversation_id, ctx.user_id, ctx.organization_id, ctx.properties, current())
    _current.set(pushed)
    return pushed


def pop(pushed: Pushed) -> None:
    """Undo :func:`push` from any context: async LangChain ends runs in a copy of the caller's
    context, where a reset cannot reach the caller, so the pushed context is released instead."""
    object.__setattr__(pushed, "released", True)
    if _current.get() is pushed:
        _current.set(current())


class conversation:  # noqa: N801 - used like a function: ``with convotel.conversation(...)``
    """Set the conversation, user and organization of everything inside.

    Works as a context manager (sync and async) and as a decorator. Nested
    contexts inherit what they do not set themselves.
    """

    def __init__(
        self,
        conversation_id: str | None = None,
        *,
        user_id: str | None = None,
        organization_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self._fields = ConversationContext(conversation_id, user_id, organization_id, properties)
        self._tokens: list[contextvars.Token[ConversationContext | None]] = []

    def _merged(self) -> ConversationContext:
        outer = current()
        mine = self._fields
        if outer is None:
            return mine
        props = {**(outer.properties or {}), **(mine.properties or {})} or None
        return ConversationContext(
            mine.conversation_id or outer.conversation_id,
            mine.user_id or outer.user_id,
            mine.organization_id or outer.organization_id,
            props,
        )

    def __enter__(self) -> ConversationContext:
        merged = self._merged()
        self._tokens.append(_current.set(merged))
        return merged

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> ConversationContext:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @contextmanager
    def _fresh(self) -> Iterator[ConversationContext]:
        # A decorated function may run concurrently; each call gets its own token.
        token = _current.set(self._merged())
        try:
            yield _current.get()  # type: ignore[misc]
        finally:
            _current.reset(token)
