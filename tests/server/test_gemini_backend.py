"""The native Gemini backend end to end: the anthropic SDK drives vdm (real Hypercorn on
loopback) the way Claude Code does; vdm calls a strict fake of the Gemini API
(tests/fakes/gemini_upstream.py) that refuses what the real API refuses.

Turn 2 of every tool loop is built as Claude Code builds it: the assistant content exactly as
the client received it (thinking blocks with their signatures, tool_use ids), then the tool
results. The fake must accept it, and where a rule makes it pass, the same turn with the rule
undone must be refused.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.gemini_upstream import (
    FakeGemini,
    GeminiReply,
    blocked_response,
    call_part,
    check_request,
    gemini_error,
    text_part,
    thought_part,
    thought_signature,
    usage_metadata,
)
from tests.harness import PROTOCOL, RunningVdm, running_vdm
from tests.protocol.grammar import check_grammar
from tests.server.test_recorded_claude_code import restore
from vdm.config.settings import Settings
from vdm.protocol.signatures import id_with_thought, pack_thought, split_thought_id

KEY = "AIzaSy-fake-gemini-key-0042"
PRO3 = "gemini-3-pro-preview"
FLASH25 = "gemini-2.5-flash"
SIG = thought_signature("call")
SIG_THOUGHT = thought_signature("thought")
ARGS = {"command": "ls", "description": "List files in current directory"}
#: Claude Code 2.1.330's Bash tool schema as it sends it (`$schema`, `additionalProperties`).
BASH = {
    "name": "Bash",
    "description": "Executes a given bash command and returns its output.",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "command": {"description": "The command to execute", "type": "string"},
            "timeout": {"description": "Optional timeout in milliseconds", "type": "number"},
            "description": {"description": "What this command does", "type": "string"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}
READ = {
    "name": "Read",
    "description": "Reads a file.",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}},
        "required": ["file_path"],
    },
}
FIRST = [
    {"role": "user", "content": [{"type": "text", "text": "list the files"}]},
    {"role": "system", "content": [{"type": "text", "text": "# Environment\n - Platform: linux"}]},
]


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


def env(fake: FakeGemini, **extra: str) -> dict[str, str]:
    return {"GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": fake.base_url, "MAX_RETRIES": "0", **extra}


@pytest.fixture
def server(gemini: FakeGemini) -> Iterator[RunningVdm]:
    with running_vdm(env(gemini)) as running:
        yield running


@pytest.fixture
def client_for() -> Iterator[Callable[[RunningVdm], anthropic.Anthropic]]:
    clients: list[anthropic.Anthropic] = []

    def make(running: RunningVdm) -> anthropic.Anthropic:
        clients.append(anthropic.Anthropic(base_url=running.url, api_key="sk-cc", max_retries=0))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(server: RunningVdm, client_for: Callable[[RunningVdm], anthropic.Anthropic]) -> Any:
    return client_for(server)


def ask(
    client: anthropic.Anthropic,
    messages: list[Any],
    stream: bool,
    model: str = PRO3,
    tools: list[Any] | None = None,
) -> Any:
    """One request shaped like Claude Code's (adaptive thinking, effort, metadata, tools)."""
    params: dict[str, Any] = {
        "model": f"gemini:{model}",
        "max_tokens": 16000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330;"},
            {
                "type": "text",
                "text": "You are Claude Code.",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": messages,
        "tools": tools or [BASH],
        "metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s"})},
        "extra_body": {
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        },
    }
    if stream:
        with client.messages.stream(**params) as events:
            return events.get_final_message()
    return client.messages.create(**params)


def turn_two(first: Any, *, keep_thinking: bool = True) -> list[Any]:
    """Turn 2 as Claude Code builds it: the assistant's content as received, then results."""
    content = [b.model_dump(mode="json", exclude_none=True) for b in first.content]
    if not keep_thinking:
        content = [b for b in content if b["type"] != "thinking"]
    results = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": f"output of {b['name']}"}
        for b in content
        if b["type"] == "tool_use"
    ]
    return [*FIRST, {"role": "assistant", "content": content}, {"role": "user", "content": results}]


