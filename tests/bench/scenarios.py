"""The benchmark's scenarios: request bodies, and the fake upstream's pre-rendered replies.

Each scenario has its own model name; the fake upstream picks the reply by that name (a byte
search at the start of the body), so one upstream process and one vdm process serve all of
them. The names start with ``gpt-4o`` so vdm applies gpt-4o's capabilities to every one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.client import Expect, render_request
from tests.fakes.openai_upstream import completion, stream_chunks

REPO = Path(__file__).resolve().parents[2]

#: Chunks of text in every streamed reply.
STREAM_CHUNKS = 50
#: Seconds between the chunks of a paced stream.
PACE = 0.010
#: Size of the Claude-Code-sized request body.
BIG_BODY_BYTES = 40_000

_WORDS = (
    "the gateway translates each request once and relays every chunk as soon as it arrives "
    "so that the client sees tokens at the pace the model produces them without buffering "
)
#: 50 word-sized pieces, like the tokens of a model's answer.
TEXT = "".join(_WORDS.split(" ")[i % 30] + " " for i in range(STREAM_CHUNKS)).rstrip() + "."

#: A recorded Claude Code request (a tool round trip), kept in the repository so that
#: `make bench` runs from a fresh clone.
RECORDING = Path(__file__).with_name("claude_code_request.json")


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    short: str
    model: str
    stream: bool
    #: What the upstream does: "json", "burst" (all chunks in one write) or "paced".
    reply: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("a", "small request, non-streaming", "small JSON", "gpt-4o-bench-a", False, "json"),
    Scenario(
        "b",
        f"{STREAM_CHUNKS}-chunk stream, sent at once",
        f"{STREAM_CHUNKS}-chunk stream",
        "gpt-4o-bench-b",
        True,
        "burst",
    ),
    Scenario(
        "c",
        f"{STREAM_CHUNKS}-chunk stream, paced {PACE * 1000:g} ms apart",
        "paced stream",
        "gpt-4o-bench-c",
        True,
        "paced",
    ),
    Scenario(
        "d",
        "Claude-Code-sized request (~40 KB), stream",
        "40 KB Claude Code stream",
        "gpt-4o-bench-d",
        True,
        "burst",
    ),
)
BY_MODEL = {s.model: s for s in SCENARIOS}

VDM_HEADERS = {"x-api-key": "sk-bench-client", "anthropic-version": "2023-06-01"}
DIRECT_HEADERS = {"authorization": "Bearer sk-bench", "accept": "application/json"}
#: What a correct answer looks like, from vdm and straight from the upstream.
VDM_STREAM = Expect(True, b"event: message_stop", b'"type":"text_delta"', STREAM_CHUNKS)
DIRECT_STREAM = Expect(True, b"data: [DONE]", b'"delta":{"content":"', STREAM_CHUNKS)
VDM_JSON = Expect(False, b'"stop_reason":"end_turn"')
DIRECT_JSON = Expect(False, b'"finish_reason":"stop"')


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, as vdm writes them."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# Upstream replies (pre-rendered wire bytes)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyPlan:
    """Wire writes for one response; ``interval`` seconds between consecutive writes."""

    writes: tuple[bytes, ...]
    interval: float = 0.0


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"


def reply_plan(scenario: Scenario) -> ReplyPlan:
    if scenario.reply == "json":
        body = dumps(completion(TEXT, model=scenario.model))
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        return ReplyPlan((head % len(body) + body,))
    chunks = stream_chunks(TEXT, model=scenario.model, pieces=STREAM_CHUNKS)
    # role chunk, 50 content chunks, finish chunk, usage chunk, then [DONE]
    frames = [_http_chunk(b"data: " + dumps(c) + b"\n\n") for c in chunks]
    frames.append(_http_chunk(b"data: [DONE]\n\n"))
    if scenario.reply == "burst":
        return ReplyPlan((_SSE_HEAD + b"".join(frames) + _LAST_CHUNK,))
    # Paced: the role chunk with the first text chunk at once, then one text chunk every PACE
    # seconds; the last one carries the finish and usage chunks and [DONE].
    text = frames[1 : 1 + STREAM_CHUNKS]
    tail = frames[1 + STREAM_CHUNKS :]
    writes = [_SSE_HEAD + frames[0] + text[0], *text[1:-1], text[-1] + b"".join(tail) + _LAST_CHUNK]
    return ReplyPlan(tuple(writes), PACE)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

_FILLER = (
    "You are an interactive agent that helps users with software engineering tasks. Use the "
    "instructions below and the tools available to you to assist the user. Read files before "
    "editing them, prefer the dedicated tools over shell commands, keep answers short, and "
    "verify changes by running the project's tests when they exist. "
)


def _filler(n: int, salt: str = "") -> str:
    text = salt + _FILLER
    return (text * (n // len(text) + 1))[:n]


def _small_schema(name: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "target": {"type": "string", "description": f"What {name} acts on"},
            "options": {"type": "object", "description": "Optional settings"},
        },
        "required": ["target"],
        "additionalProperties": False,
    }


_OMITTED = re.compile(r"description \((\d+) chars\)")

#: Extra tool round trips inserted before the recorded one: (tool, input, result size).
_EXTRA_TURNS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("Read", {"file_path": "/home/user/project/src/app.py"}, 2600),
    ("Bash", {"command": "ls -la src", "description": "List source files"}, 900),
    ("Read", {"file_path": "/home/user/project/src/config.py"}, 2200),
    ("Bash", {"command": "python -m pytest -q", "description": "Run the tests"}, 1200),
)


def claude_code_body(model: str) -> dict[str, Any]:
    """A ~40 KB Claude Code request: the recorded tool round trip (05_…), its omitted tool
    descriptions and schemas restored (descriptions at their recorded length, small object
    schemas), a few more tool_use/tool_result turns, and the system prompt padded to size."""
    body: dict[str, Any] = json.loads(RECORDING.read_text())["body"]
    body.pop("_tool_names", None)
    body["model"] = model
    tools = []
    for tool in body["tools"]:
        if "_omitted" in tool:
            note = tool.pop("_omitted")
            match = _OMITTED.search(note)
            size = min(int(match.group(1)), 4000) if match else 200
            tool["description"] = _filler(size, f"The {tool['name']} tool. ")
            tool["input_schema"] = _small_schema(tool["name"])
        tools.append(tool)
    body["tools"] = tools

    messages: list[dict[str, Any]] = body["messages"]
    extra: list[dict[str, Any]] = []
    for i, (name, args, size) in enumerate(_EXTRA_TURNS):
        tool_id = f"toolu_bench{i:02d}{'0' * 16}"
        extra.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Step {i + 1}: let me use {name}."},
                    {"type": "tool_use", "id": tool_id, "name": name, "input": args},
                ],
            }
        )
        extra.append(
            {
                "role": "user",
                "content": [
                    {
                        "tool_use_id": tool_id,
                        "type": "tool_result",
                        "content": _filler(size, f"{i:>4}\t# output of {name}\n"),
                        "is_error": False,
                    }
                ],
            }
        )
    # Before the recorded last exchange (assistant tool_use + user tool_result).
    body["messages"] = messages[:-2] + extra + messages[-2:]

    system: list[dict[str, Any]] = body["system"]
    missing = BIG_BODY_BYTES - len(dumps(body))
    if missing > 0:
        system[-1]["text"] += "\n\n" + _filler(missing - 4)
    return body


def small_body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Say something about gateways."}],
    }
    if stream:
        body["stream"] = True
    return body


def anthropic_body(scenario: Scenario) -> dict[str, Any]:
    if scenario.key == "d":
        return claude_code_body(scenario.model)
    return small_body(scenario.model, scenario.stream)


def openai_body(scenario: Scenario) -> bytes:
    """The exact body vdm sends upstream for the scenario's request (vdm's own translator)."""
    from vdm.protocol.anthropic import MessagesRequest
    from vdm.protocol.capabilities import caps_for
    from vdm.protocol.codec import Target
    from vdm.protocol.openai_from_anthropic import chat_request_from_messages

    request = MessagesRequest.model_validate(anthropic_body(scenario))
    model = scenario.model
    target = Target("openai", model, caps_for("openai", model), model)
    return dumps(chat_request_from_messages(request, target))


def direct_request(scenario: Scenario, port: int) -> tuple[bytes, Expect]:
    """The OpenAI request vdm would send, rendered for the upstream, and its expected answer."""
    req = render_request("/v1/chat/completions", openai_body(scenario), port, DIRECT_HEADERS)
    return req, DIRECT_STREAM if scenario.stream else DIRECT_JSON


def vdm_request(scenario: Scenario, port: int) -> tuple[bytes, Expect]:
    """The scenario's Anthropic request, rendered for vdm, and its expected answer."""
    req = render_request("/v1/messages", dumps(anthropic_body(scenario)), port, VDM_HEADERS)
    return req, VDM_STREAM if scenario.stream else VDM_JSON
