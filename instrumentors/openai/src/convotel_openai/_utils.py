"""Small helpers shared by every module: tolerant access, sentinels, log-once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

logger = logging.getLogger("convotel_openai")

_reported: set[str] = set()


def report(kind: str) -> None:
    """Log the exception being handled, once per ``kind``; never raises.

    Instrumentation faults must not reach the app: callers catch, call this,
    and carry on with the app's result unchanged.
    """
    try:
        if kind in _reported:
            return
        _reported.add(kind)
        logger.warning(
            "convotel_openai: instrumentation error in %s; the OpenAI call is unaffected "
            "(further errors of this kind are not logged)",
            kind,
            exc_info=True,
        )
    except Exception:  # pragma: no cover - logging itself failed
        pass


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise; ``default`` when absent."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def given(value: Any) -> bool:
    """False for ``None`` and the SDK's ``NOT_GIVEN`` / ``omit`` sentinels."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def arg(kwargs: Mapping[str, Any], name: str) -> Any:
    value = kwargs.get(name)
    return value if given(value) else None


def parse_arguments(raw: Any) -> Any:
    """Tool-call arguments: the parsed JSON object, else the raw value unchanged."""
    if isinstance(raw, (str, bytes)):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        return parsed if isinstance(parsed, dict) else raw
    return raw


def as_list(value: Any) -> list[Any] | None:
    """A list view of a list/tuple argument; ``None`` for anything else (never consume iterators)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return None
