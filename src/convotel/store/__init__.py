"""The local conversation store (SQLite), shared by the local sink and ``convotel serve``."""

from convotel.store.db import (
    ConversationPage,
    IngestedMessage,
    IngestResult,
    Store,
    StoredConversation,
    StoredMessage,
    default_db_path,
)
from convotel.store.validation import IngestError, NotFoundError, ValidationError, validate_create_params

__all__ = [
    "ConversationPage",
    "IngestError",
    "IngestResult",
    "IngestedMessage",
    "NotFoundError",
    "Store",
    "StoredConversation",
    "StoredMessage",
    "ValidationError",
    "default_db_path",
    "validate_create_params",
]
