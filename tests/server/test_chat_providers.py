"""Per-provider rules on the Chat Completions path, end to end.

The anthropic SDK drives vdm (real Hypercorn on loopback) the way Claude Code does; vdm calls a
strict fake of each provider (`FakeOpenAI(rules=family)`, tests/fakes/chat_rules.py) that
refuses what the real API refuses. Each family runs a two-turn tool loop, streamed and not:
turn 2 carries the assistant's content exactly as the client received it (thinking blocks
with their signatures, tool_use ids), then the tool result. The fake must accept turn 2, and
the same turn 2 with the rule undone must be one it rejects: the rule is what makes it pass.

A provider is configured by its preset name, and by a name of the user's own whose base URL
is the provider's real host (its family comes from the host). For that variant the host name
resolves to 127.0.0.1 in this process only: no packet leaves the machine.
"""

from __future__ import annotations

import copy
import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx
import pytest

from tests.fakes.chat_rules import check
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    SseReply,
    completion,
    stream_chunks,
)
from tests.harness import RunningVdm, running_vdm
from vdm.protocol.signatures import restore_tool_id, split_thought_id

KEY = "sk-upstream-chat-rules-7731"
# Compact, as providers write a call's arguments, and as vdm sends them back.
ARGS = json.dumps(
    {"command": "ls", "description": "List files in current directory"}, separators=(",", ":")
)
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
            "run_in_background": {"description": "Run in the background", "type": "boolean"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}
USER_ID = json.dumps(
    {"device_id": "c2f63c15", "account_uuid": "", "session_id": "03335b60-8b52-417b"},
    separators=(",", ":"),
)


@dataclass(frozen=True)
class Provider:
    """One provider family as the tests script it."""

    family: str
    model: str
    #: Its real OpenAI-compatible base URL (plain HTTP: the fake speaks no TLS).
    host: str
    #: The tool call id the provider gives its call.
    call_id: str
    #: Reasoning it returns with the call, and under which key.
    reasoning: str | None = None
    reasoning_key: str = "reasoning_content"
    #: Gemini's thought signature on the call (standard base64, `+`, `/` and `=` included).
    signature: str | None = None
    #: `{P}_…` settings beyond key and base URL, by suffix.
    settings: dict[str, str] = field(default_factory=dict)


PROVIDERS = {
    p.family: p
    for p in (
        Provider(
            "deepseek",
            "deepseek-v4-pro",
            "http://api.deepseek.com/v1",
            "call_00_q2VxR8mZcT4bW1nL6yJ3hK0d",
            reasoning="The user wants the files listed; I will run ls.",
        ),
        Provider(
            "moonshot",
            "kimi-k2-thinking",
            "http://api.moonshot.ai/v1",
            "functions.Bash:0",
            reasoning="Listing the directory answers this.",
        ),
        Provider(
            "gemini",
            "gemini-3-pro-preview",
            "http://generativelanguage.googleapis.com/v1beta/openai",
            "function-call-7215930731548151734",
            signature="CsIBAdHtim9+Yb0/Qx7r2k3T1Ma4+fUQ0xg9m0VYzZ9d8QO1w7Vv/wJjQbS2cA==",
            settings={"API_FORMAT": "openai"},
        ),
        Provider("mistral", "devstral-medium-latest", "http://api.mistral.ai/v1", "Qx7r2k3T1"),
        Provider(
            "groq",
            "openai/gpt-oss-120b",
            "http://api.groq.com/openai/v1",
            "fc_8b3f0c6e",
            reasoning="A listing is what they need.",
            reasoning_key="reasoning",
        ),
        Provider("xai", "grok-4", "http://api.x.ai/v1", "call_35094581"),
    )
}


# --- scripting the provider -------------------------------------------------------------------


