"""Attribute names convotel reads and writes.

GenAI names follow the OpenTelemetry GenAI semantic conventions; ``convotel.*``
names carry what those conventions do not cover yet (organization, structural
run kinds, conversation properties).
"""

from __future__ import annotations

from typing import Final

# OpenTelemetry GenAI semantic conventions
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_REASONING_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
AGENT_NAME: Final = "gen_ai.agent.name"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
SERVER_ADDRESS: Final = "server.address"
USER_ID: Final = "user.id"

# Operation names (gen_ai.operation.name values)
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"

# convotel extensions
ORGANIZATION_ID: Final = "convotel.organization.id"
CONVERSATION_PROPERTIES: Final = "convotel.conversation.properties"  # JSON object
MESSAGE_TYPE: Final = "convotel.message_type"  # for structural spans: task, workflow, chain_start, retrieval ...
STRUCTURAL_PARENT: Final = "convotel.parent_span_id"  # nearest ancestor span that became a message
PARTIAL: Final = "convotel.partial"  # a stream that ended before its finish reason
RESPONSE_ALTERNATIVES: Final = "convotel.response.alternatives"
EMBEDDINGS_COUNT: Final = "convotel.embeddings.count"  # how many embeddings one call returned
INPUT_VALUE: Final = "convotel.input"  # JSON: structured input of a structural span
OUTPUT_VALUE: Final = "convotel.output"  # JSON: structured output of a structural span
SPAN_STARTED: Final = "convotel.started"  # set on records emitted at span start (no end time yet)
SYSTEM_PROMPT: Final = "convotel.system_prompt"  # JSON: Greenflash systemPrompt object {components, variables}
FINAL_RESPONSE: Final = "convotel.final_response"  # bool: this model call's answer ends an agent run
COVERED_BY: Final = "convotel.covered_by"  # span id of a framework span that already maps this model call
CONTENT: Final = "convotel.content"  # text of a structural message (a ``thought``: agent-action log, on_text)
# The response this call continues (OpenAI Responses ``previous_response_id``): the history
# before it lives server-side, so message ids are seeded from it instead of a resent history.
PREVIOUS_RESPONSE_ID: Final = "convotel.previous_response_id"
