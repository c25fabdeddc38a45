"""The store's SQLite schema, as an ordered list of migrations.

Migration N (1-based) takes a database from version N-1 to N. To change the
schema, append a migration; never edit one that has shipped. JSON columns hold
orjson text; timestamps are RFC 3339 UTC strings with microseconds, so they
sort lexicographically in time order.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: conversations and their messages
    (
        """
        CREATE TABLE conversations (
            seq                      INTEGER PRIMARY KEY,
            id                       TEXT NOT NULL UNIQUE,
            external_id              TEXT UNIQUE,
            external_user_id         TEXT NOT NULL,
            external_organization_id TEXT,
            product_id               TEXT,
            model                    TEXT,
            system_prompt            TEXT,
            properties               TEXT,
            voice_call               TEXT,
            created_at               TEXT NOT NULL,
            updated_at               TEXT NOT NULL
        )
        """,
        "CREATE INDEX conversations_by_product ON conversations (product_id, seq)",
        """
        CREATE TABLE messages (
            seq                        INTEGER PRIMARY KEY,
            id                         TEXT NOT NULL UNIQUE,
            conversation_id            TEXT NOT NULL REFERENCES conversations (id),
            external_message_id        TEXT,
            message_type               TEXT NOT NULL,
            role                       TEXT,
            content                    TEXT,
            context                    TEXT,
            parent_external_message_id TEXT,
            parent_message_id          TEXT,
            tool_name                  TEXT,
            input                      TEXT,
            output                     TEXT,
            properties                 TEXT,
            voice                      TEXT,
            model                      TEXT,
            created_at                 TEXT NOT NULL,
            received_at                TEXT NOT NULL
        )
        """,
        # Dedup key: externalMessageId is unique within its conversation.
        """
        CREATE UNIQUE INDEX messages_by_external_id
            ON messages (conversation_id, external_message_id)
            WHERE external_message_id IS NOT NULL
        """,
        # Causal reading order: createdAt, then arrival.
        "CREATE INDEX messages_in_order ON messages (conversation_id, created_at, seq)",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)

VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL,
    applied_at TEXT NOT NULL
)
"""
