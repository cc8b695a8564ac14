"""The provider families of the compatibility matrix: how vdm is configured for each (a
preset name and `{P}_BASE_URL` pointing at the fake, `{P}_API_FORMAT` where needed), the
script adapter and strict fake that stand in for the provider, the model, and what the
provider hands out that must travel back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.compat.anthropic_script import Anthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.scripts import Chat, Gemini, Responses, Script

#: The upstream key every family is configured with (the Gemini fake accepts only this one).
KEY = "sk-compat-upstream-4242"


@dataclass(frozen=True)
class Family:
    """One provider family as the matrix configures and scripts it."""

    #: Row id (test ids, `-k` selections).
    id: str
    #: What the document calls it.
    name: str
    #: The provider's preset name (the prefix of `{P}_…` and of the client's model string).
    provider: str
    #: The model the upstream must see.
    model: str
    script: Callable[[], Script]
    #: The fake's strict rules, in one line (for the document).
    rules: str
    #: `{P}_…` settings beyond the key and base URL, by suffix.
    settings: dict[str, str] = field(default_factory=dict)
    #: The base URL's path after the fake's address (the provider's real one); None: the
    #: fake's own base URL.
    path: str | None = None
    #: The header that carries the key upstream; None: the provider takes no key at all.
    auth: str | None = "authorization"
    #: The provider shows its reasoning: turn 1 of the tool loop opens with a thinking block.
    thinking: bool = True
    #: Turn 1 hands out reasoning state (reasoning_content, encrypted reasoning, a thought
    #: signature) that turn 2 must carry back unchanged.
    state: bool = True
    #: The model takes images; a text-only one (DeepSeek) must get a note instead, never a
    #: part its API refuses.
    images: bool = True
    #: The provider speaks Anthropic: vdm forwards the client's body as it is.
    passthrough: bool = False

    @property
    def client_model(self) -> str:
        """What Claude Code asks for (`--model provider:model`)."""
        return f"{self.provider}:{self.model}"

    def env(self, fake: FakeOpenAI) -> dict[str, str]:
        """vdm's whole configuration for this family, pointing at `fake`."""
        prefix = self.provider.upper()
        base_url = fake.base_url if self.path is None else fake.url + self.path
        env = {f"{prefix}_BASE_URL": base_url, "MAX_RETRIES": "0"}
        if self.auth is not None:
            env[f"{prefix}_API_KEY"] = KEY
        env.update({f"{prefix}_{name}": value for name, value in self.settings.items()})
        return env


_CHAT_OPENAI = (
    "Chat Completions with OpenAI's rules (function tools with reasoning refused on gpt-5.4+)"
)
_RESPONSES = (
    "Responses API: unknown parameters, Chat-shaped tools and parts, sampling on reasoning "
    "models, reasoning items without summary or issued `encrypted_content` or not followed by "
    "their item, unpaired calls and outputs"
)
_GEMINI = (
    "native API: `x-goog-api-key` only, unknown fields anywhere, roles and empty parts, call and "
    "response pairing, thought signatures missing (Gemini 3) or altered, `thinkingConfig` per "
    "model, `parametersJsonSchema` references"
)

FAMILIES: tuple[Family, ...] = (
    Family(
        "openai-chat",
        "OpenAI Chat Completions",
        "openai",
        "gpt-4.1",
        lambda: Chat("openai"),
        _CHAT_OPENAI,
        thinking=False,
        state=False,
    ),
    Family(
        "openai-responses",
        "OpenAI Responses (zero config)",
        "openai",
        "gpt-5.6-terra",
        Responses,
        _RESPONSES,
    ),
    Family(
        "azure-v1",
        "Azure OpenAI v1 (Responses)",
        "azure",
        "gpt-5.6-terra",
        Responses,
        _RESPONSES + "; served under `/openai/v1`",
        path="/openai/v1",
        auth="api-key",
    ),
    Family(
        "deepseek",
        "DeepSeek V4",
        "deepseek",
        "deepseek-v4-pro",
        lambda: Chat("deepseek"),
        "thinking mode: an assistant tool-call turn without its `reasoning_content` is a 400; "
        "text only: an image part is a 400 (unknown variant image_url, expected text)",
        images=False,
    ),
    Family(
        "kimi",
        "Kimi K2.7 Code (Moonshot)",
        "moonshot",
        "kimi-k2.7-code",
        lambda: Chat("moonshot"),
        "an assistant tool-call turn without its `reasoning_content` is a 400; "
        '`thinking: {"type": "disabled"}` is a 400 (it always thinks)',
    ),
    Family(
        "gemini-3",
        "Gemini 3 (native)",
        "gemini",
        "gemini-3-pro-preview",
        lambda: Gemini(api_key=KEY),
        _GEMINI,
        auth="x-goog-api-key",
    ),
    Family(
        "gemini-2.5",
        "Gemini 2.5 (native)",
        "gemini",
        "gemini-2.5-flash",
        lambda: Gemini(api_key=KEY),
        _GEMINI,
        auth="x-goog-api-key",
    ),
    Family(
        "gemini-openai",
        "Gemini 3 (OpenAI-compatible endpoint)",
        "gemini",
        "gemini-3-flash-preview",
        lambda: Chat("gemini"),
        "tool parameters limited to the proto `Schema` subset; the first call of each step "
        "must carry its `extra_content.google.thought_signature`; errors wrapped in a list",
        settings={"API_FORMAT": "openai"},
        path="/v1beta/openai",
        thinking=False,
    ),
    Family(
        "mistral",
        "Mistral / Devstral",
        "mistral",
        "devstral-medium-latest",
        lambda: Chat("mistral"),
        "unknown fields are a 422 (`extra_forbidden`); tool call ids exactly nine letters or "
        "digits",
        thinking=False,
        state=False,
    ),
    Family(
        "groq",
        "Groq",
        "groq",
        "openai/gpt-oss-120b",
        lambda: Chat("groq"),
        "any property it does not know is a 400, at the top level and on messages "
        "(`reasoning_content`, `prompt_cache_key`, `cache_control`, …)",
        path="/openai/v1",
        state=False,
    ),
    Family(
        "xai",
        "xAI grok-4",
        "xai",
        "grok-4",
        lambda: Chat("xai"),
        "reasoning models refuse penalties, `stop` and (grok-4) `reasoning_effort`",
        state=False,
    ),
    Family(
        "openrouter",
        "OpenRouter",
        "openrouter",
        "qwen/qwen3-coder",
        lambda: Chat(None),
        "none of its own: an OpenAI-compatible fake that takes any well-formed request",
        path="/api/v1",
        state=False,
    ),
    Family(
        "ollama",
        "Ollama (local, no key)",
        "ollama",
        "qwen3-coder:30b",
        lambda: Chat(None),
        "none of its own: an OpenAI-compatible fake that takes any well-formed request",
        auth=None,
        state=False,
    ),
    Family(
        "anthropic",
        "Anthropic (passthrough)",
        "anthropic",
        "claude-sonnet-4-6",
        Anthropic,
        "Messages API: thinking signatures, thinking mode and effort per model, `max_tokens` "
        "ceilings; the checks require the client's body to arrive unchanged but for the "
        "model name",
        auth="x-api-key",
        passthrough=True,
    ),
)
