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
from operator import attrgetter
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

# Cheap necessary conditions, one per pattern: a text for which it is False has no match, so the
# regex (the costly part) is skipped. Each is a substring test of what every match must contain,
# so it holds for a join of many texts whenever it holds for one of them.
_PHONE_HINT = re.compile(r"\d\)?[ .-]\d{3}")  # area code (or its closing parenthesis), separator, 3 digits
_CARD_HINT = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d")  # a card number starts with four digits


def _maybe_api_key(text: str) -> bool:
    return ("sk-" in text or "AKIA" in text or "AIza" in text or "xox" in text or ("_" in text and "gh" in text)
            or "bearer" in text.lower())


_HINTS: dict[str, Callable[[str], object]] = {
    "api_key": _maybe_api_key,
    "email": lambda text: "@" in text,
    "phone": _PHONE_HINT.search,
    "card": _CARD_HINT.search,
}


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

    subs = tuple((name, _HINTS[name], None if name == "card" else PATTERNS[name], f"[REDACTED:{name}]")
                 for name in chosen)

    def redact(text: str) -> str:
        for _, hint, pattern, replacement in subs:
            if hint(text):
                text = _redact_cards(text) if pattern is None else pattern.sub(replacement, text)
        return hook(text) if hook is not None else text

    if hook is None:
        # Without a hook, a batch none of whose texts passes a hint is left as it is (see redact_batches).
        redact.might_change = lambda text: any(hint(text) for _, hint, _, _ in subs)  # type: ignore[attr-defined]
    return redact


def _walk(value: Any, redact: TextHook) -> Any:
    """``value`` with every string passed through ``redact``; the same object when nothing changed."""
    if isinstance(value, str):
        new = redact(value)
        return value if new == value else new
    if isinstance(value, dict):
        walked = {k: _walk(v, redact) for k, v in value.items()}
        return value if all(walked[k] is v for k, v in value.items()) else walked
    if isinstance(value, list):
        items = [_walk(v, redact) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


# The message fields whose strings leave the process (besides ``properties.alternatives``): what
# redaction rewrites and what its batch precheck reads, so the two cannot drift apart.
_TEXT_FIELDS = ("content", "context", "input", "output")
_text_fields_of = attrgetter(*_TEXT_FIELDS)


def _message(message: Message, redact: TextHook) -> Message:
    props = message.properties
    if props and "alternatives" in props:
        alternatives = _walk(props["alternatives"], redact)
        if alternatives is not props["alternatives"]:
            props = {**props, "alternatives": alternatives}
    walked = {name: _walk(getattr(message, name), redact) for name in _TEXT_FIELDS}
    if props is message.properties and all(walked[name] is getattr(message, name) for name in _TEXT_FIELDS):
        return message  # a value: sharing it is safe, and rebuilding it costs more than the check
    return replace(message, properties=props, **walked)


def _texts(value: Any, out: list[str]) -> None:
    if type(value) is str:  # the common case, tested first; a str subclass is caught last
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            if v is not None:
                _texts(v, out)
    elif isinstance(value, list):
        for v in value:
            _texts(v, out)
    elif isinstance(value, str):
        out.append(value)


def _batch_texts(batch: ConversationBatch) -> str:
    """Every string redaction looks at in the batch, joined by NUL (no pattern matches across it)."""
    out: list[str] = []
    for m in batch.messages:
        for value in _text_fields_of(m):
            if value is not None:
                _texts(value, out)
        if m.properties and "alternatives" in m.properties:
            _texts(m.properties["alternatives"], out)
    if batch.system_prompt is not None:
        _texts(batch.system_prompt, out)
    return "\x00".join(out)


def redact_batches(batches: list[ConversationBatch], redact: TextHook) -> list[ConversationBatch]:
    """Pure: new batches with every outgoing string passed through ``redact``.

    A redactor with a ``might_change(text)`` precheck (built-in patterns, no hook) is first asked
    about all of a batch's texts at once; a batch it clears keeps its messages as they are.
    """
    might_change = getattr(redact, "might_change", None)
    out = []
    for batch in batches:
        if might_change is not None and not might_change(_batch_texts(batch)):
            messages, system_prompt = list(batch.messages), batch.system_prompt
        else:
            messages = [_message(m, redact) for m in batch.messages]
            system_prompt = _walk(batch.system_prompt, redact)
        out.append(ConversationBatch(conversation=batch.conversation, messages=messages, model=batch.model,
                                     system_prompt=system_prompt, properties=batch.properties))
    return out


def _safe(redact: TextHook) -> TextHook:
    # A failing user hook must not leak the raw text: the string is withheld instead.
    def guarded(text: str) -> str:
        try:
            return redact(text)
        except Exception:
            logger.warning("convotel: the redact hook failed; withholding that text", exc_info=True)
            return "[REDACTED:hook-error]"

    might_change = getattr(redact, "might_change", None)
    if might_change is not None:
        guarded.might_change = might_change  # type: ignore[attr-defined]
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
