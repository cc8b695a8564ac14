"""A provider's "the prompt does not fit" error, worded as Anthropic does so that Claude Code
recovers (`vdm.protocol.errors.context_overflow`). The patterns Claude Code 2.1.330 matches:
`prompt is too long[^0-9]*(\\d+)\\s*tokens?\\s*>\\s*(\\d+)` (it compacts) and
`input length and \\`max_tokens\\` exceed context limit: (\\d+) \\+ (\\d+) > (\\d+)` (it retries
with a smaller max_tokens)."""

from __future__ import annotations

import re

import pytest

from vdm.protocol.errors import context_overflow

COMPACT = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)")
SHRINK = re.compile(r"input length and `max_tokens` exceed context limit: (\d+) \+ (\d+) > (\d+)")


@pytest.mark.parametrize(
    ("message", "numbers"),
    [
        (
            "This model's maximum context length is 131072 tokens. However, you requested "
            "140000 tokens (139000 in the messages, 1000 in the completion). Please reduce the "
            "length of the messages or completion.",
            ("140000", "131072"),
        ),
        (
            "The input token count (1200000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            ("1200000", "1048576"),
        ),
    ],
    ids=["openai", "gemini"],
)
def test_a_prompt_that_does_not_fit_asks_for_compaction(
    message: str, numbers: tuple[str, str]
) -> None:
    worded = context_overflow(message)
    assert worded is not None
    match = COMPACT.search(worded)
    assert match is not None and match.groups() == numbers
    assert message in worded, "the provider's own words are kept"


@pytest.mark.parametrize(
    ("message", "numbers"),
    [
        (
            "This model's maximum context length is 131072 tokens. However, you requested "
            "150000 tokens (22000 in the messages, 128000 in the completion).",
            ("22000", "128000", "131072"),
        ),
        (
            "Requested token count exceeds the model's maximum context length of 262144 tokens. "
            "You requested a total of 262462 tokens: 230462 tokens from the input messages and "
            "32000 tokens for the completion.",
            ("230462", "32000", "262144"),
        ),
    ],
    ids=["openai", "vllm"],
)
def test_a_prompt_that_fits_with_too_large_max_tokens_asks_for_fewer_tokens(
    message: str, numbers: tuple[str, str, str]
) -> None:
    """Compacting a 22k-token conversation would not help; a smaller max_tokens does."""
    worded = context_overflow(message)
    assert worded is not None and not worded.startswith("prompt is too long")
    match = SHRINK.search(worded)
    assert match is not None and match.groups() == numbers


@pytest.mark.parametrize(
    "message",
    [
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8192",
        "This request exceeds the available context size, try increasing it",
        "prompt is too long: 210118 tokens > 200000 maximum",
    ],
)
def test_other_wordings_are_recognised(message: str) -> None:
    worded = context_overflow(message)
    assert worded is not None and worded.startswith("prompt is too long")


@pytest.mark.parametrize(
    "message", ["Invalid model name", "string too long. expected a string with maximum length 64"]
)
def test_other_errors_are_left_alone(message: str) -> None:
    assert context_overflow(message) is None


def test_the_code_alone_is_enough() -> None:
    assert context_overflow("bad", "context_length_exceeded") == "prompt is too long: bad"
