"""The local sink: batches go straight into the SQLite store (no HTTP), validated like the API would."""

from __future__ import annotations

import os
import sqlite3

from convotel.messages import ConversationBatch
from convotel.sinks.base import SendResult, SinkError
from convotel.store import IngestError, Store
from convotel.store.validation import DEFAULT_MAX_BODY_BYTES


class LocalSink:
    """Delivers into a :class:`Store`, given as one or as a file path (default: ``default_db_path()``).

    Closes the store on :meth:`close` only when it opened it itself.
    """

    name = "local"
    # Same limits as `convotel serve`, so what fits here fits there too.
    max_request_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_messages_per_request: int = 1000  # bounds one SQLite write transaction

    def __init__(self, store: Store | str | os.PathLike[str] | None = None, *,
                 product_id: str | None = None, strict: bool = False) -> None:
        self._owns_store = not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else Store(store)
        self.product_id = product_id
        self.strict = strict

    def send(self, batch: ConversationBatch) -> SendResult:
        try:
            result = self.store.ingest(batch.to_wire(product_id=self.product_id), strict=self.strict)
        except IngestError as exc:
            raise SinkError(f"local store rejected the batch: {exc}", transient=False, status=exc.status) from exc
        except sqlite3.OperationalError as exc:
            busy = any(word in str(exc).lower() for word in ("locked", "busy"))
            raise SinkError(f"local store {self.store.path}: {exc}", transient=busy) from exc
        return SendResult(statuses=result.statuses)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()
