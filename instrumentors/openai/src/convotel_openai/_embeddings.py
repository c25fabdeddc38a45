"""Embeddings: input texts (when captured, never vectors), dimensions, token usage."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from convotel import semconv
from convotel.instrumentation import json_attr

from ._utils import arg, as_list, get

if TYPE_CHECKING:
    from ._call import Call

OPERATION = semconv.OP_EMBEDDINGS
REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"


def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    encoding = arg(kwargs, "encoding_format")
    if isinstance(encoding, str):
        attrs[REQUEST_ENCODING_FORMATS] = (encoding,)
    dimensions = arg(kwargs, "dimensions")
    if isinstance(dimensions, int):
        attrs[semconv.EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return attrs


def input_texts(value: Any) -> list[str] | None:
    """The input strings; ``None`` for token-id inputs (nothing readable to record)."""
    if isinstance(value, str):
        return [value]
    items = as_list(value)
    if items is None or not all(isinstance(i, str) for i in items):
        return None
    return items


def request_content_attributes(kwargs: Mapping[str, Any], capture: bool) -> dict[str, Any]:
    if not capture:
        return {}
    texts = input_texts(arg(kwargs, "input"))
    return {semconv.INPUT_VALUE: json_attr({"texts": texts})} if texts is not None else {}


def _dimensions(embedding: Any) -> int | None:
    if isinstance(embedding, (list, tuple)):
        return len(embedding)
    if isinstance(embedding, str):  # base64 float32 (encoding_format="base64")
        try:
            return len(base64.b64decode(embedding)) // 4
        except ValueError:
            return None
    return None


def apply_response(span: Span, response: Any, capture: bool) -> None:
    attrs: dict[str, Any] = {}
    model = get(response, "model")
    if isinstance(model, str):
        attrs[semconv.RESPONSE_MODEL] = model
    usage = get(response, "usage")
    tokens = get(usage, "prompt_tokens")
    if isinstance(tokens, int):
        attrs[semconv.USAGE_INPUT_TOKENS] = tokens
    data = as_list(get(response, "data"))
    if data is not None:
        attrs[semconv.EMBEDDINGS_COUNT] = len(data)
        if data:
            dims = _dimensions(get(data[0], "embedding"))
            if dims is not None:
                attrs[semconv.EMBEDDINGS_DIMENSION_COUNT] = dims
    span.set_attributes(attrs)


def apply_call_response(call: Call, response: Any) -> None:
    apply_response(call.span, response, call.capture)
