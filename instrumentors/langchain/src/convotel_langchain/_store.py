"""LangGraph long-term memory: ``BaseStore`` reads and writes fire no callbacks, so wrap them.

``get``/``search`` (and their async twins) become ``memory_read`` spans,
``put``/``delete`` ``memory_write`` spans (see :mod:`._memory`).
"""

from __future__ import annotations

from typing import Any

from ._memory import MemoryOp, Target, own_targets

_INPUT_KEYS = ("namespace", "namespace_prefix", "key", "query", "filter", "limit", "offset", "value")
_CONTENT_KEYS = ("query", "value")


def _inputs(bound: dict[str, Any], capture: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _INPUT_KEYS:
        value = bound.get(key)
        if value is None or (key in _CONTENT_KEYS and not capture):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _item(item: Any, capture: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": list(getattr(item, "namespace", ()) or ()), "key": getattr(item, "key", None)}
    if capture:
        out["value"] = getattr(item, "value", None)
    score = getattr(item, "score", None)
    if score is not None:
        out["score"] = score
    return out


def _found(result: Any, capture: bool) -> dict[str, Any]:
    return {"found": False} if result is None else {"found": True, "item": _item(result, capture)}


def _items(result: Any, capture: bool) -> dict[str, Any]:
    return {"items": [_item(i, capture) for i in result or ()]}


_OPS = (
    MemoryOp("store.get", "memory_read", "get", ("namespace", "key"), _inputs, _found),
    MemoryOp("store.search", "memory_read", "search", ("namespace_prefix",), _inputs, _items),
    MemoryOp("store.put", "memory_write", "put", ("namespace", "key", "value", "index"), _inputs),
    MemoryOp("store.delete", "memory_write", "delete", ("namespace", "key"), _inputs),
)


def targets() -> list[Target]:
    """The store methods to wrap; empty without LangGraph."""
    try:
        from langgraph.store.base import BaseStore
    except ImportError:
        return []
    classes: list[type] = [BaseStore]
    try:
        from langgraph.store.base.batch import AsyncBatchedBaseStore

        classes.append(AsyncBatchedBaseStore)
    except ImportError:
        pass
    # AsyncBatchedBaseStore's sync methods call its async ones: only those are wrapped there.
    return [target for cls in classes for target in own_targets(cls, _OPS, sync=cls is BaseStore)]