def _tool_call_reply(p: Provider, stream: bool) -> JsonReply | SseReply:
    """The provider's answer to turn 1: (reasoning and) one Bash call, in its own shape."""
    calls = [("Bash", ARGS, p.call_id)]
    if not stream:
        body = completion(None, model=p.model, tool_calls=calls, reasoning_content=p.reasoning)
        message = body["choices"][0]["message"]
        if p.reasoning is not None:
            message[p.reasoning_key] = message.pop("reasoning_content")
        if p.signature:
            message["tool_calls"][0]["extra_content"] = {
                "google": {"thought_signature": p.signature}
            }
        return JsonReply(body)
    chunks = stream_chunks(
        "",
        model=p.model,
        tool_calls=calls,
        reasoning_content=p.reasoning,
        whole_calls=p.family == "gemini",
    )
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"] if chunk.get("choices") else {}
        if "reasoning_content" in delta:
            delta[p.reasoning_key] = delta.pop("reasoning_content")
        first = (delta.get("tool_calls") or [{}])[0]
        if p.signature and "id" in first:
            first["extra_content"] = {"google": {"thought_signature": p.signature}}
    return SseReply(chunks)


def _text_reply(p: Provider, stream: bool, text: str = "Listed: a.txt b.txt") -> Any:
    if stream:
        return SseReply(stream_chunks(text, model=p.model))
    return JsonReply(completion(text, model=p.model))


# --- driving vdm ------------------------------------------------------------------------------


@pytest.fixture
def loopback_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve the providers' real host names to 127.0.0.1 in this process (vdm runs in a
    thread of it), so a base URL can name the real host while the fake answers."""
    hosts = {urlsplit(p.host).hostname for p in PROVIDERS.values()}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host in hosts else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _env(p: Provider, fake: FakeOpenAI, naming: str) -> tuple[dict[str, str], str]:
    """vdm's settings and the model name the client asks for."""
    if naming == "preset":
        prefix, base_url = p.family.upper(), fake.base_url
    else:
        host = urlsplit(p.host)
        prefix, base_url = "CORP", p.host.replace(host.netloc, f"{host.netloc}:{fake.port}")
    env = {f"{prefix}_API_KEY": KEY, f"{prefix}_BASE_URL": base_url, "MAX_RETRIES": "0"}
    env.update({f"{prefix}_{k}": v for k, v in p.settings.items()})
    return env, f"{prefix.lower()}:{p.model}"


def _ask(client: anthropic.Anthropic, model: str, messages: list[Any], stream: bool) -> Any:
    """One request shaped like Claude Code's (adaptive thinking, effort, metadata, tools)."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": 8192,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": messages,
        "tools": [BASH],
        "metadata": {"user_id": USER_ID},
        "stop_sequences": ["\n\nHuman:"],
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


FIRST = [
    {"role": "user", "content": [{"type": "text", "text": "list the files"}]},
    {"role": "system", "content": [{"type": "text", "text": "# Environment\n - Platform: linux"}]},
]


def _turn_two(first: Any, *, keep_thinking: bool = True) -> list[Any]:
    """Turn 2 as Claude Code builds it: the assistant's content as received, then the result."""
    content = [b.model_dump(mode="json", exclude_none=True) for b in first.content]
    if not keep_thinking:
        content = [b for b in content if b["type"] != "thinking"]
    tool_use = next(b for b in content if b["type"] == "tool_use")
    result = {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "a.txt\nb.txt"}
    return [
        *FIRST,
        {"role": "assistant", "content": content},
        {"role": "user", "content": [result]},
    ]


@pytest.fixture
def client_for() -> Iterator[Callable[[RunningVdm], anthropic.Anthropic]]:
    clients: list[anthropic.Anthropic] = []

    def make(server: RunningVdm) -> anthropic.Anthropic:
        clients.append(anthropic.Anthropic(base_url=server.url, api_key="sk-cc", max_retries=0))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def _assistant(sent: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in sent["messages"] if m["role"] == "assistant")


def _tool_message(sent: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in sent["messages"] if m["role"] == "tool")


# --- what each rule must have done to turn 2, and its undoing ---------------------------------