def model_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    return next(c["parts"] for c in body["contents"] if c["role"] == "model")


def tool_call_reply(model: str) -> GeminiReply:
    """Turn 1: Gemini 3 signs the call itself; 2.5 signs the thought before it."""
    if model == PRO3:
        parts = [thought_part("I will list the files."), call_part("Bash", ARGS, signature=SIG)]
    else:
        parts = [thought_part("I will list the files.", signature=SIG), call_part("Bash", ARGS)]
    return GeminiReply(parts, model=model)


# --- the tool loop ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [PRO3, FLASH25])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_two_turn_tool_loop(
    gemini: FakeGemini, client: anthropic.Anthropic, stream: bool, model: str
) -> None:
    gemini.enqueue(tool_call_reply(model), GeminiReply([text_part("Listed: a.txt b.txt")]))
    first = ask(client, FIRST, stream, model)
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.content[0].thinking == "I will list the files."
    tool_use = first.content[1]
    assert tool_use.input == ARGS
    assert split_thought_id(tool_use.id)[1] == SIG

    second = ask(client, turn_two(first), stream, model)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Listed: a.txt b.txt"
    assert gemini.rejected == []

    one, two = gemini.requests
    suffix = ":streamGenerateContent" if stream else ":generateContent"
    assert two.path == f"/v1beta/models/{model}{suffix}"
    assert two.query == ("alt=sse" if stream else "")
    assert two.headers["x-goog-api-key"] == KEY and "authorization" not in two.headers
    sent = two.json
    assert sent["systemInstruction"] == {"parts": [{"text": "You are Claude Code."}]}
    assert model_parts(sent) == [
        {"functionCall": {"name": "Bash", "args": ARGS}, "thoughtSignature": SIG},
    ]
    answer = sent["contents"][2]
    assert answer == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "Bash", "response": {"output": "output of Bash"}}},
        ],
    }
    thinking = one.json["generationConfig"]["thinkingConfig"]
    if model == PRO3:
        assert thinking == {"thinkingLevel": "high", "includeThoughts": True}
        undone = copy.deepcopy(sent)
        del model_parts(undone)[0]["thoughtSignature"]
        assert check_request(undone, model) is not None, "the signature is needed"
    else:
        assert thinking == {"thinkingBudget": 24576, "includeThoughts": True}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_parallel_calls(gemini: FakeGemini, client: anthropic.Anthropic, stream: bool) -> None:
    calls = [
        call_part("Read", {"file_path": "a.txt"}, signature=SIG),
        call_part("Read", {"file_path": "b.txt"}),
        call_part("Bash", ARGS),
    ]
    gemini.enqueue(GeminiReply(calls), GeminiReply([text_part("Both read.")]))
    first = ask(client, FIRST, stream, tools=[BASH, READ])
    tools = [b for b in first.content if b.type == "tool_use"]
    assert [(t.name, t.input) for t in tools] == [
        ("Read", {"file_path": "a.txt"}),
        ("Read", {"file_path": "b.txt"}),
        ("Bash", ARGS),
    ]
    assert len({t.id for t in tools}) == 3
    second = ask(client, turn_two(first), stream, tools=[BASH, READ])
    assert second.content[0].text == "Both read."
    assert gemini.rejected == []
    sent = gemini.requests[1].json
    assert [p.get("thoughtSignature") for p in model_parts(sent)] == [SIG, None, None]
    responses = [p["functionResponse"] for p in sent["contents"][2]["parts"]]
    assert [r["name"] for r in responses] == ["Read", "Read", "Bash"]


