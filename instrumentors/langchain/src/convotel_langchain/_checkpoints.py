"""LangGraph checkpointer traffic (verbose level only): checkpoint reads and writes as memory spans.

``get_tuple`` becomes ``memory_read``; ``put`` (a checkpoint) and ``put_writes`` (a
task's pending writes) become ``memory_write``; async twins alike. A graph run makes
several of these per step, which is why only the verbose level records them.

Every saver overrides these methods (the base class only raises), so each saver class
is wrapped: those defined when instrumenting, and, through ``__init_subclass__`` on
``BaseCheckpointSaver``, those defined later (a saver imported after ``convotel.init()``,
or every saver under ``opentelemetry-instrument``).

Spans carry the thread, the checkpoint ids, the step and the channel names, never
channel values: a checkpoint holds the whole state (every message so far) at every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._memory import MemoryOp, Patches, own_targets

_WHERE_KEYS = ("thread_id", "checkpoint_ns", "checkpoint_id")


def _where(config: Any) -> dict[str, Any]:
    """The thread, namespace and checkpoint a ``RunnableConfig`` points at."""
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    if not isinstance(configurable, Mapping):
        return {}
    return {key: configurable[key] for key in _WHERE_KEYS if configurable.get(key)}


def _thread(bound: dict[str, Any]) -> tuple[str, str] | None:
    """A graph run checkpoints one thread in one namespace: that pair names the run."""
    where = _where(bound.get("config"))
    thread = where.get("thread_id")
    return None if thread is None else (str(thread), str(where.get("checkpoint_ns", "")))


def _read_inputs(bound: dict[str, Any], capture: bool) -> dict[str, Any]:
    return _where(bound.get("config"))


def _read_outputs(result: Any, capture: bool) -> dict[str, Any]:
    if result is None:
        return {"found": False}
    metadata = getattr(result, "metadata", None) or {}
    out = {"found": True, **_where(getattr(result, "config", None))}
    for key in ("step", "source"):
        if key in metadata:
            out[key] = metadata[key]
    return out


def _put_inputs(bound: dict[str, Any], capture: bool) -> dict[str, Any]:
    out = _where(bound.get("config"))
    parent = out.pop("checkpoint_id", None)
    checkpoint = bound.get("checkpoint") or {}
    if "id" in checkpoint:
        out["checkpoint_id"] = checkpoint["id"]
    if parent:
        out["parent_checkpoint_id"] = parent
    metadata = bound.get("metadata") or {}
    for key in ("step", "source"):
        if key in metadata:
            out[key] = metadata[key]
    out["channels"] = sorted(bound.get("new_versions") or ())
    return out


def _writes_inputs(bound: dict[str, Any], capture: bool) -> dict[str, Any]:
    out = _where(bound.get("config"))
    if bound.get("task_id"):
        out["task_id"] = bound["task_id"]
    out["channels"] = [write[0] for write in bound.get("writes") or ()]
    return out


_OPS = (
    MemoryOp("checkpointer.get_tuple", "memory_read", "get_tuple", ("config",), _read_inputs, _read_outputs,
             scope=_thread),
    MemoryOp("checkpointer.put", "memory_write", "put", ("config", "checkpoint", "metadata", "new_versions"),
             _put_inputs, scope=_thread),
    MemoryOp("checkpointer.put_writes", "memory_write", "put_writes", ("config", "writes", "task_id", "task_path"),
             _writes_inputs, scope=_thread),
)


def wrap_savers(patches: Patches) -> None:
    """Wrap every checkpoint saver class, present and future; no-op without LangGraph."""
    try:
        from langgraph.checkpoint.base import BaseCheckpointSaver
    except ImportError:
        return
    seen: set[type] = set()
    pending: list[type] = [BaseCheckpointSaver]
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.add(cls)
            patches.wrap(own_targets(cls, _OPS))
            pending.extend(cls.__subclasses__())

    inherited = vars(BaseCheckpointSaver).get("__init_subclass__")

    def init_subclass(cls: type, **kwargs: Any) -> None:
        if inherited is None:
            super(BaseCheckpointSaver, cls).__init_subclass__(**kwargs)
        else:
            inherited.__get__(None, cls)(**kwargs)
        patches.wrap(own_targets(cls, _OPS))

    patches.replace(BaseCheckpointSaver, "__init_subclass__", classmethod(init_subclass))
