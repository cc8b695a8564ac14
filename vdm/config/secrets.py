"""Showing secrets without revealing them: `sk-…abcd`."""

from __future__ import annotations

from collections.abc import Iterable


def mask(secret: str) -> str:
    """A key shown safely: `sk-…abcd`, a short prefix, "…", then the last 4 characters.

    The prefix is at most 3 characters: up to and including the first "-" when it falls in
    them (`sk-`), else the first 3. At least half of the secret always stays hidden: a short
    secret loses its prefix, and one of 8 characters or fewer shows at most its last 2
    (none if 5 or fewer). "" stays "".
    """
    if not secret:
        return ""
    n = len(secret)
    if n <= 8:
        return "…" + (secret[-2:] if n >= 6 else "")
    dash = secret.find("-", 0, 3)
    prefix = secret[: dash + 1] if dash >= 0 else secret[:3]
    if len(prefix) + 4 > n // 2:
        prefix = ""
    return f"{prefix}…{secret[-4:]}"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of a secret replaced by its masked form."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, mask(secret))
    return text


def safe_url(url: str) -> str:
    """`url` with any credentials in it (`https://user:token@host`) masked."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or "/" in userinfo:
        return url
    return f"{scheme}://{mask(userinfo)}@{host}"


#: Words that make a header or variable name a credential (`CUSTOM_HEADER_AUTHORIZATION`).
_CREDENTIAL_WORDS = ("KEY", "TOKEN", "SECRET", "AUTH", "COOKIE", "PASSWORD")


def is_credential_name(name: str) -> bool:
    """Whether a variable or header name says it carries a credential."""
    upper = name.upper().replace("-", "_")
    return any(word in upper for word in _CREDENTIAL_WORDS)
