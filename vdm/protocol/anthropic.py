"""Pydantic models of the Anthropic Messages API (request, response, content blocks).

These models validate the requests vdm translates (the Anthropic-format path forwards the
client's body unread). They are permissive: new API fields never break parsing
(`extra="allow"`), content blocks are a union discriminated on `type` with `UnknownBlock`
catching the types this version does not know, and new *values* never give a 400 either: an
unknown `thinking.type` or `tool_choice.type` is read as its nearest known meaning, a system
block that is not text and a tool without a `name` (`mcp_toolset`) are accepted, each with a
DEBUG line, and sampling values are left for the provider to judge. What stays a 400 is what
is really malformed: a missing `model`, `messages` or `max_tokens`, wrong JSON types, a
message role other than user/assistant/system, a client tool without a name.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

log = logging.getLogger(__name__)

#: The `anthropic-version` sent upstream when the client did not say which it speaks.
ANTHROPIC_VERSION = "2023-06-01"


class Wire(BaseModel):
    """Base for wire models: unknown fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow")


# --- content blocks -------------------------------------------------------------------------


class TextBlock(Wire):
    type: Literal["text"] = "text"
    text: str
    cache_control: dict[str, Any] | None = None


class Base64Source(Wire):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlSource(Wire):
    type: Literal["url"]
    url: str


class FileSource(Wire):
    type: Literal["file"]
    file_id: str


class PlainTextSource(Wire):
    type: Literal["text"]
    media_type: str = "text/plain"
    data: str


class ContentSource(Wire):
    type: Literal["content"]
    content: str | list[TextBlock | ImageBlock]


ImageSource = Annotated[Base64Source | UrlSource | FileSource, Field(discriminator="type")]
DocumentSource = Annotated[
    Base64Source | UrlSource | FileSource | PlainTextSource | ContentSource,
    Field(discriminator="type"),
]


class ImageBlock(Wire):
    type: Literal["image"]
    source: ImageSource
    cache_control: dict[str, Any] | None = None


class DocumentBlock(Wire):
    type: Literal["document"]
    source: DocumentSource
    title: str | None = None
    context: str | None = None
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(Wire):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(Wire):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ResultContent] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(Wire):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(Wire):
    type: Literal["redacted_thinking"]
    data: str


class ServerToolUseBlock(Wire):
    """A tool Anthropic runs itself (web search, code execution, ...)."""

    type: Literal["server_tool_use", "mcp_tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ServerToolResultBlock(Wire):
    """The result of a server-run tool (`web_search_tool_result`, `mcp_tool_result`, ...)."""

    type: str
    tool_use_id: str
    content: Any = None


class UnknownBlock(Wire):
    """A block type this version does not model."""

    type: str


class ToolReferenceBlock(Wire):
    """A tool loaded by tool search, in a `tool_result`'s content (Claude Code's ToolSearch
    answers `[{"type": "tool_reference", "tool_name": "TaskCreate"}]`)."""

    type: Literal["tool_reference"]
    tool_name: str
    cache_control: dict[str, Any] | None = None


_SERVER_RESULT_SUFFIX = "_tool_result"
_KNOWN_BLOCKS = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "mcp_tool_use",
}


def _block_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return "unknown"
    if kind in _KNOWN_BLOCKS:
        return "server_tool_use" if kind == "mcp_tool_use" else kind
    if kind.endswith(_SERVER_RESULT_SUFFIX):
        return "server_tool_result"
    return "unknown"


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[RedactedThinkingBlock, Tag("redacted_thinking")]
    | Annotated[ServerToolUseBlock, Tag("server_tool_use")]
    | Annotated[ServerToolResultBlock, Tag("server_tool_result")]
    | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(_block_tag),
]


def _result_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind in ("text", "image", "document"):
        return str(kind)
    if kind == "tool_reference":
        # Without its tool's name a reference says nothing: kept as an unknown block.
        name = (
            value.get("tool_name") if isinstance(value, dict) else getattr(value, "tool_name", None)
        )
        return "tool_reference" if isinstance(name, str) else "unknown"
    return "unknown"


ResultContent = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[ToolReferenceBlock, Tag("tool_reference")]
    | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(_result_tag),
]

#: A system prompt block: text, or anything newer (kept, and left out when translating).
SystemBlock = Annotated[
    Annotated[TextBlock, Tag("text")] | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(lambda v: "text" if _block_tag(v) == "text" else "unknown"),
]


# --- request --------------------------------------------------------------------------------


class Message(Wire):
    # Claude Code places `role: "system"` entries inside `messages`: accept and keep them.
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


#: `tools[].type` values of tools the client runs itself, with the schema it gives.
CLIENT_TOOL_TYPES = (None, "custom")


class Tool(Wire):
    """A client tool (`input_schema`), or a server tool or tool set (`type` like
    `web_search_20250305`, `mcp_toolset`: those may have no `name`)."""

    name: str | None = None
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _client_tools_are_named(self) -> Tool:
        if self.type in CLIENT_TOOL_TYPES and self.name is None:
            raise ValueError("name: Field required (a tool the client runs needs one)")
        return self

    @property
    def is_client_tool(self) -> bool:
        return self.type in CLIENT_TOOL_TYPES


def _known(value: str, known: dict[str, str], field: str, fallback: str) -> str:
    """`value` if it is a known one, else its meaning in `known`, else `fallback`: a value a
    newer client sends is never a 400 (a non-string is, like any wrong JSON type)."""
    if value in known.values():
        return value
    meant = known.get(value, fallback)
    log.debug("%s %r is unknown: read as %r", field, value, meant)
    return meant


_TOOL_CHOICE_TYPES = {k: k for k in ("auto", "any", "tool", "none")}


class ToolChoice(Wire):
    """`tool_choice`; an unknown `type` is read as `auto` (the model decides)."""

    #: auto, any, tool or none, once validated.
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @field_validator("type")
    @classmethod
    def _any_type(cls, value: str) -> str:
        return _known(value, _TOOL_CHOICE_TYPES, "tool_choice.type", "auto")


#: Thinking types Anthropic may add, by what they mean; anything else lets the model decide
#: (`adaptive`), which is what "think as you see fit" means on every provider.
_THINKING_TYPES = {
    **{k: k for k in ("enabled", "disabled", "adaptive")},
    "auto": "adaptive",
    "off": "disabled",
    "none": "disabled",
}


class ThinkingConfig(Wire):
    """`thinking`; an unknown `type` is read as `adaptive` (`off`/`none` as `disabled`)."""

    #: enabled, disabled or adaptive, once validated.
    type: str
    budget_tokens: int | None = None

    @field_validator("type")
    @classmethod
    def _any_type(cls, value: str) -> str:
        return _known(value, _THINKING_TYPES, "thinking.type", "adaptive")


class Metadata(Wire):
    user_id: str | None = None


class MessagesRequest(Wire):
    """`POST /v1/messages` body."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[SystemBlock] | None = None
    metadata: Metadata | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    # No range checks: each provider has its own (OpenAI's temperature goes to 2) and answers
    # a value out of it with a clear 400 of its own, which the client gets.
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: dict[str, Any] | None = None


class CountTokensRequest(Wire):
    """`POST /v1/messages/count_tokens` body: a Messages request without `max_tokens`."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[SystemBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None


# --- response -------------------------------------------------------------------------------


class Usage(Wire):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class MessageResponse(Wire):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: Usage


ToolResultBlock.model_rebuild()
ContentSource.model_rebuild()
