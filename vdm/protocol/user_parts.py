"""The parts of a user turn in each translated dialect: text, images, documents, and what a
tool result holds.

Anthropic's image and document blocks (base64, URL, file id, plain text, content lists) reach
every dialect by the same dispatch (`block_parts`, `document_parts`) and a small table of part
makers per dialect (`PartStyle`: `CHAT_PARTS`, `RESPONSES_PARTS`, `GEMINI_PARTS`). What a
dialect cannot take is a 400 in the client's terms (OpenAI) or a text note that names it
(Gemini, which reads neither URLs nor Anthropic file ids).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vdm.protocol.anthropic import (
    Base64Source,
    ContentSource,
    DocumentBlock,
    FileSource,
    ImageBlock,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    UrlSource,
)
from vdm.protocol.errors import VdmError
from vdm.protocol.translation import result_content

log = logging.getLogger(__name__)

#: Marker that keeps `is_error: true` visible in an OpenAI tool message or call output.
TOOL_ERROR_PREFIX = "[tool error] "

Part = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PartStyle:
    """How one dialect writes the parts of a user turn."""

    text: Callable[[str], Part]
    image: Callable[[ImageBlock], Part]
    #: A base64 document (a PDF).
    pdf: Callable[[DocumentBlock, Base64Source], Part]
    #: A document by URL or Anthropic file id; raises VdmError where the dialect has none.
    reference: Callable[[DocumentBlock, UrlSource | FileSource], Part]
    #: An empty text block stays an empty text part (Chat) instead of being left out.
    empty_text: bool = False


def block_parts(block: Any, style: PartStyle) -> list[Part]:
    """A text, image or document block of a user turn as `style`'s parts; none for anything
    else (thinking is the model's own; other blocks are logged as dropped)."""
    if isinstance(block, TextBlock):
        return [style.text(block.text)] if block.text or style.empty_text else []
    if isinstance(block, ImageBlock):
        return [style.image(block)]
    if isinstance(block, DocumentBlock):
        return document_parts(block, style)
    if not isinstance(block, ThinkingBlock | RedactedThinkingBlock):
        log.debug("dropped a %s block from a user turn", getattr(block, "type", "?"))
    return []


def document_parts(block: DocumentBlock, style: PartStyle) -> list[Part]:
    """A document as parts: its text (under its title), its content list, a PDF, or what the
    dialect makes of a reference."""
    source = block.source
    label = f"{block.title}\n\n" if block.title else ""
    if isinstance(source, PlainTextSource):
        return [style.text(label + source.data)]
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            return [style.text(label + source.content)]
        return [
            style.text(item.text) if isinstance(item, TextBlock) else style.image(item)
            for item in source.content
        ]
    if isinstance(source, Base64Source):
        return [style.pdf(block, source)]
    return [style.reference(block, source)]


def result_items(
    block: ToolResultBlock, rename: Callable[[str], str]
) -> list[TextBlock | ImageBlock | DocumentBlock]:
    """What a tool result holds, as blocks every dialect can place: its text (a string is one
    text block), images and documents; tool search results become text naming the loaded
    tools as the provider knows them (`rename`), anything else is logged as dropped."""
    content = result_content(block, rename)
    if content is None:
        return []
    if isinstance(content, str):
        return [TextBlock(text=content)]
    items: list[TextBlock | ImageBlock | DocumentBlock] = []
    for item in content:
        if isinstance(item, TextBlock | ImageBlock | DocumentBlock):
            items.append(item)
        else:
            log.debug("dropped a %s block from a tool result", item.type)
    return items


def orphan_text(tool_use_id: str, text: str) -> str:
    """A tool result whose call is not in the history, as user text (an output without its
    call is a 400 on the Responses API, and meaningless to Gemini)."""
    return f"[result of tool call {tool_use_id}]\n{text}"


# --- OpenAI (Chat and Responses) ----------------------------------------------------------------


def _data_url(source: Base64Source) -> str:
    return f"data:{source.media_type};base64,{source.data}"


def image_url(block: ImageBlock) -> str:
    """The URL OpenAI's dialects take for an image: a data URL, or the image's own URL."""
    source = block.source
    if isinstance(source, Base64Source):
        return _data_url(source)
    if isinstance(source, UrlSource):
        return source.url
    raise VdmError(400, "image.source: file sources are not supported by OpenAI-format providers")


def _unsupported(kind: str) -> VdmError:
    return VdmError(
        400, f"document.source: {kind} sources are not supported by OpenAI-format providers"
    )


def _chat_reference(block: DocumentBlock, source: UrlSource | FileSource) -> Part:
    raise _unsupported("url" if isinstance(source, UrlSource) else "file")


def _responses_reference(block: DocumentBlock, source: UrlSource | FileSource) -> Part:
    if isinstance(source, UrlSource):
        return {"type": "input_file", "file_url": source.url}
    raise _unsupported("file")


CHAT_PARTS = PartStyle(
    text=lambda text: {"type": "text", "text": text},
    image=lambda block: {"type": "image_url", "image_url": {"url": image_url(block)}},
    pdf=lambda block, source: {
        "type": "file",
        "file": {"filename": block.title or "document.pdf", "file_data": _data_url(source)},
    },
    reference=_chat_reference,
    empty_text=True,
)

RESPONSES_PARTS = PartStyle(
    text=lambda text: {"type": "input_text", "text": text},
    image=lambda block: {"type": "input_image", "image_url": image_url(block), "detail": "auto"},
    pdf=lambda block, source: {
        "type": "input_file",
        "filename": block.title or "document.pdf",
        "file_data": _data_url(source),
    },
    reference=_responses_reference,
)


# --- Gemini -------------------------------------------------------------------------------------


def _inline(source: Base64Source) -> Part:
    return {"inlineData": {"mimeType": source.media_type, "data": source.data}}


def _where(source: UrlSource | FileSource) -> str:
    return str(getattr(source, "url", None) or getattr(source, "file_id", ""))


def _gemini_image(block: ImageBlock) -> Part:
    source = block.source
    if isinstance(source, Base64Source):
        return _inline(source)
    # Gemini reads URLs and Anthropic file ids neither: say what was there.
    log.debug("an image by %s reference cannot be sent to Gemini: sent as text", source.type)
    return {"text": f"[image: {_where(source)}]"}


def _gemini_reference(block: DocumentBlock, source: UrlSource | FileSource) -> Part:
    log.debug("a document by %s reference cannot be sent to Gemini: sent as text", source.type)
    name = f" {block.title}" if block.title else ""
    return {"text": f"[document{name}: {_where(source)}]"}


GEMINI_PARTS = PartStyle(
    text=lambda text: {"text": text},
    image=_gemini_image,
    pdf=lambda block, source: _inline(source),
    reference=_gemini_reference,
)
