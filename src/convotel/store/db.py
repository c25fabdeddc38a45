"""The local conversation store: one SQLite file shared by the local sink and ``convotel serve``.

WAL mode lets readers (``convotel show``) run beside a writer; every thread
gets its own connection and writes take ``BEGIN IMMEDIATE`` with a busy
timeout, so several threads and processes can ingest into one file.
"""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from convotel.store.schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE
from convotel.store.validation import (
    NotFoundError,
    ValidationError,
    effective_message_type,
    parse_timestamp,
    validate_create_params,
)

MessageStatus = Literal["created", "deduplicated"]

DEFAULT_BUSY_TIMEOUT_S: Final = 10.0
# Fixed namespace so that derived ids (participants, prompts) are stable across runs.
_ID_NAMESPACE: Final = uuid.UUID("6f1d4f3e-8a55-4c52-9c1e-0c0f7e1a2b3c")


def default_db_path() -> Path:
    """``$CONVOTEL_DB`` if set, else ``./.convotel/convotel.db`` under the working directory."""
    configured = os.environ.get("CONVOTEL_DB")
    return Path(configured) if configured else Path.cwd() / ".convotel" / "convotel.db"


def derived_id(kind: str, key: str) -> str:
    """A stable UUID for something the store does not keep a table for (participants, prompts)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{key}"))


@dataclass(frozen=True, slots=True)
class IngestedMessage:
    message_id: str
    message_type: str
    status: MessageStatus
    external_message_id: str | None


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: str
    messages: tuple[IngestedMessage, ...]
    system_prompt_prompt_id: str
    system_prompt_component_ids: tuple[str, ...]

    @property
    def statuses(self) -> dict[str, MessageStatus]:
        """Status by ``externalMessageId`` (messages sent without one are keyed by ``messageId``)."""
        return {m.external_message_id or m.message_id: m.status for m in self.messages}

    def to_response(self) -> dict[str, Any]:
        """The body Greenflash answers ``POST /v1/messages`` with (``CreateMessageResponse``)."""
        return {
            "success": True,
            "conversationId": self.conversation_id,
            "messages": [
                {
                    "messageId": m.message_id,
                    "messageType": m.message_type,
                    "status": m.status,
                    "externalMessageId": m.external_message_id,
                }
                for m in self.messages
            ],
            "systemPromptPromptId": self.system_prompt_prompt_id,
            "systemPromptComponentIds": list(self.system_prompt_component_ids),
        }


@dataclass(frozen=True, slots=True)
class StoredConversation:
    id: str
    external_id: str | None
    external_user_id: str
    external_organization_id: str | None
    product_id: str | None
    model: str | None
    system_prompt: str | dict[str, Any] | None
    properties: dict[str, Any] | None
    voice_call: dict[str, Any] | None
    created_at: str
    updated_at: str
    message_count: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    conversation_id: str
    seq: int
    external_message_id: str | None
    message_type: str
    role: str | None
    content: str | None
    context: str | None
    parent_external_message_id: str | None
    parent_message_id: str | None
    tool_name: str | None
    input: dict[str, Any] | None
    output: dict[str, Any] | None
    properties: dict[str, Any] | None
    voice: dict[str, Any] | None
    model: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of conversations, newest first; ``next_cursor`` is ``None`` on the last page."""

    items: tuple[StoredConversation, ...]
    next_cursor: str | None
    has_more: bool


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _dump(value: Any, path: str) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ValidationError(path, f"is not JSON-serializable ({exc})") from None


def _load(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "seq":
            raise ValueError(raw)
        return int(number)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("cursor", "is not a cursor this server issued; use the Link header's next URL") from None


def _prompt_ids(prompt: str | dict[str, Any] | None) -> tuple[str, tuple[str, ...]]:
    """The ids Greenflash reports for a system prompt, derived deterministically from it."""
    if prompt is None:
        return "", ()
    if isinstance(prompt, str):
        components: list[dict[str, Any]] = [{"content": prompt}]
        prompt_id = None
    else:
        components = list(prompt.get("components") or ([{"content": prompt["content"]}] if "content" in prompt else []))
        prompt_id = prompt.get("promptId")
    component_ids = tuple(c.get("componentId") or derived_id("component", c["content"]) for c in components)
    canonical = orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS).decode()
    return prompt_id or derived_id("prompt", canonical), component_ids


_CONVERSATION_COLUMNS: Final = (
    "c.id, c.external_id, c.external_user_id, c.external_organization_id, c.product_id, c.model, "
    "c.system_prompt, c.properties, c.voice_call, c.created_at, c.updated_at, "
    "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
)
_MESSAGE_COLUMNS: Final = (
    "id, conversation_id, seq, external_message_id, message_type, role, content, context, "
    "parent_external_message_id, parent_message_id, tool_name, input, output, properties, voice, model, created_at"
)


