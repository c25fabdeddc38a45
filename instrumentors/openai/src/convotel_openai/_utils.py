"""Small helpers shared by every module: tolerant access, sentinels, log-once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from convotel.instrumentation import report_fault

logger = logging.getLogger("convotel_openai")

def report(kind: str) -> None:
    """Log the exception being handled, once per ``kind``; never raises (see
    :func:`convotel.instrumentation.report_fault`)."""
    report_fault(logger, kind, "the OpenAI call")


_MISSING = object()
_MAPPING_TYPES: dict[type, bool] = {}
_CLASS_ATTRS: dict[tuple[type, str], bool] = {}


def _is_mapping(kind: type, obj: Any) -> bool:
    known = _MAPPING_TYPES.get(kind)
    if known is None:
        known = _MAPPING_TYPES[kind] = isinstance(obj, Mapping)
    return known


def _class_has(kind: type, name: str) -> bool:
    key = (kind, name)
    known = _CLASS_ATTRS.get(key)
    if known is None:
        known = _CLASS_ATTRS[key] = hasattr(kind, name)
    return known


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise; ``default`` when absent.

    This runs for every field of every streamed chunk, so it avoids the slow paths:
    ABC ``isinstance`` checks (cached per type) and pydantic's ``__getattr__`` miss
    (declared fields live in ``__dict__``, extra fields in ``__pydantic_extra__``).
    """
    if obj is None:
        return default
    kind = type(obj)
    if kind is dict:
        return obj.get(name, default)
    fields = getattr(obj, "__dict__", None)
    if fields is not None:
        value = fields.get(name, _MISSING)
        if value is not _MISSING:
            return value
        extra = getattr(obj, "__pydantic_extra__", _MISSING)
        if extra is not _MISSING:
            if extra and name in extra:
                return extra[name]
            if not _class_has(kind, name):
                return default
    if _is_mapping(kind, obj):
        return obj.get(name, default)
    return getattr(obj, name, default)


class _Fields:
    """``view()`` of an object that is neither a dict nor a pydantic v2 model: ``get()`` per field."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        return get(self._obj, name, default)


_EMPTY: Mapping[str, Any] = MappingProxyType({})
_MODEL, _MAPPING, _OTHER = 1, 2, 3
_VIEW_KINDS: dict[type, int] = {}
MODEL_TYPES: set[type] = set()  # pydantic v2 model classes seen by ``view()``


def view(obj: Any) -> Mapping[str, Any]:
    """The fields of ``obj`` as something with ``.get(name)``: what ``get(obj, name)`` reads, at a
    dict lookup per field instead of a function call. Hot paths take one view per object.

    A dict or other mapping is itself; a pydantic v2 model is its ``__dict__`` (declared fields),
    merged under its extra fields when it has any; ``None`` is empty; anything else reads
    through ``get()``. Read-only: never write to a view (it may be the object's own storage).
    """
    kind = type(obj)
    if kind in MODEL_TYPES:
        extra = getattr(obj, "__pydantic_extra__", None)  # unset on a model built without __init__
        return {**extra, **obj.__dict__} if extra else obj.__dict__  # type: ignore[no-any-return]
    if kind is dict:
        return obj  # type: ignore[no-any-return]
    return _view_other(obj, kind)


def _view_other(obj: Any, kind: type) -> Mapping[str, Any]:
    if obj is None:
        return _EMPTY
    how = _VIEW_KINDS.get(kind)
    if how is None:
        if _class_has(kind, "__pydantic_extra__") and _class_has(kind, "model_fields"):
            how = _MODEL
            MODEL_TYPES.add(kind)
        elif _is_mapping(kind, obj):
            how = _MAPPING
        else:
            how = _OTHER
        _VIEW_KINDS[kind] = how
    if how == _MODEL:
        return view(obj)
    if how == _MAPPING:
        return obj  # type: ignore[no-any-return]
    return _Fields(obj)  # type: ignore[return-value]


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
