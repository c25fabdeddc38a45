"""``convotel serve``: a Greenflash-compatible ingest API backed by the local store."""

from convotel.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from convotel.server.runner import ServerHandle, run_in_thread, serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServerHandle", "create_app", "run_in_thread", "serve"]
