"""The Vertex backend's codecs: the rawPredict path and body made from a canonical request, the
betas it passes in `anthropic-beta`, count-tokens, Google-shaped errors, and the refusals it
recovers from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.compat.claude_code import SYSTEM
from tests.fakes.anthropic_upstream import anthropic_message
from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.vertex_from_anthropic import (
    ANTHROPIC_VERSION,
    NO_BETA,
    claude_name,
    degradation_for,
    vertex_id,
)
from vdm.upstream.backends import backend, counter, models_path, request_headers, select
from vdm.upstream.backends.vertex import BACKEND, count_tokens_call, tokens_of
from vdm.upstream.failures import error_from_response

SONNET = "claude-sonnet-4-5-20250929"
PREFIX = "/projects/proj-1/locations/us-east5/publishers/anthropic/models"


def provider(**env: str) -> ProviderConfig:
    settings = Settings.from_mapping(
        {
            "VERTEX_API_KEY": "ya29.test",
            "VERTEX_PROJECT": "proj-1",
            "VERTEX_LOCATION": "us-east5",
            **env,
        }
    )
    return settings.providers["vertex"]


def tgt(model: str = SONNET, betas: tuple[str, ...] = ()) -> Target:
    target = select(provider(), model, "claude-sonnet-4-5")[1]
    target.betas = betas
    return target


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


# -- addressing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "wanted"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5@20250929"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5@20251001"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("claude-opus-4-6@default", "claude-opus-4-6@default"),
    ],
)
def test_model_ids_take_an_at_before_the_date(model: str, wanted: str) -> None:
    assert vertex_id(model) == wanted
    assert BACKEND.path(provider(), model, False) == f"{PREFIX}/{wanted}:rawPredict"
    assert BACKEND.path(provider(), model, True) == f"{PREFIX}/{wanted}:streamRawPredict"


def test_capabilities_are_the_claude_models() -> None:
    assert claude_name("claude-sonnet-4-5@20250929") == SONNET
    assert claude_name("claude-opus-4-6@default") == "claude-opus-4-6"
    assert tgt("claude-sonnet-4-5@20250929").caps == tgt(SONNET).caps
    assert tgt(SONNET).caps.max_output_tokens is not None


@pytest.mark.parametrize("model", ["", "..", "a/b", "m?x=1", "m#f", "a\nb"])
def test_an_id_that_would_address_another_resource_is_a_400(model: str) -> None:
    with pytest.raises(VdmError) as caught:
        BACKEND.path(provider(), model, False)
    assert caught.value.status == 400


def test_the_registry_serves_it_and_models_are_listed_on_v1beta1() -> None:
    p = provider()
    assert backend("vertex") is BACKEND and not BACKEND.native_anthropic
    assert select(p, SONNET, SONNET)[0] is BACKEND
    assert (
        models_path(p)
        == "https://us-east5-aiplatform.googleapis.com/v1beta1/publishers/anthropic/models"
    )


# -- encoding -------------------------------------------------------------------------------------


def test_the_body_has_no_model_and_vertexs_version_and_keeps_stream() -> None:
    body = encoded(request(stream=True, temperature=0.5))
    assert "model" not in body
    assert body["anthropic_version"] == ANTHROPIC_VERSION
    assert body["stream"] is True and body["temperature"] == 0.5
    assert "stream" not in encoded(request())


def test_output_config_and_the_billing_block_are_left_out() -> None:
    body = encoded(
        request(system=SYSTEM, output_config={"format": {"type": "json_schema", "schema": {}}})
    )
    assert "output_config" not in body
    assert not any("x-anthropic-billing-header" in b["text"] for b in body["system"])
    assert len(body["system"]) == len(SYSTEM) - 1


def test_max_tokens_is_fitted_to_the_model() -> None:
    body = encoded(request(max_tokens=10_000_000))
    assert body["max_tokens"] == tgt().caps.max_output_tokens


def test_only_betas_vertex_takes_go_in_the_header() -> None:
    target = tgt(
        betas=(
            "claude-code-20250219",
            "interleaved-thinking-2025-05-14",
            "prompt-caching-scope-2026-01-05",
            "context-1m-2025-08-07",
            "interleaved-thinking-2025-05-14",
        )
    )
    headers = BACKEND.request_headers(target)
    assert headers == {"anthropic-beta": "interleaved-thinking-2025-05-14,context-1m-2025-08-07"}
    assert BACKEND.request_headers(tgt()) == {}
    # The middleware's headers win over the backend's.
    merged = request_headers(BACKEND, target, {"anthropic-beta": "x", "y": "1"})
    assert merged == {"anthropic-beta": "x", "y": "1"}
    assert request_headers(BACKEND, tgt(), None) is None


# -- recovering -----------------------------------------------------------------------------------


def test_betas_a_refusal_names_are_left_out_on_the_retry() -> None:
    message = (
        "vertex returned HTTP 400: Unexpected value(s) `context-1m-2025-08-07`, "
        "`interleaved-thinking-2025-05-14` for the `anthropic-beta` header. Please consult "
        "our documentation at docs.anthropic.com or try again without the header."
    )
    target = tgt(betas=("context-1m-2025-08-07", "interleaved-thinking-2025-05-14"))
    degradation = BACKEND.recover(VdmError(400, message), target)
    assert degradation == NO_BETA + "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    target.degraded.add(degradation)
    assert BACKEND.request_headers(target) == {}


def test_a_field_refused_by_name_is_dropped_on_the_retry() -> None:
    degradation = degradation_for("context_management: Extra inputs are not permitted")
    assert degradation is not None
    target = tgt()
    target.degraded.add(degradation)
    body = encoded(request(context_management={"edits": []}), target)
    assert "context_management" not in body
    assert BACKEND.recover(VdmError(400, "max_tokens: too large"), tgt()) is None
    assert (
        BACKEND.recover(
            VdmError(429, "Unexpected value(s) `x` for the `anthropic-beta` header"), tgt()
        )
        is None
    )


# -- decoding and errors --------------------------------------------------------------------------


def test_an_answer_is_the_anthropic_message_under_the_clients_name() -> None:
    answer = anthropic_message("Hi", model=SONNET)
    message = BACKEND.decode(answer, request(), tgt())
    assert message["model"] == "claude-sonnet-4-5" and message["content"][0]["text"] == "Hi"


@pytest.mark.parametrize(
    ("status", "kind", "mapped", "error_type"),
    [
        (429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error"),
        (403, "PERMISSION_DENIED", 403, "permission_error"),
        (404, "NOT_FOUND", 404, "not_found_error"),
        (401, "UNAUTHENTICATED", 401, "authentication_error"),
    ],
)
def test_google_shaped_errors_are_mapped(
    status: int, kind: str, mapped: int, error_type: str
) -> None:
    body = json.dumps(
        [{"error": {"code": status, "message": "Quota exceeded for x.", "status": kind}}]
    )
    error = error_from_response("vertex", status, body.encode(), {}, dialect="vertex")
    assert (error.status, error.error_type, error.code) == (mapped, error_type, kind)
    assert "Quota exceeded for x." in error.message


def test_a_model_not_enabled_in_model_garden_is_a_403_naming_the_fix() -> None:
    text = (
        "Project `1` is not allowed to use Publisher Model `projects/p/locations/l/publishers/"
        "anthropic/models/claude-opus-4-6`"
    )
    body = json.dumps([{"error": {"code": 400, "message": text, "status": "FAILED_PRECONDITION"}}])
    error = error_from_response("vertex", 400, body.encode(), {})
    assert error.status == 403 and "Model Garden" in error.message


# -- count-tokens ---------------------------------------------------------------------------------


def test_count_tokens_keeps_the_model_in_the_body() -> None:
    path, raw = count_tokens_call(
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]}, tgt()
    )
    body = json.loads(raw)
    assert path == "/count-tokens:rawPredict"
    assert body["model"] == "claude-sonnet-4-5@20250929"
    assert body["anthropic_version"] == ANTHROPIC_VERSION
    assert tokens_of({"input_tokens": 7}) == 7
    with pytest.raises(VdmError):
        tokens_of({"inputTokens": 7})
    assert counter("vertex") is not None and counter("openai") is None
