"""vdm (Vandamme Proxy): an LLM gateway for Claude Code and any Anthropic or OpenAI client."""

__version__ = "3.0.0"