def test_the_signatures_need_no_gateway_state(
    gemini: FakeGemini, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    """Turn 2 on a new gateway (a restart, or `vdm wrap` started again) is still accepted:
    everything Gemini needs back travels in the client's own history."""
    gemini.enqueue(
        GeminiReply(
            [
                thought_part("Planning.", signature=SIG_THOUGHT),
                text_part("Listing."),
                call_part("Bash", ARGS, signature=SIG),
            ]
        ),
        GeminiReply([text_part("Done.")]),
    )
    with running_vdm(env(gemini)) as first_gateway:
        first = ask(client_for(first_gateway), FIRST, True)
    with running_vdm(env(gemini)) as second_gateway:
        second = ask(client_for(second_gateway), turn_two(first), True)
    assert second.stop_reason == "end_turn"
    assert gemini.rejected == []
    assert model_parts(gemini.requests[1].json) == [
        {"text": "Listing.", "thoughtSignature": SIG_THOUGHT},
        {"functionCall": {"name": "Bash", "args": ARGS}, "thoughtSignature": SIG},
    ]


def test_a_client_that_drops_thinking_blocks_still_carries_the_call_signature(
    gemini: FakeGemini, client: anthropic.Anthropic
) -> None:
    gemini.enqueue(tool_call_reply(PRO3), GeminiReply([text_part("ok")]))
    first = ask(client, FIRST, False)
    ask(client, turn_two(first, keep_thinking=False), False)
    assert gemini.rejected == []
    assert model_parts(gemini.requests[1].json)[0]["thoughtSignature"] == SIG


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_session_that_switched_model_sends_the_stand_in(
    gemini: FakeGemini, client: anthropic.Anthropic, stream: bool
) -> None:
    """The calls of the current turn were made by another model (its ids carry no Gemini
    signature): the first call of the step gets `skip_thought_signature_validator`."""
    gemini.enqueue(GeminiReply([text_part("Continuing.")]))
    messages = [
        *FIRST,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "EqQBCkYIBxgCKkB"},
                {"type": "tool_use", "id": "toolu_01AbCdEf", "name": "Bash", "input": ARGS},
                {"type": "tool_use", "id": "toolu_01GhIjKl", "name": "Bash", "input": ARGS},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01AbCdEf", "content": "a"},
                {"type": "tool_result", "tool_use_id": "toolu_01GhIjKl", "content": "b"},
            ],
        },
    ]
    answer = ask(client, messages, stream)
    assert answer.content[0].text == "Continuing."
    assert gemini.rejected == []
    sent = gemini.requests[0].json
    parts = model_parts(sent)
    assert [p.get("thoughtSignature") for p in parts] == ["skip_thought_signature_validator", None]
    undone = copy.deepcopy(sent)
    del model_parts(undone)[0]["thoughtSignature"]
    assert check_request(undone, PRO3) is not None, "the stand-in is needed"


def test_claude_codes_own_request_is_accepted(gemini: FakeGemini, server: RunningVdm) -> None:
    """A recorded Claude Code request, with its real tool list (schemas with `$schema` and
    `additionalProperties`), its system entries and an earlier turn by another model."""
    path = PROTOCOL / "claude-code" / "05_tool_roundtrip_req2_tool_result.json"
    if not path.exists():
        pytest.skip(f"no recorded Claude Code traffic at {path}")
    body = restore(json.loads(path.read_text())["body"])
    body["model"] = f"gemini:{PRO3}"
    gemini.enqueue(GeminiReply([text_part("hello")]))
    with httpx.stream(
        "POST", f"{server.url}/v1/messages?beta=true", json=body, timeout=30
    ) as response:
        assert response.status_code == 200
        raw = response.read()
    result = check_grammar(raw)
    assert result.text == "hello"
    assert gemini.rejected == []
    declarations = gemini.requests[0].json["tools"][0]["functionDeclarations"]
    # Claude Code's DeferredToolPlaceholder (`defer_loading`, never loaded) is not sent.
    loaded = [t["name"] for t in body["tools"] if not t.get("defer_loading")]
    assert [d["name"] for d in declarations] == loaded


