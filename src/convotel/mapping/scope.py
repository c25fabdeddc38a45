"""Per-span facts every mapper needs: conversation, ids, parent run, attribute access."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convotel import semconv
from convotel.mapping.ids import message_id, run_key
from convotel.mapping.parts import load_json
from convotel.messages import Conversation
from convotel.records import SpanRecord

MICROSECOND = 1_000  # siblings sit one microsecond apart so parents always sort first


@dataclass(frozen=True, slots=True)
class MappingOptions:
    #: ``externalUserId`` when neither the context nor the span names a user.
    default_user_id: str = "anonymous"
    #: Also emit an ``llm`` message per model call and ``chain_start``/``chain_end`` noise.
    verbose: bool = False


DEFAULT_OPTIONS = MappingOptions()


@dataclass(slots=True)
class SpanScope:
    record: SpanRecord
    conversation: Conversation
    #: Message of the nearest enclosing task / workflow run, if the span sits inside one.
    run_parent_id: str | None
    #: ``record.attributes``, read dozens of times per span
    attrs: Mapping[str, Any]

    def id(self, key: str) -> str:
        return message_id(self.conversation.external_conversation_id, key)

    def json(self, name: str) -> Any:
        return load_json(self.attrs.get(name))

    def str(self, name: str) -> str | None:
        value = self.attrs.get(name)
        if type(value) is str:  # the usual case, decided without a call
            return value or None
        return None if value is None else str(value)


def scope_of(record: SpanRecord, options: MappingOptions) -> SpanScope:
    attrs = record.attributes
    conversation_id = str(attrs.get(semconv.CONVERSATION_ID) or "") or record.trace_id
    conversation = Conversation(
        external_conversation_id=conversation_id,
        external_user_id=str(attrs.get(semconv.USER_ID) or "") or options.default_user_id,
        external_organization_id=str(attrs.get(semconv.ORGANIZATION_ID) or "") or None,
    )
    parent_span = attrs.get(semconv.STRUCTURAL_PARENT)
    run_parent = message_id(conversation_id, run_key(str(parent_span))) if parent_span else None
    return SpanScope(record, conversation, run_parent, attrs)
