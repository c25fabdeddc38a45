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


class Claim:
    """A value an instrumentor sets in a context variable for as long as a framework run is active.

    Async LangChain ends a run in a copy of the caller's context, where no reset can reach the
    caller, so ending a run *releases* its claim (:func:`release`, from any context and in any
    order) and a released claim reads as the value it replaced (:func:`held`).
    """

    __slots__ = ("value", "previous", "released", "_var")

    def __init__(self, var: contextvars.ContextVar[Any], value: Any) -> None:
        self.value = value
        self.previous = _unreleased(var.get())
        self.released = False
        self._var = var
        var.set(self)


def _unreleased(value: Any) -> Any:
    while isinstance(value, Claim) and value.released:
        value = value.previous
    return value


def held(var: contextvars.ContextVar[Any]) -> Any:
    """What ``var`` reads as: its innermost unreleased claim's value, else the plain value set."""
    value = _unreleased(var.get())
    return value.value if isinstance(value, Claim) else value


def release(claim: Claim) -> None:
    """End ``claim``, from any context and in any order."""
    claim.released = True
    var = claim._var
    if var.get() is claim:  # the same context: tidy up (elsewhere the released claim reads through)
        var.set(_unreleased(claim.previous))


# ``convotel.conversation()`` sets plain contexts; instrumentors :func:`push` claims of them.
_current: contextvars.ContextVar[ConversationContext | Claim | None] = contextvars.ContextVar(
    "convotel_conversation", default=None
)


def current() -> ConversationContext | None:
    """The innermost active conversation context, if any."""
    ctx: ConversationContext | None = held(_current)
    return ctx


def push(ctx: ConversationContext) -> Claim:
    """For instrumentors that learn the conversation from a framework (LangGraph ``thread_id``)."""
    return Claim(_current, ctx)


def pop(pushed: Claim) -> None:
    """Undo :func:`push`, from any context (see :class:`Claim`)."""
    release(pushed)


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
        self._tokens: list[contextvars.Token[ConversationContext | Claim | None]] = []

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
