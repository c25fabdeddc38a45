"""createdAt allocation for the messages of one span."""

from __future__ import annotations


class Clock:
    """Hands out strictly increasing ``createdAt`` values, one microsecond apart."""

    __slots__ = ("_next",)

    def __init__(self, start_ns: int) -> None:
        self._next = start_ns

    def tick(self) -> int:
        now = self._next
        self._next += 1_000
        return now

    def not_before(self, ns: int) -> None:
        self._next = max(self._next, ns)
