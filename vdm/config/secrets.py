"""Showing secrets without revealing them: `sk-…abcd`, in text, URLs and log records."""

from __future__ import annotations

import logging
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


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """`data` with every secret masked, its other bytes (invalid UTF-8 included) untouched:
    for a body relayed as it came."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4 and (raw := secret.encode()) in data:
            data = data.replace(raw, mask(secret).encode())
    return data


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


class RedactingFilter(logging.Filter):
    """A handler filter that masks the configured secrets in every record it passes.

    Defence in depth: the code that logs already masks what it knows to be a key, but an
    upstream's error text, an exception's message or a traceback can quote a credential
    (a custom header echoed back, a key in a URL). The cost is paid only for records that are
    emitted, and a record none of whose text contains a secret is passed on untouched.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def _redact(self, text: str) -> str | None:
        """`text` masked, or None when no secret is in it."""
        if not any(secret in text for secret in self._secrets):
            return None
        return redact(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it, as without us
            return True
        masked = self._redact(message)
        if masked is not None:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatted here, once, as the handler's Formatter would: it keeps `exc_text`.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for name in ("exc_text", "stack_info"):
            text = getattr(record, name, None)
            if text and (masked := self._redact(text)) is not None:
                setattr(record, name, masked)
        return True


def install_redaction(handler: logging.Handler, secrets: Iterable[str]) -> None:
    """Mask `secrets` in everything `handler` writes (replacing a filter installed before)."""
    for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
        handler.removeFilter(old)
    handler.addFilter(RedactingFilter(secrets))


class StreamRedactor:
    """Masks secrets in bytes relayed read by read (a stream passed on as is), including a
    secret split across two reads.

    `feed(read)` returns what may go out now: the read, masked, minus its last bytes when they
    could be the start of a secret (held until the next read decides). An SSE read ends in a
    blank line, which begins no secret, so in practice nothing is held and no event is
    delayed. `flush()` returns what is held at the end. A read without secrets costs one
    substring search per secret.
    """

    __slots__ = ("_secrets", "_held")

    def __init__(self, secrets: Iterable[str]) -> None:
        found = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._secrets = tuple((s.encode(), mask(s).encode()) for s in found)
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if not self._secrets:
            return data
        if self._held:
            data, self._held = self._held + data, b""
        cut = len(data) - self._partial(data)
        # A whole secret across the cut (a shorter one inside a longer one's start) goes out
        # now, masked, with what follows it unless that too may begin a secret.
        while (end := self._crossing(data, cut)) > cut:
            cut = len(data) - self._partial(data[end:])
        data, self._held = data[:cut], data[cut:]
        return self._mask(data)

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return self._mask(held)

    def _mask(self, data: bytes) -> bytes:
        for secret, masked in self._secrets:
            if secret in data:
                data = data.replace(secret, masked)
        return data

    def _crossing(self, data: bytes, cut: int) -> int:
        """The end of the furthest-reaching whole secret that starts before `cut` and ends
        after it (or `cut`)."""
        end = cut
        for secret, _ in self._secrets:
            at = data.find(secret, max(0, cut - len(secret) + 1))
            while 0 <= at < cut:
                end = max(end, at + len(secret))
                at = data.find(secret, at + 1)
        return end

    def _partial(self, data: bytes) -> int:
        """The length of the longest end of `data` that is the start of a secret."""
        longest = 0
        size = len(data)
        for secret, _ in self._secrets:
            first = secret[:1]
            at = data.find(first, max(0, size - len(secret) + 1))
            while 0 <= at and size - at > longest:
                if secret.startswith(data[at:]):
                    longest = size - at
                    break
                at = data.find(first, at + 1)
        return longest
