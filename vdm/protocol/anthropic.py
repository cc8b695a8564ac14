"""Pydantic models of the Anthropic Messages API (request, response, content blocks).

Models are permissive at the edges (`extra="allow"`) so that new API fields never break
parsing; content blocks are a union discriminated on `type`, with `UnknownBlock` catching block
types this version does not know (they are kept when passing through and dropped, with a log
line, when translating).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

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

ResultContent = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[UnknownBlock, Tag("unknown")],
    Discriminator(
        lambda v: (
            kind
            if (kind := (v.get("type") if isinstance(v, dict) else getattr(v, "type", None)))
            in ("text", "image", "document")
            else "unknown"
        )
    ),
]


# --- request --------------------------------------------------------------------------------


class Message(Wire):
    # Claude Code places `role: "system"` entries inside `messages`: accept and keep them.
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class Tool(Wire):
    """A client tool (`input_schema`) or a server tool (`type` like `web_search_20250305`)."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None

    @property
    def is_client_tool(self) -> bool:
        return self.type in (None, "custom")


class ToolChoice(Wire):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(Wire):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class Metadata(Wire):
    user_id: str | None = None


class MessagesRequest(Wire):
    """`POST /v1/messages` body."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[TextBlock] | None = None
    metadata: Metadata | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: dict[str, Any] | None = None


class CountTokensRequest(Wire):
    """`POST /v1/messages/count_tokens` body: a Messages request without `max_tokens`."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
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
