"""The one JSON encoder for request bodies, so what delivery measures is what the sink sends."""

from __future__ import annotations

from typing import Any

import orjson

_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Compact JSON; values orjson cannot encode natively (Decimal, sets, ...) become ``str(value)``;
    dict keys that are not strings (ints, enums, ...) are written as ``OPT_NON_STR_KEYS`` writes them.

    Raises ``orjson.JSONEncodeError`` for what no fallback can fix (e.g. lone surrogates).
    """
    try:
        # OPT_NON_STR_KEYS makes orjson take a slower path for every dict; almost all keys are
        # strings, and without it orjson refuses any other key, so only such objects pay for it.
        return orjson.dumps(obj, default=str)
    except orjson.JSONEncodeError:
        return orjson.dumps(obj, default=str, option=_NON_STR_KEYS)