def _expect(p: Provider, sent: dict[str, Any]) -> None:
    assistant, tool = _assistant(sent), _tool_message(sent)
    call = assistant["tool_calls"][0]
    assert tool["tool_call_id"] == call["id"]
    if p.family in ("deepseek", "moonshot"):
        assert assistant["reasoning_content"] == p.reasoning
    else:
        assert "reasoning_content" not in assistant
    if p.family == "deepseek":
        assert sent["thinking"] == {"type": "enabled"}
        assert sent["reasoning_effort"] == "high"
    if p.family == "gemini":
        assert call["id"] == p.call_id  # the base id, without the signature vdm carried
        assert call["extra_content"] == {"google": {"thought_signature": p.signature}}
        assert "additionalProperties" not in json.dumps(sent["tools"])
    if p.family == "mistral":
        assert call["id"] == p.call_id
        assert "user" not in sent and "stream_options" not in sent
    if p.family == "xai":
        assert "stop" not in sent
    if p.family in ("groq", "xai", "mistral"):
        assert all(
            m["role"] != "assistant" or "reasoning_content" not in m for m in sent["messages"]
        )


def _undo(p: Provider, sent: dict[str, Any]) -> dict[str, Any]:
    """Turn 2 as vdm would have sent it without the rule."""
    undone = copy.deepcopy(sent)
    assistant = _assistant(undone)
    if p.family in ("deepseek", "moonshot"):
        del assistant["reasoning_content"]
    elif p.family == "gemini":
        del assistant["tool_calls"][0]["extra_content"]
    elif p.family == "mistral":
        assistant["tool_calls"][0]["id"] = _tool_message(undone)["tool_call_id"] = "toolu_01AbCdEf"
    elif p.family == "groq":
        assistant["reasoning_content"] = p.reasoning
    elif p.family == "xai":
        undone["stop"] = ["\n\nHuman:"]
    return undone


# --- the two-turn loop, every family ----------------------------------------------------------


