"""Building GenAI semconv message parts: what every instrumentor records.

Instrumentors turn their SDK's message content into parts with these helpers, so
the same content seen through different SDKs records the same parts (and hashes
to the same message ids). :mod:`convotel.mapping.parts` reads them back.
With content capture off a part keeps its type but loses its text and URI.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

Part = dict[str, Any]

# One text standing for several text parts joins them with a newline. That is what
# OpenAI-compatible servers hand the model for a list of text parts (vLLM flattens
# them with "\n".join), and the rule convotel.mapping.parts applies to a message's
# text parts. (LangChain's ``message.text`` and the OpenAI SDK's ``output_text``
# concatenate with "" instead: client conveniences, not what the model reads.)
TEXT_JOINER = "\n"


def text_part(text: Any, capture: bool, kind: str = "text") -> Part:
    """A ``text`` (or ``reasoning``) part."""
    return {"type": kind, "content": text if isinstance(text, str) else str(text)} if capture else {"type": kind}


def blob_part(modality: str, mime_type: Any = None) -> Part:
    """Inline bytes: the part says they were there, the bytes never go on the span."""
    part: Part = {"type": "blob", "modality": modality}
    if isinstance(mime_type, str) and mime_type:
        part["mime_type"] = mime_type
    return part


def image_part(url: Any, capture: bool) -> Part:
    """An image given by URL: a ``uri`` part, or a ``blob`` part for a ``data:`` URL."""
    if isinstance(url, str) and url.startswith("data:"):
        return blob_part("image", url[5:].split(",", 1)[0].split(";", 1)[0])
    part: Part = {"type": "uri", "modality": "image"}
    if capture and isinstance(url, str):
        part["uri"] = url
    return part


def join_text(parts: list[Part]) -> list[Part]:
    """Merge runs of adjacent text parts into one (see ``TEXT_JOINER``), so a list of
    text parts and the same text as one string describe the same message."""
    if len(parts) < 2:
        return parts
    out: list[Part] = []
    for part in parts:
        prev = out[-1] if out else None
        if prev is not None and part.get("type") == "text" and prev.get("type") == "text":
            if "content" in prev:
                out[-1] = {"type": "text", "content": prev["content"] + TEXT_JOINER + part.get("content", "")}
            continue
        out.append(part)
    return out


def content_text(content: Any, text_types: Collection[str] = ("text",)) -> str:
    """Plain text of a message ``content``: a string as it is; of a list, its strings and the
    ``text`` of its parts whose type is in ``text_types``, joined with ``TEXT_JOINER``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        return str(content)
    texts = []
    for item in content:
        if isinstance(item, str):
            texts.append(item)
        elif _field(item, "type") in text_types:
            texts.append(str(_field(item, "text") or ""))
    return TEXT_JOINER.join(texts)


def _field(item: Any, name: str) -> Any:
    """A field of a part: a mapping's key or an SDK model's attribute."""
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
