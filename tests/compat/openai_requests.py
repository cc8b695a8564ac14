"""The requests the client matrix sends through vdm's OpenAI frontends.

- Chat Completions, as an application built on the `openai` SDK sends it: a system message,
  function tools, `tool_choice: "auto"`, the assistant message accumulated from the stream
  sent back as the SDK's accumulator holds it (extra fields such as `reasoning_content` and
  `thinking_blocks` included), then one `tool` message per call.
- Responses, shaped like Codex CLI 0.169's (../shared/protocol/codex/codex_01_exec_request.json,
  codex_02_tool_roundtrip_req2.json): two `developer` messages and an environment message
  before the prompt, function tools with `strict: false`, a `namespace` tool, `web_search`,
  `store: false`, `reasoning: {"summary": "auto"}`, `include: ["reasoning.encrypted_content"]`
  and `prompt_cache_key` (not `client_metadata`, which the strict Responses fake refuses as
  an unknown parameter: openai-python does not list it); turn 2 replays turn 1's output
  items as Codex stores them (reasoning with its `encrypted_content`, the `function_call`),
  then the `function_call_output`. The tool schemas are bundled here so the matrix runs on a clean
  clone; members of the namespace are small stand-ins for Codex's omitted ones.
"""

from __future__ import annotations

from typing import Any

# --- Chat Completions ---------------------------------------------------------------------

CHAT_SYSTEM = "You are a helpful coding assistant. Use the tools to inspect the project."
CHAT_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "run_shell",
            "description": "Run a shell command and return its output.",
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The command line."},
                    "timeout": {"type": "integer", "description": "Seconds before it is killed."},
                },
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "The file's path."}},
                "required": ["path"],
            },
        },
    },
]
CHAT_TOOL_NAMES = ["run_shell", "read_file"]


def chat_params(model: str, prompt: str) -> dict[str, Any]:
    """The keyword arguments of `client.chat.completions.create` for one turn."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": prompt},
        ],
        "tools": CHAT_TOOLS,
        "tool_choice": "auto",
    }


# --- Responses, as Codex CLI 0.169 sends it -------------------------------------------------

CODEX_IDENTITY = (
    "You are a coding agent running in the Codex CLI, a terminal-based coding assistant. "
    "Codex CLI is an open source project led by OpenAI."
)
_SKILLS = "<skills_instructions>\n## Skills\nA skill is a set of local instructions.\n"
_ENVIRONMENT = (
    "<environment_context>\n  <cwd>/home/user/project</cwd>\n  <shell>bash</shell>\n"
    "  <current_date>2026-11-21</current_date>\n</environment_context>"
)
_SESSION = "01a1ff5b-ddb0-7361-963c-f0e3150b78e3"

_EXEC_COMMAND: dict[str, Any] = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command in a PTY, returning output or a session ID for ongoing "
    "interaction.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {
            "cmd": {"type": "string", "description": "Shell command to execute."},
            "justification": {"type": "string", "description": "User-facing approval question."},
            "login": {"type": "boolean", "description": "True runs the shell with -l/-i."},
            "max_output_tokens": {"type": "number", "description": "Output token budget."},
            "sandbox_permissions": {
                "type": "string",
                "description": "Per-command sandbox override.",
                "enum": ["use_default", "require_escalated"],
            },
            "workdir": {"type": "string", "description": "Working directory for the command."},
            "yield_time_ms": {"type": "number", "description": "Wait before yielding output."},
        },
        "required": ["cmd"],
        "additionalProperties": False,
    },
}


def _function(name: str, description: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": {k: {"type": "string", "description": v} for k, v in properties.items()},
            "required": list(properties),
            "additionalProperties": False,
        },
    }


CODEX_TOOLS: list[dict[str, Any]] = [
    _EXEC_COMMAND,
    _function("write_stdin", "Writes characters to an exec session.", chars="Bytes to write."),
    _function("view_image", "Attach a local image.", path="Local filesystem path."),
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools to run and coordinate sub-agents.",
        "tools": [
            _function("spawn_agent", "Start a sub-agent.", message="Its first instruction."),
            _function("wait_agent", "Wait for a sub-agent.", id="The agent's id."),
        ],
    },
    _function("update_goal", "Update the goal.", goal="The new goal."),
    {"type": "web_search", "external_web_access": False},
]
#: The function tools an upstream that is not Responses receives (namespace members
#: flattened as `{namespace}__{name}`; `web_search`, a hosted tool, dropped).
CODEX_FLAT_TOOL_NAMES = [
    "exec_command",
    "write_stdin",
    "view_image",
    "multi_agent_v1__spawn_agent",
    "multi_agent_v1__wait_agent",
    "update_goal",
]


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


def codex_params(model: str, prompt: str) -> dict[str, Any]:
    """The keyword arguments of `client.responses.create` for Codex's first request of a
    turn (`stream` is set by the caller)."""
    return {
        "model": model,
        "input": [
            _message("developer", CODEX_IDENTITY),
            _message("developer", _SKILLS),
            _message("user", _ENVIRONMENT),
            _message("user", prompt),
        ],
        "tools": CODEX_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": _SESSION,
    }


def codex_replay(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as Codex sends it back in the next request's `input`: as it came, less
    the fields Codex does not keep (a reasoning item's `status`, null `content`)."""
    kept = {k: v for k, v in item.items() if v is not None}
    if kept.get("type") == "reasoning":
        kept.pop("status", None)
    return kept


def function_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}
