"""The one JSON encoder for request bodies, so what delivery measures is what the sink sends."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Compact JSON; values orjson cannot encode natively (Decimal, sets, ...) become ``str(value)``.

    Raises ``orjson.JSONEncodeError`` for what no fallback can fix (e.g. lone surrogates).
    """
    return orjson.dumps(obj, default=str, option=_OPTIONS)