# --- usage, finish reasons ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_usage_with_cached_tokens(
    gemini: FakeGemini, client: anthropic.Anthropic, stream: bool
) -> None:
    usage = usage_metadata(prompt=12000, candidates=40, thoughts=210, cached=10000)
    gemini.enqueue(GeminiReply([text_part("ok")], usage=usage))
    message = ask(client, FIRST, stream)
    assert message.usage.input_tokens == 2000
    assert message.usage.cache_read_input_tokens == 10000
    assert message.usage.output_tokens == 250


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize(
    ("reply", "stop", "text"),
    [
        (GeminiReply([text_part("cut")], finish_reason="MAX_TOKENS"), "max_tokens", "cut"),
        (GeminiReply([text_part("Once upon")], finish_reason="SAFETY"), "refusal", "Once upon"),
        (
            GeminiReply(raw=blocked_response("SAFETY")),
            "refusal",
            "[Gemini blocked the request: SAFETY]",
        ),
        (
            GeminiReply(finish_reason="MALFORMED_FUNCTION_CALL", finish_message="Malformed call."),
            "end_turn",
            "[Gemini stopped (MALFORMED_FUNCTION_CALL): Malformed call.]",
        ),
    ],
    ids=["max-tokens", "safety", "blocked-prompt", "malformed-call"],
)
def test_finish_reasons(
    gemini: FakeGemini,
    client: anthropic.Anthropic,
    stream: bool,
    reply: GeminiReply,
    stop: str,
    text: str,
) -> None:
    gemini.enqueue(reply)
    message = ask(client, FIRST, stream)
    assert message.stop_reason == stop
    assert "".join(b.text for b in message.content if b.type == "text") == text


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_google_400_reaches_the_client_with_its_message(
    gemini: FakeGemini, client: anthropic.Anthropic, stream: bool
) -> None:
    message = "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
    gemini.enqueue(gemini_error(400, message))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, FIRST, stream)
    assert message in caught.value.body["error"]["message"]  # type: ignore[index]


def test_a_google_429_is_a_rate_limit_error(
    gemini: FakeGemini, client: anthropic.Anthropic
) -> None:
    quota = "Resource has been exhausted (e.g. check quota)."
    gemini.enqueue(gemini_error(429, quota))
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client, FIRST, False)
    assert quota in caught.value.body["error"]["message"]  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_a_wrong_key_is_reported_without_the_key(
    gemini: FakeGemini, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    wrong = "AIzaSy-not-the-right-one-9913"
    with running_vdm(env(gemini, GEMINI_API_KEY=wrong)) as running:
        with pytest.raises(anthropic.BadRequestError) as caught:
            ask(client_for(running), FIRST, False)
    text = json.dumps(caught.value.body)
    assert "API key not valid. Please pass a valid API key." in text
    assert wrong not in text


def test_an_unknown_model_is_a_404(gemini: FakeGemini, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(client, FIRST, False, model="palm-2")
    assert "models/palm-2 is not found" in caught.value.body["error"]["message"]  # type: ignore[index]


def _raw_stream(server: RunningVdm) -> bytes:
    body = {
        "model": f"gemini:{PRO3}",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "tell me a story"}],
    }
    with httpx.stream("POST", f"{server.url}/v1/messages", json=body, timeout=30) as response:
        assert response.status_code == 200
        return response.read()


def _sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    frames = raw.decode().split("\n\n")[:-1]
    return [(f.split("\n")[0][7:], json.loads(f.split("\n")[1][6:])) for f in frames]


def test_a_cut_stream_ends_with_an_error_event(gemini: FakeGemini, server: RunningVdm) -> None:
    gemini.enqueue(GeminiReply([text_part("Once upon a time there was")], cut_after=2))
    events = _sse(_raw_stream(server))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error" and "message_stop" not in names
    assert events[-1][1]["error"]["type"] == "api_error"


def test_an_error_inside_the_stream_is_an_error_event(
    gemini: FakeGemini, server: RunningVdm
) -> None:
    overloaded = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    gemini.enqueue(GeminiReply([text_part("Once")], finish_reason=None, extra=[overloaded]))
    events = _sse(_raw_stream(server))
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert "The model is overloaded." in events[-1][1]["error"]["message"]


