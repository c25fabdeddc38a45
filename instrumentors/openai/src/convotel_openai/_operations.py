"""What differs between instrumented SDK methods, in one record per operation.

Each API module (``_chat``, ``_responses``, ``_embeddings``) provides the same names:
``OPERATION``, ``request_attributes``, ``request_content_attributes``, ``apply_call_response``
and, for streamed results, ``stream_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import _chat, _embeddings, _responses
from ._call import Call


@dataclass(frozen=True)
class Operation:
    kind: str  # for logs: "chat", "responses", "embeddings"
    operation: str  # gen_ai.operation.name
    request_attributes: Callable[[Mapping[str, Any]], dict[str, Any]]  # cheap, at span start
    content_attributes: Callable[[Mapping[str, Any], bool], dict[str, Any]]  # messages, recording spans only
    apply_response: Callable[[Call, Any], None]  # a complete response (SDK model or decoded JSON)
    stream_state: Callable[[Call], Any] | None = None  # a StreamState for streamed results

    @classmethod
    def of(cls, kind: str, api: ModuleType) -> Operation:
        return cls(
            kind=kind,
            operation=api.OPERATION,
            request_attributes=api.request_attributes,
            content_attributes=api.request_content_attributes,
            apply_response=api.apply_call_response,
            stream_state=getattr(api, "stream_state", None),
        )


CHAT = Operation.of("chat", _chat)
RESPONSES = Operation.of("responses", _responses)
EMBEDDINGS = Operation.of("embeddings", _embeddings)
