"""Redaction before export, in the core: it covers every instrumentor and the bridge alike.

Built-in patterns replace matches with ``[REDACTED:<kind>]``; a user hook
``redact(text) -> text`` runs after them on every string that leaves the process
(message content, context, input/output values, system prompt, alternatives).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from convotel.messages import ConversationBatch, Message

logger = logging.getLogger("convotel")

TextHook = Callable[[str], str]

_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    # Needs a separator after the area code, so order numbers and ids stay readable.
    "phone": re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]\d{3,4}[ .-]?\d{3,4}(?!\w)"),
    "api_key": re.compile(
        r"\b(?:sk-[A-Za-z0-9_-]{16,}|sk-ant-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
        r"|xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b"
        r"|(?i:bearer\s+)[A-Za-z0-9._~+/=-]{16,}"
    ),
}
_ORDER = ("api_key", "card", "email", "phone")
#: Secrets are never content worth keeping: this pattern is on unless turned off explicitly.
DEFAULT_PATTERNS: tuple[str, ...] = ("api_key",)


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _redact_cards(text: str) -> str:
    def sub(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return "[REDACTED:card]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group()

    return _CARD.sub(sub, text)


def build_text_redactor(patterns: Iterable[str], hook: TextHook | None = None) -> TextHook | None:
    """One function applying the chosen built-in patterns, then the hook; ``None`` when nothing applies."""
    # Fixed order: secrets and cards first, so a phone pattern never eats part of a card number.
    chosen = tuple(sorted(dict.fromkeys(patterns), key=lambda p: _ORDER.index(p) if p in _ORDER else len(_ORDER)))
    unknown = [p for p in chosen if p not in PATTERNS and p != "card"]
    if unknown:
        raise ValueError(f"unknown redaction pattern(s) {unknown}; choose from {sorted([*PATTERNS, 'card'])}")
    if not chosen and hook is None:
        return None

    def redact(text: str) -> str:
        for name in chosen:
            text = _redact_cards(text) if name == "card" else PATTERNS[name].sub(f"[REDACTED:{name}]", text)
        return hook(text) if hook is not None else text

    return redact


def _walk(value: Any, redact: TextHook) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _walk(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, redact) for v in value]
    return value


def _message(message: Message, redact: TextHook) -> Message:
    props = message.properties
    if props and "alternatives" in props:
        props = {**props, "alternatives": _walk(props["alternatives"], redact)}
    return replace(
        message,
        content=_walk(message.content, redact),
        context=_walk(message.context, redact),
        input=_walk(message.input, redact),
        output=_walk(message.output, redact),
        properties=props,
    )


def redact_batches(batches: list[ConversationBatch], redact: TextHook) -> list[ConversationBatch]:
    """Pure: new batches with every outgoing string passed through ``redact``."""
    out = []
    for batch in batches:
        out.append(
            ConversationBatch(
                conversation=batch.conversation,
                messages=[_message(m, redact) for m in batch.messages],
                model=batch.model,
                system_prompt=_walk(batch.system_prompt, redact),
                properties=batch.properties,
            )
        )
    return out


def _safe(redact: TextHook) -> TextHook:
    # A failing user hook must not leak the raw text: the string is withheld instead.
    def guarded(text: str) -> str:
        try:
            return redact(text)
        except Exception:
            logger.warning("convotel: the redact hook failed; withholding that text", exc_info=True)
            return "[REDACTED:hook-error]"

    return guarded


def redactor_from_settings(settings: Any) -> Callable[[list[ConversationBatch]], list[ConversationBatch]] | None:
    patterns = getattr(settings, "redact_patterns", None)
    if patterns is None:
        env = os.environ.get("CONVOTEL_REDACT", "").strip().lower()
        patterns = () if env == "none" else tuple(p.strip() for p in env.split(",") if p.strip()) or DEFAULT_PATTERNS
    text = build_text_redactor(patterns, getattr(settings, "redact", None))
    if text is None:
        return None
    guarded = _safe(text)
    return lambda batches: redact_batches(batches, guarded)
