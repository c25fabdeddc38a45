"""Batches on disk from hand-over until delivered or permanently rejected (sqlite, WAL).

Each row belongs to the process that wrote it (owner ``pid:token``), so processes that
share a spool file (forked workers, restarts) never send each other's live rows. On open,
rows of owners that are no longer running are adopted and re-sent by the new owner.

Durability: WAL with ``synchronous=NORMAL`` survives the process being killed at any
point after ``put()`` returns; it does not promise to survive power loss (that would cost
an fsync per batch).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import weakref
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson

from convotel.delivery.wire import dumps
from convotel.messages import Conversation, ConversationBatch, Message

_MESSAGE_FIELDS = tuple(f.name for f in fields(Message))
_CONVERSATION_FIELDS = tuple(f.name for f in fields(Conversation))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS convotel_spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the loader's cursor relies on it
    owner TEXT NOT NULL,
    n INTEGER NOT NULL,                    -- messages in the batch (memory accounting)
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS convotel_spool_owner ON convotel_spool (owner, id);
"""


def encode(batch: ConversationBatch) -> bytes:
    conv = batch.conversation
    return dumps({
        "conversation": {f: getattr(conv, f) for f in _CONVERSATION_FIELDS},
        "model": batch.model,
        "system_prompt": batch.system_prompt,
        "properties": batch.properties,
        "messages": [
            {f: v for f in _MESSAGE_FIELDS if (v := getattr(m, f)) is not None} for m in batch.messages
        ],
    })


def decode(body: bytes) -> ConversationBatch:
    data: dict[str, Any] = orjson.loads(body)
    return ConversationBatch(
        conversation=Conversation(**data["conversation"]),
        messages=[Message(**m) for m in data["messages"]],
        model=data.get("model"),
        system_prompt=data.get("system_prompt"),
        properties=data.get("properties"),
    )


#: Owners opened by this process (several Deliveries may share a pid).
_OPEN_HERE: set[str] = set()


def _owner_running(owner: str) -> bool:
    pid_text, _, _ = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        # Running only if opened here; otherwise an earlier process had our pid (pid 1 in containers).
        return owner in _OPEN_HERE
    if os.name != "posix":
        return False  # cannot probe cheaply: adopt (worst case a duplicate, which the API dedups)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: running as another user
        return True
    return True


class Spool:
    """Thread-safe; one per Delivery. Never use an instance inherited across ``fork()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.owner = f"{os.getpid()}:{secrets.token_hex(6)}"
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Conversation content lives here: create the file private before sqlite opens it.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        # Short busy timeout: put() runs on the submitting thread and must not stall it.
        self._db = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._adopt_orphans()
        _OPEN_HERE.add(self.owner)
        if hasattr(os, "register_at_fork"):
            # No thread of ours may be inside sqlite at fork(): sqlite's own mutexes would be
            # copied locked into the child, where its new spool could then deadlock.
            ref = weakref.ref(self)
            os.register_at_fork(before=lambda: (s := ref()) is not None and s._lock.acquire(),
                                after_in_parent=lambda: (s := ref()) is not None and s._lock.release(),
                                after_in_child=lambda: (s := ref()) is not None and s._lock.release())

    def _adopt_orphans(self) -> None:
        owners = [row[0] for row in self._db.execute("SELECT DISTINCT owner FROM convotel_spool")]
        for owner in owners:
            if not _owner_running(owner):
                self._db.execute("UPDATE convotel_spool SET owner = ? WHERE owner = ?", (self.owner, owner))

    def backlog(self) -> tuple[int, int, int]:
        """(batches, messages, highest id) this owner has on disk."""
        with self._lock:
            count, messages, top = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(n), 0), COALESCE(MAX(id), 0) FROM convotel_spool WHERE owner = ?",
                (self.owner,),
            ).fetchone()
        return int(count), int(messages), int(top)

    def put(self, n_messages: int, body: bytes) -> int:
        """Store one encoded batch; returns its id. Raises ``sqlite3.Error`` when the disk says no."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO convotel_spool (owner, n, body) VALUES (?, ?, ?)", (self.owner, n_messages, body)
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def load(self, after_id: int, limit: int) -> list[tuple[int, int, bytes]]:
        """This owner's rows with id > ``after_id``, oldest first: (id, messages, body)."""
        with self._lock:
            return self._db.execute(
                "SELECT id, n, body FROM convotel_spool WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
                (self.owner, after_id, limit),
            ).fetchall()

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM convotel_spool WHERE id = ?", [(i,) for i in ids])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        _OPEN_HERE.discard(self.owner)
        with self._lock:
            self._db.close()
