"""Wire form of messages: createdAt formatting matches the standard library's for any instant."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from convotel.messages import iso_from_ns


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_800 * 10**9), min_size=1, max_size=20))
def test_created_at_is_rfc3339_with_microseconds(instants: list[int]) -> None:
    for ns in instants + [instants[0] + 1_000]:
        expected = datetime.fromtimestamp(ns // 10**9, tz=timezone.utc).replace(
            microsecond=(ns % 10**9) // 1000).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert iso_from_ns(ns) == expected
