"""Install and remove wrappers on SDK classes, restoring the exact original objects."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import wrapt

from ._utils import logger
from ._wrappers import MARKER, Wrapper


@dataclass(frozen=True)
class Patch:
    owner: type
    name: str
    original: Any  # what ``owner.__dict__[name]`` held before we wrapped it


_lock = threading.Lock()
_patches: list[Patch] = []


def is_ours(value: Any) -> bool:
    return isinstance(value, wrapt.FunctionWrapper) and bool(getattr(value._self_wrapper, MARKER, False))


def wrap(owner: type, name: str, wrapper: Wrapper) -> bool:
    """Wrap ``owner.name`` unless it is missing or already wrapped by us."""
    with _lock:
        current = owner.__dict__.get(name)
        if current is None or is_ours(current):
            return False
        setattr(owner, name, wrapt.FunctionWrapper(current, wrapper))
        _patches.append(Patch(owner, name, current))
        return True


def unwrap_all() -> None:
    with _lock:
        while _patches:
            patch = _patches.pop()
            current = patch.owner.__dict__.get(patch.name)
            if is_ours(current):
                setattr(patch.owner, patch.name, patch.original)
            else:
                logger.warning(
                    "convotel_openai: %s.%s was re-wrapped by someone else; leaving it in place",
                    patch.owner.__qualname__,
                    patch.name,
                )


def active() -> list[Patch]:
    return list(_patches)
