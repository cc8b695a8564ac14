"""`system-prompt`: replacements and append on every shape of system prompt, and nothing
changed when nothing applies."""

from __future__ import annotations

from typing import Any

import pytest

from vdm.middleware import Context
from vdm.middleware.system_prompt import SystemPrompt
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.capabilities import caps_for
from vdm.protocol.codec import Target
from vdm.upstream.backends.anthropic import AnthropicBackend

pytestmark = pytest.mark.anyio

CTX = Context("openai", "gpt-4o", None, "gpt-4o", "anthropic", "openai", "r", False, False)
REPLACE = [{"find": "Claude Code", "replace": "Vandamme"}, {"find": "Vandamme", "replace": "V"}]


def _request(system: Any = None) -> MessagesRequest:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Claude Code"}],
    }
    if system is not None:
        body["system"] = system
    return MessagesRequest.model_validate(body)


def _dumped(request: MessagesRequest) -> Any:
    return request.model_dump(mode="json", exclude_unset=True)["system"]


async def test_replacements_apply_in_order_to_a_string() -> None:
    out = await SystemPrompt({"replacements": REPLACE}).on_request(
        CTX, _request("You are Claude Code.")
    )
    assert out is not None and out.system == "You are V."
    # Messages are never touched.
    assert out.messages[0].content == "Claude Code"


async def test_replacements_in_blocks_keep_cache_control() -> None:
    system = [
        {"type": "text", "text": "x-anthropic-billing-header"},
        {"type": "text", "text": "You are Claude Code", "cache_control": {"type": "ephemeral"}},
    ]
    out = await SystemPrompt({"replacements": REPLACE[:1]}).on_request(CTX, _request(system))
    assert out is not None
    assert _dumped(out) == [
        {"type": "text", "text": "x-anthropic-billing-header"},
        {"type": "text", "text": "You are Vandamme", "cache_control": {"type": "ephemeral"}},
    ]


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        (None, [{"type": "text", "text": "Be terse."}]),
        ("", [{"type": "text", "text": "Be terse."}]),
        ("Hi.", [{"type": "text", "text": "Hi."}, {"type": "text", "text": "Be terse."}]),
        (
            [{"type": "text", "text": "Hi.", "cache_control": {"type": "ephemeral"}}],
            [
                {"type": "text", "text": "Hi.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be terse."},
            ],
        ),
    ],
)
async def test_append_is_a_last_text_block(system: Any, expected: Any) -> None:
    out = await SystemPrompt({"append": "Be terse."}).on_request(CTX, _request(system))
    assert out is not None and _dumped(out) == expected


async def test_the_appended_block_survives_encoding() -> None:
    """What the Anthropic backend sends (exclude_unset) still says `type: text`."""
    out = await SystemPrompt({"append": "Be terse."}).on_request(CTX, _request())
    assert out is not None
    target = Target(family="anthropic", model="m", caps=caps_for("anthropic", "m"), requested="m")
    body = AnthropicBackend().encode(out, target)
    assert b'"system":[{"type":"text","text":"Be terse."}]' in body


async def test_nothing_to_do_returns_none() -> None:
    middleware = SystemPrompt({"replacements": REPLACE})
    assert await middleware.on_request(CTX, _request("Nothing here")) is None
    assert await middleware.on_request(CTX, _request()) is None
    blocks = [{"type": "text", "text": "none"}, {"type": "future_block", "x": 1}]
    assert await middleware.on_request(CTX, _request(blocks)) is None


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "set `replacements` or `append`"),
        ({"append": 3}, "append must be a string"),
        ({"replacements": {"find": "a"}}, "replacements must be a list"),
        ({"replacements": [{"find": "a"}]}, "replacements[0] must be a table"),
        ({"replacements": [{"find": "", "replace": "b"}]}, "`find` (not empty)"),
        ({"append": "x", "prepend": "y"}, "unknown option prepend"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        SystemPrompt(options)
    assert problem in str(caught.value)