@pytest.mark.parametrize("naming", ["preset", "custom"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("family", list(PROVIDERS))
def test_two_turn_tool_loop(
    family: str,
    stream: bool,
    naming: str,
    request: pytest.FixtureRequest,
    client_for: Callable[[RunningVdm], anthropic.Anthropic],
) -> None:
    p = PROVIDERS[family]
    with FakeOpenAI(rules=family) as fake:
        if naming == "custom":
            request.getfixturevalue("loopback_dns")
        fake.enqueue(_tool_call_reply(p, stream), _text_reply(p, stream))
        env, model = _env(p, fake, naming)
        with running_vdm(env) as server:
            client = client_for(server)
            first = _ask(client, model, FIRST, stream)
            assert first.stop_reason == "tool_use"
            kinds = [b.type for b in first.content]
            assert kinds == (["thinking", "tool_use"] if p.reasoning else ["tool_use"])
            if p.reasoning:
                assert first.content[0].thinking == p.reasoning
                assert first.content[0].signature == "vdm-rc1"
            tool_use = first.content[-1]
            assert tool_use.input == json.loads(ARGS)
            base, signature = split_thought_id(tool_use.id)
            assert (restore_tool_id(base), signature) == (p.call_id, p.signature)
            assert re.fullmatch(r"[a-zA-Z0-9_-]+", tool_use.id), "Anthropic's id alphabet"

            second = _ask(client, model, _turn_two(first), stream)

        requests = fake.requests
        assert len(requests) == 2
        assert second.stop_reason == "end_turn", second
        assert second.content[0].text == "Listed: a.txt b.txt"
        sent = requests[1].json
        if naming == "custom":  # it went to the provider's host, as that provider
            assert requests[1].headers["host"] == f"{urlsplit(p.host).hostname}:{fake.port}"
        assert check(family, requests[0].json, requests[0].path) is None
        assert check(family, sent, requests[1].path) is None
        _expect(p, sent)
        assert check(family, _undo(p, sent), requests[1].path) is not None, "the rule is needed"


# --- reasoning that travels back: cache, restart ----------------------------------------------


def _first_turn(p: Provider, fake: FakeOpenAI, client: anthropic.Anthropic) -> Any:
    fake.enqueue(_tool_call_reply(p, False))
    return _ask(client, f"{p.family}:{p.model}", FIRST, False)


def _preset_env(p: Provider, fake: FakeOpenAI) -> dict[str, str]:
    return _env(p, fake, "preset")[0]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("family", ["deepseek", "moonshot"])
def test_a_dropped_thinking_block_is_restored_from_the_cache(
    family: str, stream: bool, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    """A client that drops thinking blocks from its history still gets turn 2 accepted: the
    gateway remembers the reasoning by tool call (id, name, input). Kimi's ids are
    predictable (`functions.Bash:0`), so its reasoning is never cached - another user's
    history could hold the same call - and the turn goes back with it empty, which Kimi
    takes."""
    p = PROVIDERS[family]
    with FakeOpenAI(rules=family) as fake, running_vdm(_preset_env(p, fake)) as server:
        client = client_for(server)
        fake.enqueue(_tool_call_reply(p, stream), _text_reply(p, stream))
        first = _ask(client, f"{family}:{p.model}", FIRST, stream)
        second = _ask(client, f"{family}:{p.model}", _turn_two(first, keep_thinking=False), stream)
    assert second.stop_reason == "end_turn"
    restored = p.reasoning if family == "deepseek" else ""
    assert _assistant(fake.requests[1].json)["reasoning_content"] == restored


@pytest.mark.parametrize("family", ["deepseek", "moonshot"])
def test_after_a_restart_the_client_history_carries_the_reasoning(
    family: str, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    """The thinking block Claude Code sends back verbatim is enough: a new gateway (empty
    cache) returns the same reasoning."""
    p = PROVIDERS[family]
    with FakeOpenAI(rules=family) as fake:
        with running_vdm(_preset_env(p, fake)) as server:
            first = _first_turn(p, fake, client_for(server))
        with running_vdm(_preset_env(p, fake)) as server:
            fake.enqueue(_text_reply(p, True))
            second = _ask(client_for(server), f"{family}:{p.model}", _turn_two(first), True)
    assert second.stop_reason == "end_turn"
    assert _assistant(fake.requests[1].json)["reasoning_content"] == p.reasoning


@pytest.mark.parametrize("family", ["deepseek", "moonshot"])
def test_after_a_restart_a_dropped_thinking_block_goes_back_empty(
    family: str, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    """Nothing left to restore (no thinking block, a new gateway): the turn carries an empty
    `reasoning_content`, which the provider takes, rather than none, which it refuses."""
    p = PROVIDERS[family]
    with FakeOpenAI(rules=family) as fake:
        with running_vdm(_preset_env(p, fake)) as server:
            first = _first_turn(p, fake, client_for(server))
        with running_vdm(_preset_env(p, fake)) as server:
            fake.enqueue(_text_reply(p, False))
            messages = _turn_two(first, keep_thinking=False)
            second = _ask(client_for(server), f"{family}:{p.model}", messages, False)
    assert second.stop_reason == "end_turn"
    sent = fake.requests[1].json
    assert _assistant(sent)["reasoning_content"] == ""
    assert check(family, _undo(p, sent), fake.requests[1].path) is not None


def test_deepseek_thinking_switched_off_sends_no_reasoning(
    client_for: Callable[[RunningVdm], anthropic.Anthropic],
) -> None:
    p = PROVIDERS["deepseek"]
    with FakeOpenAI(rules="deepseek") as fake, running_vdm(_preset_env(p, fake)) as server:
        fake.enqueue(_text_reply(p, False))
        message = client_for(server).messages.create(
            model=f"deepseek:{p.model}",
            max_tokens=100,
            messages=[
                {"role": "user", "content": "list"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
            ],
            tools=[BASH],  # type: ignore[list-item]
            extra_body={"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}},
        )
    assert message.stop_reason == "end_turn"
    sent = fake.last.json
    assert sent["thinking"] == {"type": "disabled"}
    assert "reasoning_effort" not in sent
    assert "reasoning_content" not in _assistant(sent)


# --- Gemini thought signatures ----------------------------------------------------------------


def test_gemini_signature_survives_a_gateway_restart(
    client_for: Callable[[RunningVdm], anthropic.Anthropic],
) -> None:
    """The signature rides in the tool_use id: a new gateway replays it byte for byte."""
    p = PROVIDERS["gemini"]
    with FakeOpenAI(rules="gemini") as fake:
        with running_vdm(_preset_env(p, fake)) as server:
            first = _first_turn(p, fake, client_for(server))
        with running_vdm(_preset_env(p, fake)) as server:
            fake.enqueue(_text_reply(p, True))
            second = _ask(client_for(server), f"gemini:{p.model}", _turn_two(first), True)
    assert second.stop_reason == "end_turn"
    call = _assistant(fake.requests[1].json)["tool_calls"][0]
    assert call == {
        "id": p.call_id,
        "type": "function",
        "function": {"name": "Bash", "arguments": ARGS},
        "extra_content": {"google": {"thought_signature": p.signature}},
    }


def test_gemini_calls_another_model_made_get_the_stand_in_signature(
    client_for: Callable[[RunningVdm], anthropic.Anthropic],
) -> None:
    """A session that switched to Gemini mid-turn: the earlier calls have no signature. The
    first call of each step gets the documented stand-in, the parallel ones nothing."""
    p = PROVIDERS["gemini"]
    messages = [
        {"role": "user", "content": "check both"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"command": "ls"}},
                {
                    "type": "tool_use",
                    "id": "toolu_01B",
                    "name": "Bash",
                    "input": {"command": "pwd"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "a"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "/"},
            ],
        },
    ]
    with FakeOpenAI(rules="gemini") as fake, running_vdm(_preset_env(p, fake)) as server:
        fake.enqueue(_text_reply(p, False))
        answer = _ask(client_for(server), f"gemini:{p.model}", messages, False)
    assert answer.stop_reason == "end_turn"
    first, second = _assistant(fake.last.json)["tool_calls"]
    assert first["extra_content"] == {
        "google": {"thought_signature": "skip_thought_signature_validator"}
    }
    assert "extra_content" not in second


# --- Mistral ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_mistral_takes_a_history_with_another_models_ids(
    stream: bool, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    """A session that switched to Devstral (`/model`): Claude's `toolu_…` and OpenAI's
    `call_…` ids become 9 letters or digits, the same in the calls and the results."""
    p = PROVIDERS["mistral"]
    ids = ["toolu_01XyZ9aBcDeFgHiJkLmN", "call_abc123DEF456ghi789", "Zz9Yy8Xx7"]
    calls = [{"type": "tool_use", "id": i, "name": "Bash", "input": {"command": "ls"}} for i in ids]
    results = [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": calls[:2]},
        {"role": "user", "content": results[:2]},
        {"role": "assistant", "content": calls[2:]},
        {"role": "user", "content": results[2:]},
    ]
    with FakeOpenAI(rules="mistral") as fake, running_vdm(_preset_env(p, fake)) as server:
        fake.enqueue(_text_reply(p, stream))
        answer = _ask(client_for(server), f"mistral:{p.model}", messages, stream)
    assert answer.stop_reason == "end_turn"
    sent = fake.last.json
    call_ids = [c["id"] for m in sent["messages"] for c in m.get("tool_calls") or ()]
    result_ids = [m["tool_call_id"] for m in sent["messages"] if m["role"] == "tool"]
    assert call_ids == result_ids
    assert len(set(call_ids)) == 3
    assert call_ids[2] == "Zz9Yy8Xx7"  # already valid: unchanged
    assert all(len(i) == 9 and i.isalnum() and i.isascii() for i in call_ids)


def test_the_fake_is_strict_about_what_vdm_no_longer_sends() -> None:
    """The hook itself: a refused request gets the provider's error, not a scripted reply."""
    with FakeOpenAI(rules="mistral") as fake:
        fake.enqueue(JsonReply(completion("never")))
        bad = {"model": "devstral", "messages": [{"role": "user", "content": "x"}], "user": "u"}
        response = httpx.post(f"{fake.base_url}/chat/completions", json=bad, timeout=5)
        assert response.status_code == 422
        assert response.json()["message"]["detail"][0]["loc"] == ["body", "user"]
        assert fake.queued == 1  # the scripted reply is still waiting
        good = {k: v for k, v in bad.items() if k != "user"}
        assert (
            httpx.post(f"{fake.base_url}/chat/completions", json=good, timeout=5).status_code == 200
        )
    with pytest.raises(ValueError, match="no rules"):
        FakeOpenAI(rules="nonesuch")


# --- review fixes: Gemini parallel calls, long tool names, failed finishes -----------------------


def test_gemini_parallel_calls_streamed_at_index_zero_stay_separate(
    client_for: Callable[[RunningVdm], anthropic.Anthropic],
) -> None:
    """Gemini's compat endpoint streams each parallel call whole at `index: 0`: the client
    gets two calls, and the next turn (both results) is one Gemini takes."""
    p = PROVIDERS["gemini"]
    calls = [
        ("Read", json.dumps({"file_path": "a.txt"}), "function-call-111"),
        ("Read", json.dumps({"file_path": "b.txt"}), "function-call-222"),
    ]
    chunks = stream_chunks("", model=p.model, tool_calls=calls, whole_calls=True)
    assert all(c["choices"][0]["delta"]["tool_calls"][0]["index"] == 0 for c in chunks[1:3])
    chunks[1]["choices"][0]["delta"]["tool_calls"][0]["extra_content"] = {
        "google": {"thought_signature": p.signature}
    }
    with FakeOpenAI(rules="gemini") as fake, running_vdm(_preset_env(p, fake)) as server:
        client = client_for(server)
        fake.enqueue(SseReply(chunks), _text_reply(p, True))
        first = _ask(client, f"gemini:{p.model}", FIRST, True)
        uses = [b for b in first.content if b.type == "tool_use"]
        assert [u.input for u in uses] == [{"file_path": "a.txt"}, {"file_path": "b.txt"}]
        results = [{"type": "tool_result", "tool_use_id": u.id, "content": "x"} for u in uses]
        assistant = [b.model_dump(mode="json", exclude_none=True) for b in first.content]
        messages = [
            *FIRST,
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": results},
        ]
        second = _ask(client, f"gemini:{p.model}", messages, True)
    assert second.stop_reason == "end_turn"
    sent = fake.requests[1].json
    ids = [c["id"] for c in _assistant(sent)["tool_calls"]]
    assert ids == ["function-call-111", "function-call-222"]
    assert check("gemini", sent, fake.requests[1].path) is None


#: A Claude Code plugin MCP tool: 77 characters (Anthropic allows 128, these 64).
MCP_TOOL = {
    "name": "mcp__plugin_chrome-devtools-mcp_chrome-devtools__performance_analyze_insight",
    "description": "Performance analyze insight",
    "input_schema": {"type": "object", "properties": {"insight": {"type": "string"}}},
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("family", ["openai", "groq", "gemini"])
def test_long_mcp_tool_names_round_trip(
    family: str, stream: bool, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    """The provider sees a 64-character alias (it refuses the real name); the client sees its
    tool's own name on the call, and the next turn's history uses the alias again."""
    model = {"openai": "gpt-4o", "groq": "openai/gpt-oss-120b", "gemini": "gemini-2.5-flash"}
    p = PROVIDERS.get(family) or Provider(family, model[family], "", "call_x")
    p = Provider(family, model[family], p.host, p.call_id, settings=p.settings)
    with FakeOpenAI(rules=family) as fake, running_vdm(_preset_env(p, fake)) as server:
        client = client_for(server)
        params: dict[str, Any] = {
            "model": f"{family}:{p.model}",
            "max_tokens": 1024,
            "tools": [BASH, MCP_TOOL],
            "messages": [{"role": "user", "content": "profile"}],
        }
        fake.enqueue(_text_reply(p, False))  # the first request only shows the alias
        client.messages.create(**params)
        alias = fake.last.json["tools"][1]["function"]["name"]
        assert len(alias) <= 64 and alias != MCP_TOOL["name"]
        calls = [(alias, json.dumps({"insight": "LCP"}), "call_00_q2VxR8mZcT4bW1nL6yJ3hK0d")]
        if stream:
            reply: Any = SseReply(stream_chunks("", model=p.model, tool_calls=calls))
        else:
            reply = JsonReply(completion(None, model=p.model, tool_calls=calls))
        fake.enqueue(reply, _text_reply(p, stream))
        first = _ask_with(client, params, stream)
        (use,) = [b for b in first.content if b.type == "tool_use"]
        assert use.name == MCP_TOOL["name"]
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "ok"}
        params["messages"] = [
            *params["messages"],
            {"role": "assistant", "content": [b.model_dump(mode="json") for b in first.content]},
            {"role": "user", "content": [result]},
        ]
        second = _ask_with(client, params, stream)
    assert second.stop_reason == "end_turn"
    sent = fake.last.json
    assert _assistant(sent)["tool_calls"][0]["function"]["name"] == alias
    assert check(family, sent, fake.last.path) is None


def _ask_with(client: anthropic.Anthropic, params: dict[str, Any], stream: bool) -> Any:
    if stream:
        with client.messages.stream(**params) as events:
            return events.get_final_message()
    return client.messages.create(**params)


def test_deepseek_cut_off_for_capacity_is_an_error_not_end_turn(
    client_for: Callable[[RunningVdm], anthropic.Anthropic],
) -> None:
    """`finish_reason: insufficient_system_resource`: a streamed answer ends with an
    `overloaded_error` event, a whole one is a 529; never a partial answer as `end_turn`."""
    p = PROVIDERS["deepseek"]
    cut = "insufficient_system_resource"
    with FakeOpenAI(rules="deepseek") as fake, running_vdm(_preset_env(p, fake)) as server:
        client = client_for(server)
        fake.enqueue(
            SseReply(stream_chunks("Half an ans", model=p.model, finish_reason=cut)),
            JsonReply(completion("Half an ans", model=p.model, finish_reason=cut)),
        )
        params: dict[str, Any] = {
            "model": f"deepseek:{p.model}",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        }
        with pytest.raises(anthropic.APIStatusError) as streamed:
            with client.messages.stream(**params) as events:
                events.get_final_message()
        assert "overloaded_error" in str(streamed.value.body)
        with pytest.raises(anthropic.APIStatusError) as whole:
            client.messages.create(**params)
        assert whole.value.status_code == 529


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_magistral_thinking_and_text_reach_the_client(
    stream: bool, client_for: Callable[[RunningVdm], anthropic.Anthropic]
) -> None:
    p = Provider("mistral", "magistral-medium-latest", "", "Qx7r2k3T1")
    kwargs: dict[str, Any] = {
        "model": p.model,
        "reasoning_content": "Two and two make four.",
        "typed_content": True,
    }
    reply = (
        SseReply(stream_chunks("It is 4.", **kwargs))
        if stream
        else JsonReply(completion("It is 4.", **kwargs))
    )
    with FakeOpenAI(rules="mistral") as fake, running_vdm(_preset_env(p, fake)) as server:
        fake.enqueue(reply)
        answer = _ask_with(
            client_for(server),
            {
                "model": f"mistral:{p.model}",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "2+2?"}],
            },
            stream,
        )
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[0].thinking == "Two and two make four."
    assert answer.content[1].text == "It is 4."