def _conversation(row: tuple[Any, ...]) -> StoredConversation:
    return StoredConversation(
        id=row[0], external_id=row[1], external_user_id=row[2], external_organization_id=row[3],
        product_id=row[4], model=row[5], system_prompt=_load(row[6]), properties=_load(row[7]),
        voice_call=_load(row[8]), created_at=row[9], updated_at=row[10], message_count=row[11],
    )


def _message(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        id=row[0], conversation_id=row[1], seq=row[2], external_message_id=row[3], message_type=row[4],
        role=row[5], content=row[6], context=row[7], parent_external_message_id=row[8],
        parent_message_id=row[9], tool_name=row[10], input=_load(row[11]), output=_load(row[12]),
        properties=_load(row[13]), voice=_load(row[14]), model=row[15], created_at=row[16],
    )


class Store:
    """Conversations and messages in one SQLite file (see module docstring for concurrency)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        if str(path) == ":memory:":
            raise ValueError("the store needs a file (each thread opens its own connection); use a temporary file")
        self.path = Path(path) if path is not None else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._migrate()

    # -- connections ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed; open a new Store")
        if os.getpid() != self._pid:
            # A forked child must not touch the parent's SQLite handles (not even to close them),
            # nor wait on a lock some parent thread held at fork time.
            self._lock, self._connections, self._local = threading.Lock(), [], threading.local()
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)  # only so close() can run from any thread
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, much faster
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute(VERSION_TABLE)
            current = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {current}, newer than this convotel knows "
                    f"({SCHEMA_VERSION}); upgrade convotel or point CONVOTEL_DB at another file"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                           (version, _iso(_now())))

    @property
    def schema_version(self) -> int:
        return self._connection().execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ingest --------------------------------------------------------------------------------

    def ingest(self, body: Mapping[str, Any], *, strict: bool = False) -> IngestResult:
        """Store one ``POST /v1/messages`` body, all or nothing.

        Raises :class:`ValidationError` (naming the field) for what the API would
        reject and :class:`NotFoundError` for an unknown ``conversationId``. With
        ``strict``, a ``parentExternalMessageId`` must name a message already stored
        in the conversation or earlier in the same request.
        """
        validate_create_params(body)
        now = _now()
        with self._write() as db:
            conversation_id = self._upsert_conversation(db, body, now)
            seen: set[str] = set()
            results = [
                self._insert_message(db, conversation_id, message, f"messages[{i}]",
                                     now + timedelta(microseconds=i), seen, strict)
                for i, message in enumerate(body["messages"])
            ]
            stored_prompt = db.execute("SELECT system_prompt FROM conversations WHERE id = ?",
                                       (conversation_id,)).fetchone()[0]
        prompt_id, component_ids = _prompt_ids(_load(stored_prompt))
        return IngestResult(conversation_id, tuple(results), prompt_id, component_ids)

    def _upsert_conversation(self, db: sqlite3.Connection, body: Mapping[str, Any], now: datetime) -> str:
        external_id = body.get("externalConversationId")
        if "conversationId" in body:
            row = db.execute("SELECT id, external_id, properties FROM conversations WHERE id = ?",
                             (body["conversationId"],)).fetchone()
            if row is None:
                raise NotFoundError("conversationId", "no conversation has this id; send externalConversationId "
                                                      "instead to create one")
            if external_id and row[1] != external_id and (row[1] is not None or db.execute(
                "SELECT 1 FROM conversations WHERE external_id = ?", (external_id,)
            ).fetchone()):
                raise ValidationError("externalConversationId",
                                      "names another conversation than conversationId; send only one of them")
        elif external_id:
            row = db.execute("SELECT id, external_id, properties FROM conversations WHERE external_id = ?",
                             (external_id,)).fetchone()
        else:
            row = None  # productId alone starts a new conversation every time
        if row is None:
            conversation_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO conversations (id, external_id, external_user_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (conversation_id, external_id, body["externalUserId"], _iso(now), _iso(now)),
            )
            old_properties = None
        else:
            conversation_id, old_properties = row[0], _load(row[2])
        properties = {**(old_properties or {}), **body["properties"]} if "properties" in body else old_properties
        # Request-level fields update the conversation; absent ones keep what is stored.
        db.execute(
            """
            UPDATE conversations SET
                external_id = COALESCE(external_id, ?),
                external_user_id = ?,
                external_organization_id = COALESCE(?, external_organization_id),
                product_id = COALESCE(?, product_id),
                model = COALESCE(?, model),
                system_prompt = COALESCE(?, system_prompt),
                properties = ?,
                voice_call = COALESCE(?, voice_call),
                updated_at = ?
            WHERE id = ?
            """,
            (
                external_id, body["externalUserId"], body.get("externalOrganizationId"), body.get("productId"),
                body.get("model"), _dump(body.get("systemPrompt"), "systemPrompt"),
                _dump(properties, "properties"), _dump(body.get("voiceCall"), "voiceCall"), _iso(now),
                conversation_id,
            ),
        )
        return conversation_id

    def _insert_message(self, db: sqlite3.Connection, conversation_id: str, message: Mapping[str, Any],
                        path: str, default_time: datetime, seen: set[str], strict: bool) -> IngestedMessage:
        external_id = message.get("externalMessageId")
        if strict:
            self._check_parent(db, conversation_id, message, path, seen)
        if external_id is not None:
            seen.add(external_id)
            existing = db.execute(
                "SELECT id, message_type FROM messages WHERE conversation_id = ? AND external_message_id = ?",
                (conversation_id, external_id),
            ).fetchone()
            if existing is not None:
                return IngestedMessage(existing[0], existing[1], "deduplicated", external_id)
        message_id = str(uuid.uuid4())
        message_type = effective_message_type(message)
        created_at = message.get("createdAt")
        db.execute(
            "INSERT INTO messages (id, conversation_id, external_message_id, message_type, role, content, "
            "context, parent_external_message_id, parent_message_id, tool_name, input, output, properties, "
            "voice, model, created_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id, conversation_id, external_id, message_type, message.get("role"),
                message.get("content"), message.get("context"), message.get("parentExternalMessageId"),
                message.get("parentMessageId"), message.get("toolName"),
                _dump(message.get("input"), f"{path}.input"), _dump(message.get("output"), f"{path}.output"),
                _dump(message.get("properties"), f"{path}.properties"), _dump(message.get("voice"), f"{path}.voice"),
                message.get("model"),
                _iso(parse_timestamp(created_at) if created_at is not None else default_time),
                _iso(default_time),
            ),
        )
        return IngestedMessage(message_id, message_type, "created", external_id)

    @staticmethod
    def _check_parent(db: sqlite3.Connection, conversation_id: str, message: Mapping[str, Any],
                      path: str, seen: set[str]) -> None:
        if (parent := message.get("parentExternalMessageId")) is not None:
            if parent in seen or db.execute(
                "SELECT 1 FROM messages WHERE conversation_id = ? AND external_message_id = ?",
                (conversation_id, parent),
            ).fetchone():
                return
            raise ValidationError(
                f"{path}.parentExternalMessageId",
                f"parent {parent!r} is neither stored in this conversation nor earlier in this request; "
                "deliver parents before their children",
            )
        if (parent := message.get("parentMessageId")) is not None and not db.execute(
            "SELECT 1 FROM messages WHERE conversation_id = ? AND id = ?", (conversation_id, parent)
        ).fetchone():
            raise ValidationError(f"{path}.parentMessageId", f"no message {parent!r} in this conversation")

    # -- reading -------------------------------------------------------------------------------

    def conversation(self, ref: str) -> StoredConversation | None:
        """A conversation by its id, else by its external id."""
        db = self._connection()
        for column in ("id", "external_id"):
            row = db.execute(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.{column} = ?",
                             (ref,)).fetchone()
            if row is not None:
                return _conversation(row)
        return None

    def conversations(self) -> list[StoredConversation]:
        """Every conversation, oldest first."""
        rows = self._connection().execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c ORDER BY c.seq"
        ).fetchall()
        return [_conversation(r) for r in rows]

    def page_conversations(self, *, limit: int = 50, cursor: str | None = None, offset: int | None = None,
                           product_id: str | None = None) -> ConversationPage:
        """Conversations newest first, by ``cursor`` (stable while others write) or by ``offset``."""
        if limit < 1:
            raise ValidationError("limit", "must be at least 1")
        where, params = ["1 = 1"], []
        if cursor is not None:
            where.append("c.seq < ?")
            params.append(_decode_cursor(cursor))
        if product_id is not None:
            where.append("c.product_id = ?")
            params.append(product_id)
        rows = self._connection().execute(
            f"SELECT c.seq, {_CONVERSATION_COLUMNS} FROM conversations c WHERE {' AND '.join(where)} "
            "ORDER BY c.seq DESC LIMIT ? OFFSET ?",
            (*params, limit + 1, offset or 0),
        ).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1][0]) if has_more else None
        return ConversationPage(tuple(_conversation(r[1:]) for r in rows), next_cursor, has_more)

    def messages(self, conversation: str) -> list[StoredMessage]:
        """A conversation's messages (by id or external id) in causal order: createdAt, then arrival."""
        found = self.conversation(conversation)
        if found is None:
            raise NotFoundError("conversation", f"no conversation {conversation!r} in {self.path}")
        rows = self._connection().execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY created_at, seq",
            (found.id,),
        ).fetchall()
        return [_message(r) for r in rows]
