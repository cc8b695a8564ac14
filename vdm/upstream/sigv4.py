"""AWS Signature Version 4 for Bedrock requests, pure (stdlib only).

The signature is a pure function of the request and a credential triple, so vdm signs it
itself: the credential chain (env, profile, SSO, IMDS) may come from botocore as an optional
extra, but signing does not need it. The rules are the ones botocore's `SigV4Auth` applies
(`botocore/auth.py`) and the tests replay the official AWS test suite botocore carries
(`tests/upstream/aws4_testsuite/`):

- The canonical path is the path *as sent*, percent-encoded once more, after removing dot
  segments and empty segments: every service but S3 (which vdm never calls) wants the path
  encoded twice, so a wire `%2F` (an inference-profile ARN in `/model/{id}/invoke`) is signed
  as `%252F` and a wire `:` as `%3A`.
- The canonical query is each key and value percent-decoded, re-encoded with only
  `A-Za-z0-9-_.~` left bare, sorted by key, then value.
- Signed are the headers given, minus those a hop may add, drop or rewrite (`connection`,
  `user-agent`, ...: botocore's `SIGNED_HEADERS_BLACKLIST`), plus `host` (from the URL, as
  httpx sends it), `x-amz-date` and `x-amz-security-token`. Pass only the headers vdm sets
  itself (`content-type`, `accept`), never the transport's; duplicates as separate pairs.
- The body is hashed into the canonical request; no `x-amz-content-sha256` header is sent,
  as botocore sends none for Bedrock (only S3 and unsigned payloads need it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
#: Headers never signed: botocore's `SIGNED_HEADERS_BLACKLIST`, and `authorization` (a
#: previous signature's, on a retry).
UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Signature:
    """The steps of one signature, kept for tests and debugging (none holds the secret), and
    the headers to add to the request."""

    canonical_request: str
    string_to_sign: str
    authorization: str
    headers: dict[str, str]


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    session_token: str | None = None,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to add for a SigV4-signed request: `Authorization`, `X-Amz-Date`, and
    `X-Amz-Security-Token` with temporary credentials. `url` and `body` must be exactly what
    goes on the wire (`str(request.url)` of the httpx request, its content)."""
    return signature(
        method,
        url,
        headers,
        body,
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
        region=region,
        service=service,
        now=now,
    ).headers


def signature(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    session_token: str | None = None,
    region: str,
    service: str,
    now: datetime,
) -> Signature:
    """`sign`, with the canonical request and string to sign it went through."""
    stamp = _utc(now).strftime("%Y%m%dT%H%M%SZ")
    parts = urlsplit(url)
    signed = _signed_headers(headers, url)
    signed["x-amz-date"] = [stamp]
    added = {"X-Amz-Date": stamp}
    if session_token is not None:
        signed["x-amz-security-token"] = [session_token]
        added["X-Amz-Security-Token"] = session_token
    names = sorted(signed)
    signed_names = ";".join(names)
    canonical = "\n".join(
        (
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            "".join(f"{name}:{','.join(signed[name])}\n" for name in names),
            signed_names,
            hashlib.sha256(body).hexdigest(),
        )
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()))
    key = _hmac(("AWS4" + secret_key).encode(), stamp[:8])
    for step in (region, service, "aws4_request"):
        key = _hmac(key, step)
    digest = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={digest}"
    )
    return Signature(canonical, to_sign, authorization, {"Authorization": authorization, **added})


def canonical_path(path: str) -> str:
    """The path as SigV4 signs it for any service but S3: dot and empty segments removed (as
    botocore's `normalize_url_path`), then each byte percent-encoded once more."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    normal = "/" + "/".join(kept)
    if kept and path.endswith("/"):
        normal += "/"
    return quote(normal, safe="/~")


def canonical_query(query: str) -> str:
    """The query string as SigV4 signs it: pairs decoded, re-encoded, sorted."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((_encode(unquote(key)), _encode(unquote(value))))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _signed_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], url: str
) -> dict[str, list[str]]:
    """Lowercase name -> values (in order) of the headers to sign, `host` always among them."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    signed: dict[str, list[str]] = {}
    for name, value in pairs:
        lower = name.lower().strip()
        if lower not in UNSIGNED_HEADERS:
            # Trimall: surrounding space dropped, inner runs of space made one.
            signed.setdefault(lower, []).append(" ".join(value.split()))
    if "host" not in signed:
        signed["host"] = [host_of(url)]
    return signed


def host_of(url: str) -> str:
    """The `Host` header httpx sends for `url`: lowercase, no user info, the port only when it
    is not the scheme's default (botocore's `_host_from_url`)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _utc(now: datetime) -> datetime:
    """`now` in UTC; a naive datetime is taken to be UTC already."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
