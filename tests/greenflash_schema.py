"""Greenflash's ``POST /v1/messages`` request schema, derived at test time from the official SDK.

The SDK (``greenflash`` on PyPI) declares the request as TypedDicts
(``MessageCreateParams``, ``MessageItemParam``, ``SystemPromptParam``, ...)
whose keys are Python names; the wire names are their ``PropertyInfo(alias=...)``
metadata. We read those with ``typing.get_type_hints(include_extras=True)``
(``__required_keys__`` is useless here: the SDK's postponed annotations hide
``Required``), so a new SDK release changes what we check without edits here.
On top come the rules the SDK documents only in prose: ``role`` and
``messageType`` are exclusive, ``toolName`` is required for ``tool_call``,
``parentExternalMessageId`` and ``parentMessageId`` are exclusive, one of
``conversationId`` / ``externalConversationId`` / ``productId`` is required,
``systemPrompt.content`` and ``components`` are exclusive.

A type the walker does not understand raises ``TypeError``: extend ``_check``
rather than letting an SDK change go unchecked.
"""

from __future__ import annotations

import collections.abc
import typing
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import typing_extensions as te
from greenflash._utils import PropertyInfo
from greenflash.types import MessageCreateParams, MessageItemParam

__all__ = ["WireField", "message_types", "typed_dict_fields", "validate_create_params"]

_REQUIRED = {typing.Required, te.Required}
_NOT_REQUIRED = {typing.NotRequired, te.NotRequired}
_LIST_ORIGINS = {list, collections.abc.Iterable, collections.abc.Sequence}
_DICT_ORIGINS = {dict, collections.abc.Mapping}


@dataclass(frozen=True)
class WireField:
    python_name: str
    wire_name: str
    type: Any
    required: bool


@cache
def typed_dict_fields(td: type) -> dict[str, WireField]:
    """A TypedDict's fields keyed by wire name (alias when the SDK declares one)."""
    fields: dict[str, WireField] = {}
    for name, hint in te.get_type_hints(td, include_extras=True).items():
        required = bool(getattr(td, "__total__", True))
        if te.get_origin(hint) in _REQUIRED | _NOT_REQUIRED:
            required = te.get_origin(hint) in _REQUIRED
            hint = te.get_args(hint)[0]
        wire = name
        if te.get_origin(hint) is te.Annotated:
            hint, *metadata = te.get_args(hint)
            for meta in metadata:
                if isinstance(meta, PropertyInfo) and meta.alias:
                    wire = meta.alias
        fields[wire] = WireField(name, wire, hint, required)
    return fields


def message_types() -> frozenset[str]:
    """The ``messageType`` values the SDK allows."""
    literal = typed_dict_fields(MessageItemParam)["messageType"].type
    return frozenset(te.get_args(literal))


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _check(value: Any, tp: Any, path: str, errors: list[str]) -> None:
    origin = te.get_origin(tp)
    if tp is object or tp is Any:
        return
    if origin is te.Annotated:
        _check(value, te.get_args(tp)[0], path, errors)
    elif origin is typing.Union:
        attempts = []
        for arm in te.get_args(tp):
            attempt: list[str] = []
            _check(value, arm, path, attempt)
            if not attempt:
                return
            attempts.append(attempt)
        # An arm whose complaints are all inside the value has the right shape: report those.
        inner = [a for a in attempts if not any(e.startswith(f"{path}:") for e in a)]
        if inner:
            errors.extend(inner[0])
        else:
            errors.append(f"{path}: {value!r} is none of {', '.join(_describe(a) for a in te.get_args(tp))}")
    elif origin in (typing.Literal, te.Literal):
        if value not in te.get_args(tp):
            errors.append(f"{path}: {value!r} is not one of {sorted(te.get_args(tp))}")
    elif tp is type(None):
        if value is not None:
            errors.append(f"{path}: must be null")
    elif te.is_typeddict(tp):
        _check_typed_dict(value, tp, path, errors)
    elif origin in _DICT_ORIGINS:
        key_type, value_type = te.get_args(tp)
        if not isinstance(value, dict):
            errors.append(f"{path}: must be an object")
            return
        for k, v in value.items():
            _check(k, key_type, f"{path} key {k!r}", errors)
            _check(v, value_type, f"{path}.{k}", errors)
    elif origin in _LIST_ORIGINS:
        (item_type,) = te.get_args(tp)
        if not isinstance(value, list):
            errors.append(f"{path}: must be an array")
            return
        for i, item in enumerate(value):
            _check(item, item_type, f"{path}[{i}]", errors)
    elif tp is str:
        if not isinstance(value, str):
            errors.append(f"{path}: must be a string")
    elif tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{path}: must be a boolean")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: must be an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: must be a number")
    elif tp is date:
        if not isinstance(value, date):  # on the wire a date is a string, matched by the str arm
            errors.append(f"{path}: must be a date")
    else:
        raise TypeError(f"greenflash_schema cannot check {tp!r} at {path}; extend _check")


def _check_typed_dict(value: Any, td: type, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path or 'body'}: must be an object")
        return
    fields = typed_dict_fields(td)
    prefix = f"{path}." if path else ""
    for wire, spec in fields.items():
        if spec.required and wire not in value:
            errors.append(f"{prefix}{wire}: is required")
    for key, item in value.items():
        spec = fields.get(key)
        if spec is None:
            errors.append(f"{prefix}{key}: unknown field for {td.__name__}")
        else:
            _check(item, spec.type, f"{prefix}{key}", errors)


def _documented_rules(body: dict[str, Any], errors: list[str]) -> None:
    if not any(k in body for k in ("conversationId", "externalConversationId", "productId")):
        errors.append("conversationId: one of conversationId, externalConversationId, productId is required")
    prompt = body.get("systemPrompt")
    if isinstance(prompt, dict) and "content" in prompt and "components" in prompt:
        errors.append("systemPrompt.content: cannot be used with components")
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        path = f"messages[{i}]"
        if "role" in message and "messageType" in message:
            errors.append(f"{path}.role: cannot be used with messageType")
        if message.get("messageType") == "tool_call" and not message.get("toolName"):
            errors.append(f"{path}.toolName: is required for tool_call")
        if "parentExternalMessageId" in message and "parentMessageId" in message:
            errors.append(f"{path}.parentMessageId: cannot be used with parentExternalMessageId")


def validate_create_params(body: Any) -> list[str]:
    """Every way ``body`` (parsed JSON) breaks Greenflash's ``POST /v1/messages`` schema; empty if valid."""
    errors: list[str] = []
    _check_typed_dict(body, MessageCreateParams, "", errors)
    if isinstance(body, dict):
        _documented_rules(body, errors)
    return errors
