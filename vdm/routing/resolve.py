"""Which provider and model a requested model name goes to.

This slice: `provider:model` prefixes, else the default provider with the name unchanged.
A name whose prefix is not a configured provider is an error naming it, so a typo never sends
a request to the wrong place (prefix a name that itself contains a colon: `ollama:llama3:8b`).
"""

from __future__ import annotations

from dataclasses import dataclass

from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.errors import VdmError

NO_PROVIDER = (
    "no provider configured: set OPENAI_API_KEY (for OpenAI), or {P}_API_KEY and "
    "{P}_BASE_URL for any OpenAI-compatible endpoint, then restart vdm"
)


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderConfig
    model: str


def resolve(requested: str, settings: Settings) -> Route:
    """The route for `requested`; raises VdmError(400) with the fix when there is none."""
    if not settings.providers:
        detail = "; ".join(settings.problems)
        raise VdmError(400, NO_PROVIDER + (f" ({detail})" if detail else ""))
    prefix, sep, rest = requested.partition(":")
    if sep:
        provider = settings.providers.get(prefix.lower())
        if provider is None:
            raise VdmError(
                400,
                f"unknown provider {prefix!r} in model {requested!r}; configured providers: "
                f"{', '.join(settings.providers)}",
            )
        if not rest:
            raise VdmError(400, f"model {requested!r} names provider {prefix!r} but no model")
        return Route(provider, rest)
    assert settings.default_provider is not None
    return Route(settings.providers[settings.default_provider], requested)