def test_a_whole_stream_follows_the_anthropic_grammar(
    gemini: FakeGemini, server: RunningVdm
) -> None:
    gemini.enqueue(
        GeminiReply(
            [
                thought_part("Let me think about a story.", signature=SIG_THOUGHT),
                text_part("Once upon a time."),
            ],
            pieces=4,
        )
    )
    result = check_grammar(_raw_stream(server))
    assert [b.type for b in result.blocks] == ["thinking", "text"]
    assert result.thinking == "Let me think about a story."
    assert result.text == "Once upon a time."


# --- the preset -----------------------------------------------------------------------------------


def test_the_gemini_preset_speaks_the_native_api() -> None:
    native = Settings.from_mapping({"GEMINI_API_KEY": KEY}).providers["gemini"]
    assert (native.api_format, native.auth) == ("gemini", "x-goog-api-key")
    assert native.base_url == "https://generativelanguage.googleapis.com/v1beta"
    compat = Settings.from_mapping({"GEMINI_API_KEY": KEY, "GEMINI_API_FORMAT": "openai"})
    assert compat.providers["gemini"].base_url == (
        "https://generativelanguage.googleapis.com/v1beta/openai"
    )
    assert compat.providers["gemini"].auth == "bearer"


def test_models_are_listed_from_the_native_api(gemini: FakeGemini, server: RunningVdm) -> None:
    response = httpx.get(f"{server.url}/v1/models", params={"provider": "gemini"}, timeout=10)
    assert response.status_code == 200, response.text
    ids = [m["id"] for m in response.json()["data"]]
    assert "gemini:gemini-3-pro-preview" in ids
    assert gemini.last.headers["x-goog-api-key"] == KEY


def test_a_context_overflow_is_worded_so_claude_code_compacts(
    gemini: FakeGemini, client: anthropic.Anthropic
) -> None:
    too_long = (
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    )
    gemini.enqueue(gemini_error(400, too_long))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(client, FIRST, True)
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith("prompt is too long: 1200000 tokens > 1048576 maximum"), message


# --- a signature Gemini cannot verify ---------------------------------------------------------

#: A real-looking signature minted under another key or model: the fake never issued it.
FOREIGN = base64.b64encode(b"\x12\x34signed-by-another-key" * 3).decode()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_signature_from_another_key_does_not_break_the_session(
    gemini: FakeGemini,
    client: anthropic.Anthropic,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """History signed under another key or model: Gemini answers "Corrupted thought
    signature."; vdm sends the turn again with no signature replayed and the documented
    stand-in on the first call of the step, on every later turn too."""
    caplog.set_level(logging.INFO)
    messages = [
        *FIRST,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Plan.", "signature": pack_thought(FOREIGN)},
                {"type": "text", "text": "Listing."},
                {
                    "type": "tool_use",
                    "id": id_with_thought("call_1", FOREIGN),
                    "name": "Bash",
                    "input": ARGS,
                },
                {"type": "tool_use", "id": "call_2", "name": "Bash", "input": ARGS},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": id_with_thought("call_1", FOREIGN)},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "b"},
            ],
        },
    ]
    for n in range(2):
        gemini.enqueue(GeminiReply([text_part("Continuing.")]))
        answer = ask(client, messages, stream)
        assert answer.content[-1].text == "Continuing."
        assert len(gemini.rejected) == n + 1
    assert [message for _, message in gemini.rejected] == ["Corrupted thought signature."] * 2
    served = gemini.served()
    assert len(served) == 2
    parts = model_parts(served[0])
    assert [p.get("thoughtSignature") for p in parts] == [
        None,
        "skip_thought_signature_validator",
        None,
    ]
    assert "Listing." in json.dumps(parts) and FOREIGN not in json.dumps(served[0])
    assert any("retrying with skip-signatures" in r.getMessage() for r in caplog.records)


def test_a_signature_that_is_not_the_problem_is_not_retried(
    gemini: FakeGemini, client: anthropic.Anthropic
) -> None:
    """Any other 400 reaches the client at once: one upstream call."""
    gemini.enqueue(gemini_error(400, "Request contains an invalid argument."))
    with pytest.raises(anthropic.BadRequestError):
        ask(client, [{"role": "user", "content": "hi"}], False)
    assert len(gemini.requests) == 1
