"""Pydantic models of OpenAI Chat Completions: request, response and stream chunk.

The proxy's hot path works on plain dicts (one `json.loads` per upstream read); these models
document the shapes, validate what tests capture, and parse OpenAI-dialect client requests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionCall(Wire):
    name: str | None = None
    arguments: str | None = None


class ToolCall(Wire):
    id: str | None = None
    type: Literal["function"] | None = "function"
    function: FunctionCall
    index: int | None = None


class ChatMessage(Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class FunctionDef(Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(Wire):
    type: Literal["function"]
    function: FunctionDef


class ChatRequest(Wire):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    user: str | None = Field(default=None, max_length=64)
    prompt_cache_key: str | None = None


class PromptTokensDetails(Wire):
    cached_tokens: int | None = None


class ChatUsage(Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class ResponseMessage(Wire):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None


class Choice(Wire):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None = None


class ChatResponse(Wire):
    id: str
    object: str = "chat.completion"
    model: str
    choices: list[Choice]
    usage: ChatUsage | None = None


class Delta(Wire):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChunkChoice(Wire):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatChunk(Wire):
    id: str
    object: str = "chat.completion.chunk"
    model: str
    choices: list[ChunkChoice]
    usage: ChatUsage | None = None
