"""Settings for ``convotel.init()``: explicit arguments first, then the environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from convotel.instrumentation import env_flag
from convotel.messages import DEFAULT_USER_ID
from convotel.store.db import default_db_path

DEFAULT_GREENFLASH_BASE_URL = "https://www.greenflash.ai/api/v1"
SINK_NAMES = ("greenflash", "local", "console", "none")


class ConfigError(ValueError):
    """A setting is not usable; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    sinks: tuple[str, ...]
    api_key: str | None = field(default=None, repr=False)  # never printed
    base_url: str = DEFAULT_GREENFLASH_BASE_URL
    product_id: str | None = None
    db_path: Path = field(default_factory=default_db_path)
    capture_content: bool | None = None
    service_name: str = "convotel-app"
    instrumentors: tuple[str, ...] | None = None  # None: every installed convotel instrumentor
    default_user_id: str = DEFAULT_USER_ID
    verbose: bool = False
    spool_path: Path | None = None
    #: Requests written ahead of their answers on the Greenflash connection (1: no pipelining).
    http_pipeline: int = 32
    #: Built-in redaction patterns (None: ``CONVOTEL_REDACT`` or the default, API keys only).
    redact_patterns: tuple[str, ...] | None = None
    #: User hook run on every outgoing string after the patterns.
    redact: Callable[[str], str] | None = field(default=None, repr=False)
    #: Why a requested sink was replaced (said once on stderr by init()).
    notices: tuple[str, ...] = ()


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _parse_sinks(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in SINK_NAMES]
    if unknown:
        raise ConfigError(f"unknown sink {', '.join(unknown)!s} in CONVOTEL_SINK/sink=; "
                          f"choose from {', '.join(SINK_NAMES)}")
    return names


def _http_pipeline(value: str | None) -> int:
    if value is None:
        return Settings.http_pipeline
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"CONVOTEL_HTTP_PIPELINE={value!r}: give a whole number of requests, at least 1 "
                          "(1 sends one request at a time)")
    return int(value)


def resolve(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    product_id: str | None = None,
    sink: str | list[str] | tuple[str, ...] | None = None,
    db_path: str | os.PathLike[str] | None = None,
    capture_content: bool | None = None,
    service_name: str | None = None,
    instrumentors: list[str] | tuple[str, ...] | None = None,
    user_id: str | None = None,
    verbose: bool | None = None,
    spool_path: str | os.PathLike[str] | None = None,
    redact_patterns: list[str] | tuple[str, ...] | None = None,
    redact: Callable[[str], str] | None = None,
) -> Settings:
    api_key = api_key or _env("GREENFLASH_API_KEY")
    product_id = product_id or _env("GREENFLASH_PRODUCT_ID")
    raw_sink = sink if sink is not None else _env("CONVOTEL_SINK")
    if raw_sink is None:
        sinks: tuple[str, ...] = ("greenflash",) if api_key else ("local",)
    else:
        sinks = _parse_sinks(raw_sink if isinstance(raw_sink, str) else ",".join(raw_sink))
    notices: list[str] = []
    if "greenflash" in sinks and not (api_key and product_id):
        missing = "GREENFLASH_API_KEY" if not api_key else "GREENFLASH_PRODUCT_ID"
        notices.append(f"the Greenflash sink needs {missing}; writing to the local store instead")
        sinks = tuple(dict.fromkeys("local" if s == "greenflash" else s for s in sinks))
    if "none" in sinks:
        sinks = ()
    env_instrumentors = _env("CONVOTEL_INSTRUMENTORS")
    if instrumentors is None and env_instrumentors:
        instrumentors = [n.strip() for n in env_instrumentors.split(",") if n.strip()]
    spool = spool_path or _env("CONVOTEL_SPOOL")
    return Settings(
        sinks=sinks,
        api_key=api_key,
        base_url=(base_url or _env("GREENFLASH_BASE_URL") or DEFAULT_GREENFLASH_BASE_URL).rstrip("/"),
        product_id=product_id,
        db_path=Path(db_path) if db_path else default_db_path(),
        capture_content=capture_content,
        service_name=service_name or _env("OTEL_SERVICE_NAME") or "convotel-app",
        instrumentors=tuple(instrumentors) if instrumentors is not None else None,
        default_user_id=user_id or _env("CONVOTEL_USER_ID") or DEFAULT_USER_ID,
        verbose=verbose if verbose is not None else env_flag("CONVOTEL_VERBOSE") is True,
        spool_path=Path(spool) if spool else None,
        http_pipeline=_http_pipeline(_env("CONVOTEL_HTTP_PIPELINE")),
        redact_patterns=tuple(redact_patterns) if redact_patterns is not None else None,
        redact=redact,
        notices=tuple(notices),
    )
