"""The Bedrock backend's codecs: the InvokeModel path and body made from a canonical request,
the answer and the event stream decoded, and the refusals it recovers from.

Each body is also put to the strict fake's rules (tests/fakes/bedrock_upstream.py
`check_invoke`), which model what Bedrock refuses: a body the encoder makes must pass them,
and the same body with the encoder's change undone must not.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.compat.claude_code import BILLING, SYSTEM, TOOLS, USER_ID, opening
from tests.fakes.anthropic_upstream import anthropic_message, anthropic_stream_events
from tests.fakes.bedrock_upstream import BETAS, FIELDS, check_invoke, chunk_frames, exception_frame
from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.aws_eventstream import EventStreamDecoder, anthropic_event_of
from vdm.protocol.bedrock_from_anthropic import (
    DROP,
    NO_BETAS,
    claude_name,
    degradation_for,
    drop_path,
    foundation_id,
)
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.events import Event, InputJsonDelta, MessageEnd, TextDelta, ToolUseStart
from vdm.upstream.backends import backend, models_path, select
from vdm.upstream.backends.bedrock import BACKEND, count_tokens_call, model_segment, tokens_of
from vdm.upstream.failures import error_from_response

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS47 = "global.anthropic.claude-opus-4-7"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5"


def provider(**env: str) -> ProviderConfig:
    settings = Settings.from_mapping(
        {"BEDROCK_API_KEY": "ABSK-test", "AWS_REGION": "us-east-1", **env}
    )
    return settings.providers["bedrock"]


def tgt(model: str = SONNET) -> Target:
    return select(provider(), model, "claude-sonnet-4-5")[1]


def request(**fields: Any) -> MessagesRequest:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
        **fields,
    }
    return MessagesRequest.model_validate(body)


def encoded(req: MessagesRequest, target: Target | None = None) -> dict[str, Any]:
    data = json.loads(BACKEND.encode(req, target or tgt()))
    assert isinstance(data, dict)
    return data


def refusal(body: dict[str, Any], model: str = SONNET) -> str | None:
    return check_invoke(body, model, BETAS, FIELDS)


# -- addressing -----------------------------------------------------------------------------------


def test_the_registry_serves_it_and_the_provider_gets_bedrocks_runtime() -> None:
    p = provider()
    assert backend("bedrock") is BACKEND and not BACKEND.native_anthropic
    assert select(p, SONNET, SONNET)[0] is BACKEND
    assert p.base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert (p.auth, p.api_keys) == ("bearer", ("ABSK-test",))


@pytest.mark.parametrize(
    ("model", "segment"),
    [
        (SONNET, "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("anthropic.claude-opus-4-6-v1", "anthropic.claude-opus-4-6-v1"),
        # The ARN's `/` is quoted: Bedrock reads the id as one segment (anthropic-sdk#740).
        (ARN, "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fa1b2c3d4e5"),
    ],
)
def test_the_path_quotes_the_id_as_one_segment(model: str, segment: str) -> None:
    assert BACKEND.path(provider(), model, False) == f"/model/{segment}/invoke"
    stream = BACKEND.path(provider(), model, True)
    assert stream == f"/model/{segment}/invoke-with-response-stream"


@pytest.mark.parametrize(
    "model", ["", "..", "../foundation-models", "arn:x/../y", "a/", "m?x=1", "m#f", "a\\b", "a\nb"]
)
def test_an_id_that_would_address_another_resource_is_a_400(model: str) -> None:
    with pytest.raises(VdmError) as caught:
        model_segment(model)
    assert caught.value.status == 400 and "Bedrock's URL" in caught.value.message


def test_models_are_listed_by_the_control_plane_of_the_runtimes_region() -> None:
    assert models_path(provider()) == (
        "https://bedrock.us-east-1.amazonaws.com/foundation-models?byProvider=anthropic"
    )
    # Another endpoint (a gateway, a private one, the fake): the path on it.
    behind = provider(BEDROCK_BASE_URL="http://127.0.0.1:9")
    assert models_path(behind) == "/foundation-models?byProvider=anthropic"


# -- encoding -------------------------------------------------------------------------------------


def test_the_body_has_no_model_nor_stream_and_bedrocks_version() -> None:
    body = encoded(request(stream=True))
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert refusal(body) is None
    assert refusal({**body, "stream": True}) == (
        "Malformed input request: #: extraneous key [stream] is not permitted, please reformat "
        "your input and try again."
    )
    assert "required key [anthropic_version]" in str(
        refusal({k: v for k, v in body.items() if k != "anthropic_version"})
    )


def test_a_claude_code_request_is_made_one_bedrock_takes() -> None:
    """Claude Code's body (tests/compat/claude_code.py) with the betas a Bedrock client puts
    in it: the billing block, context edits that clear thinking, fields Bedrock refuses and
    betas it does not know are left out; the rest is kept as sent."""
    raw = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "system": SYSTEM,
        "messages": opening("list the files"),
        "tools": TOOLS,
        "metadata": {"user_id": USER_ID},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "anthropic_beta": [
            "claude-code-20250219",
            "interleaved-thinking-2025-05-14",
            "context-management-2025-06-27",
            "prompt-caching-scope-2026-01-05",
            "mcp-servers-2025-12-04",
        ],
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
        "speed": "fast",
        "stream": True,
    }
    body = encoded(MessagesRequest.model_validate(raw), tgt())
    assert refusal(body, SONNET) is None
    assert body["anthropic_beta"] == [
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
    ]
    assert not {"mcp_servers", "speed", "context_management", "model", "stream"} & set(body)
    assert body["system"] == SYSTEM[1:]  # no billing block, cache_control kept
    assert body["tools"] == TOOLS and body["metadata"] == {"user_id": USER_ID}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    # Each change undone is what Bedrock refuses.
    assert "invalid beta flag" in str(
        refusal({**body, "anthropic_beta": [*body["anthropic_beta"], "mcp-servers-2025-12-04"]})
    )
    assert "speed: Extra inputs are not permitted" in str(refusal({**body, "speed": "fast"}))
    assert "context_management" in str(
        refusal({**body, "context_management": raw["context_management"]})
    )
    assert "reserved keyword" in str(refusal({**body, "system": SYSTEM}))


def test_a_billing_header_string_system_loses_only_that_line() -> None:
    body = encoded(request(system=f"{BILLING}\nYou are helpful."))
    assert body["system"] == "You are helpful."
    assert "system" not in encoded(request(system=BILLING))


def test_compaction_edits_are_kept_and_betas_may_come_as_the_header_spells_them() -> None:
    management = {
        "edits": [
            {"type": "clear_tool_uses_20250919"},
            {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 150000}},
        ]
    }
    raw = {"context_management": management, "anthropic_beta": "compact-2026-01-12, bogus-1"}
    body = encoded(request(**raw))
    assert body["context_management"] == {"edits": [management["edits"][1]]}
    assert body["anthropic_beta"] == ["compact-2026-01-12"]


def test_the_request_is_fitted_to_the_claude_model_the_id_names() -> None:
    """`us.anthropic.claude-opus-4-7` is Opus 4.7 for the capability table: a thinking budget
    becomes adaptive thinking, as Opus 4.7 refuses budgets; an ARN says nothing of its model,
    so only `max_tokens` is fitted and the thinking is left as the client sent it."""
    thinking = {"type": "enabled", "budget_tokens": 2048}
    opus = encoded(request(thinking=thinking, max_tokens=200000), tgt(OPUS47))
    assert opus["thinking"] == {"type": "adaptive"}
    assert opus["max_tokens"] == 128000
    arn = encoded(request(thinking=thinking, max_tokens=200000), tgt(ARN))
    assert arn["thinking"] == thinking and arn["max_tokens"] == 200000


@pytest.mark.parametrize(
    ("model", "name", "bare"),
    [
        (SONNET, "claude-sonnet-4-5-20250929", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6", "anthropic.claude-opus-4-6-v1"),
        ("anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"),
        (
            "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "claude-3-5-sonnet-20240620",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (ARN, ARN, None),
        ("gpt-4o", "gpt-4o", None),
    ],
)
def test_bedrock_ids_name_their_claude_model(model: str, name: str, bare: str | None) -> None:
    assert claude_name(model) == name
    assert foundation_id(model) == bare


# -- recovery -------------------------------------------------------------------------------------


def bedrock_400(message: str) -> VdmError:
    headers = {"x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/"}
    return error_from_response("bedrock", 400, json.dumps({"message": message}).encode(), headers)


@pytest.mark.parametrize(
    ("message", "degradation"),
    [
        ("The model returned the following errors: invalid beta flag", NO_BETAS),
        (
            "The model returned the following errors: context_management: Extra inputs are "
            "not permitted",
            DROP + "context_management",
        ),
        (
            "tools.0.custom.defer_loading: Extra inputs are not permitted",
            DROP + "tools.0.custom.defer_loading",
        ),
        (
            "Malformed input request: #/tools/0: extraneous key [strict] is not permitted, "
            "please reformat your input and try again.",
            DROP + "tools.0.strict",
        ),
        ("The provided model identifier is invalid.", None),
    ],
)
def test_a_refusal_naming_what_bedrock_refused_is_recovered_from(
    message: str, degradation: str | None
) -> None:
    error = bedrock_400(message)
    assert error.message.startswith("bedrock returned HTTP 400: ValidationException: ")
    assert BACKEND.recover(error, tgt()) == degradation
    assert degradation_for(message) == degradation


def test_the_retry_leaves_out_what_was_refused() -> None:
    target = tgt()
    req = request(
        anthropic_beta=["interleaved-thinking-2025-05-14"],
        metadata={"user_id": "u"},
        tools=[{"name": "Bash", "input_schema": {"type": "object"}, "defer_loading": True}],
    )
    target.degraded |= {NO_BETAS, DROP + "metadata", DROP + "tools.0.custom.defer_loading"}
    body = encoded(req, target)
    assert "anthropic_beta" not in body and "metadata" not in body
    assert body["tools"] == [{"name": "Bash", "input_schema": {"type": "object"}}]


def test_dropping_a_path_never_removes_a_whole_message_or_tool() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": [{"a": 1}]}
    for path in ("messages.0", "tools.0", "tools.3.a", "nothing.here"):
        drop_path(body, path.split("."))
    assert body == {"messages": [{"role": "user", "content": "x"}], "tools": [{"a": 1}]}


def test_other_errors_are_not_recovered_from() -> None:
    throttled = error_from_response(
        "bedrock",
        429,
        b'{"message":"Too many requests, please wait before trying again."}',
        {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/"},
    )
    assert throttled.status == 429 and throttled.code == "ThrottlingException"
    assert BACKEND.recover(throttled, tgt()) is None


# -- errors ---------------------------------------------------------------------------------------


def test_a_403_names_the_aws_error_and_says_what_aws_said() -> None:
    error = error_from_response(
        "bedrock",
        403,
        b'{"Message":"User: arn:aws:iam::123456789012:user/dev is not authorized to perform: '
        b'bedrock:InvokeModel"}',
        {"x-amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/coral/"},
    )
    assert (error.status, error.error_type) == (403, "permission_error")
    assert error.message == (
        "bedrock returned HTTP 403: AccessDeniedException: User: arn:aws:iam::123456789012:"
        "user/dev is not authorized to perform: bedrock:InvokeModel"
    )


def test_bedrocks_too_long_is_claude_codes_prompt_is_too_long() -> None:
    error = bedrock_400("Input is too long for requested model.")
    assert error.overflow and error.message.startswith("prompt is too long")


# -- decoding -------------------------------------------------------------------------------------


def test_the_answer_is_the_anthropic_message_with_the_clients_model() -> None:
    answer = anthropic_message("Hi there", model="claude-sonnet-4-5-20250929")
    message = BACKEND.decode(answer, request(), tgt())
    assert message["content"] == [{"type": "text", "text": "Hi there"}]
    assert message["model"] == "claude-sonnet-4-5"


def stream_bytes(*frames: bytes) -> bytes:
    return b"".join(frames)


def decode_all(data: bytes, step: int | None = None) -> list[Event]:
    decoder = BACKEND.stream_decoder(request(), tgt())
    events: list[Event] = []
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        events += decoder.feed(piece)
    events += decoder.finish()
    return events


TOOL = ("Bash", '{"command":"ls -la"}', "toolu_01A")


@pytest.mark.parametrize("step", [None, 1, 7])
def test_chunk_frames_decode_into_canonical_events_however_split(step: int | None) -> None:
    frames = chunk_frames(anthropic_stream_events("Listing", tool_use=TOOL, input_tokens=30))
    events = decode_all(stream_bytes(*frames), step)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    args = "".join(e.partial_json for e in events if isinstance(e, InputJsonDelta))
    assert text == "Listing" and json.loads(args) == {"command": "ls -la"}
    assert [e.name for e in events if isinstance(e, ToolUseStart)] == ["Bash"]
    end = events[-1]
    assert isinstance(end, MessageEnd) and end.stop_reason == "tool_use"
    assert end.usage["input_tokens"] == 30


def test_the_invocation_metrics_of_message_stop_are_no_event() -> None:
    frames = chunk_frames(anthropic_stream_events("Hi"))
    (stop,) = EventStreamDecoder().feed(frames[-1])
    assert b"amazon-bedrock-invocationMetrics" in (anthropic_event_of(stop) or b"")
    decoder = BACKEND.stream_decoder(request(), tgt())
    events = decoder.feed(stream_bytes(*frames))
    assert decoder.done and isinstance(events[-1], MessageEnd)
    assert events[-1].usage["input_tokens"] == 12


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [
        ("throttlingException", 429, "rate_limit_error"),
        ("serviceUnavailableException", 529, "overloaded_error"),
        ("validationException", 400, "invalid_request_error"),
        ("internalServerException", 500, "api_error"),
    ],
)
def test_an_exception_frame_is_an_error_of_its_status(
    kind: str, status: int, error_type: str
) -> None:
    start = chunk_frames(anthropic_stream_events("Hello there", pieces=2))[:3]
    data = stream_bytes(*start, exception_frame(kind, "Too many requests, please wait."))
    decoder = BACKEND.stream_decoder(request(), tgt())
    # The events before the exception frame come out first (the client sees the text), then
    # the stream ends with the upstream's error.
    events = decoder.feed(data)
    assert any(getattr(e, "text", None) for e in events), events
    with pytest.raises(VdmError) as caught:
        decoder.finish()
    assert (caught.value.status, caught.value.error_type) == (status, error_type)
    assert caught.value.message == f"{kind}: Too many requests, please wait."


def test_a_model_stream_error_takes_the_models_own_status() -> None:
    frame = exception_frame(
        "modelStreamErrorException", "overloaded", originalStatusCode=529, originalMessage="x"
    )
    with pytest.raises(VdmError) as caught:
        BACKEND.stream_decoder(request(), tgt()).feed(frame)
    assert caught.value.status == 529


def test_a_corrupt_frame_or_a_body_cut_inside_one_is_a_502() -> None:
    frames = chunk_frames(anthropic_stream_events("Hi"))
    bad = bytearray(frames[1])
    bad[-6] ^= 0xFF  # inside the payload: the message checksum no longer matches
    with pytest.raises(VdmError) as caught:
        BACKEND.stream_decoder(request(), tgt()).feed(frames[0] + bytes(bad))
    assert caught.value.status == 502 and "checksum" in caught.value.message
    decoder = BACKEND.stream_decoder(request(), tgt())
    decoder.feed(frames[0] + frames[1][:10])
    with pytest.raises(VdmError) as cut:
        decoder.finish()
    assert cut.value.status == 502 and "inside a message" in cut.value.message


def test_a_stream_that_ends_before_message_stop_is_a_502() -> None:
    frames = chunk_frames(anthropic_stream_events("Hi"))[:-1]
    with pytest.raises(VdmError) as caught:
        decode_all(stream_bytes(*frames))
    assert caught.value.status == 502


def test_a_chunk_without_bytes_is_a_502_not_a_crash() -> None:
    from vdm.protocol.aws_eventstream import encode_message

    frame = encode_message(
        {":event-type": "chunk", ":message-type": "event", ":content-type": "application/json"},
        b'{"p":"abc"}',
    )
    with pytest.raises(VdmError) as caught:
        BACKEND.stream_decoder(request(), tgt()).feed(frame)
    assert caught.value.status == 502 and "bytes" in caught.value.message


# -- count tokens ---------------------------------------------------------------------------------


def test_count_tokens_asks_for_the_bare_foundation_id_with_the_invoke_body() -> None:
    call = count_tokens_call({"model": "x", "messages": [{"role": "user", "content": "Hi"}]}, tgt())
    assert call is not None
    path, raw = call
    assert path == "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens"
    invoke = json.loads(base64.b64decode(json.loads(raw)["input"]["invokeModel"]["body"]))
    assert refusal(invoke) is None and "model" not in invoke
    assert count_tokens_call({"messages": []}, tgt(ARN)) is None
    assert tokens_of({"inputTokens": 17}) == 17
    with pytest.raises(VdmError):
        tokens_of({"input_tokens": 17})
