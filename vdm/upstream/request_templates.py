"""The requests of an upstream client: headers merged and checked, and templates.

`AsyncClient.build_request` merges the client's default headers, parses the URL and
normalises the headers on every call: a tenth of vdm's CPU per small request. A client
builds each distinct request (method, path, key, stream, forwarded headers) with it once and
copies that template for each attempt. `RequestTemplates` is the part of `UpstreamClient`
that does it (vdm/upstream/client.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import httpx

from vdm.config.settings import ProviderConfig
from vdm.protocol.errors import VdmError

#: Cached absolute URLs per client (`RequestTemplates._url`).
_MAX_URLS = 256
#: Cached request templates per client (`RequestTemplates._request`).
_MAX_TEMPLATES = 256
#: An HTTP header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


_new_request = httpx.Request.__new__


def _copy(
    method: str,
    built: httpx.Request,
    length_at: int | None,
    content: bytes,
    extensions: dict[str, Any],
) -> httpx.Request:
    """What `httpx.Request(method, url, headers=..., stream=ByteStream(content))` followed by
    `read()` leaves, without its URL and extension copies, its stream dispatch and a
    `Headers.__setitem__` scan: a quarter of the cost. It fills httpx's own attributes, so
    `_exact_copy` checks once that it still makes what httpx's constructor makes."""
    headers = httpx.Headers(built.headers)  # a copy: a signer changes only its own
    if length_at is not None:
        headers._list[length_at] = (b"Content-Length", b"content-length", b"%d" % len(content))
    request = _new_request(httpx.Request)
    request.__dict__.update(
        method=method,
        url=built.url,
        headers=headers,
        extensions=extensions,
        stream=httpx.ByteStream(content),
        _content=content,  # `request.content`, as with `content=` (SigV4 hashes it)
    )
    return request


@lru_cache(maxsize=1)
def _exact_copy() -> bool:
    """Whether `_copy` makes what httpx's constructor makes with the httpx installed (the
    same attributes, header bytes and content); if a release changes its internals, vdm
    builds each request with the constructor instead."""
    built = httpx.Request(
        "POST", "http://127.0.0.1/v1/x", headers={"a": "b"}, content=b"-", extensions={}
    )
    try:
        fast = _copy("POST", built, _length_index(built), b"xyz", {"timeout": {}})
    except Exception:
        return False
    slow = httpx.Request(
        "POST",
        built.url,
        headers=built.headers,
        stream=httpx.ByteStream(b"xyz"),
        extensions={"timeout": {}},
    )
    slow.headers["Content-Length"] = "3"
    slow.read()
    return (
        vars(fast).keys() == vars(slow).keys()
        and fast.headers.raw == slow.headers.raw
        and fast.content == slow.content
        and fast.url == slow.url
        and fast.extensions == slow.extensions
    )


def _length_index(request: httpx.Request) -> int | None:
    """Where `Content-Length` is in a built request's headers (httpx adds it last)."""
    for index, (_, lowered, _) in enumerate(request.headers._list):
        if lowered == b"content-length":
            return index
    return None


def _header_problem(name: str, value: str) -> bool:
    """Whether a header cannot be sent as it is: a value with a character outside visible
    ASCII and space (a line break would even split the request), or a name that is not an
    HTTP token. Two C-speed string checks and one regex: it runs on every request."""
    return not (value.isascii() and value.isprintable() and _TOKEN.fullmatch(name))


class RequestTemplates:
    """Request building for `UpstreamClient`, which sets these attributes."""

    provider: ProviderConfig
    _client: httpx.AsyncClient
    #: The headers of every request: the dialect's, then the user's custom ones.
    _static_headers: dict[str, str]
    #: Path -> its absolute URL: httpx merging it with the base URL parses both anew,
    #: ~30 µs a request; a provider has only a few paths.
    _urls: dict[str, httpx.URL]
    #: (method, path, key, stream, forwarded headers) -> a request to copy (`_request`) and
    #: where its `Content-Length` is.
    _templates: dict[tuple[Any, ...], tuple[httpx.Request, int | None]]

    def _url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _MAX_URLS:  # paths that name the model: bounded anyway
                self._urls.clear()
            url = self._urls[path] = self._client.build_request("GET", path).url
        return url

    def _request(
        self,
        path: str,
        body: bytes | None,
        key: str,
        stream: bool,
        extra: Mapping[str, str] | None,
        extensions: dict[str, Any],
    ) -> httpx.Request:
        """The request of one attempt, as `AsyncClient.build_request` makes it (the client's
        default headers merged in, `Host` first, `Content-Length` last), from a template made
        by it once per path, key and headers: its merging, URL parsing and header
        normalising were a tenth of vdm's CPU per small request. httpx copies the template's
        headers into each request, so a signer changing them changes only its own."""
        method = "GET" if body is None else "POST"
        if body == b"":  # httpx puts this one's `Content-Length: 0` elsewhere: as it does
            return self._client.build_request(
                method,
                self._url(path),
                content=body,
                headers=self._headers(key, stream, extra),
                extensions=extensions,
            )
        cache = (method, path, key, stream, tuple(extra.items()) if extra else ())
        template = self._templates.get(cache)
        if template is None:
            if len(self._templates) >= _MAX_TEMPLATES:  # client keys, forwarded headers
                self._templates.clear()
            # Validated here, once: a header that cannot be sent raises on every call.
            built = self._client.build_request(
                method,
                self._url(path),
                content=None if body is None else b"-",
                headers=self._headers(key, stream, extra),
            )
            template = self._templates[cache] = (built, _length_index(built))
        built, length_at = template
        content = b"" if body is None else body
        if _exact_copy():
            return _copy(method, built, length_at, content, extensions)
        request = httpx.Request(
            method,
            built.url,
            headers=built.headers,
            stream=httpx.ByteStream(content),
            extensions=extensions,
        )
        if body is not None:
            # The template's `Content-Length` (the last header, as httpx adds it), in place.
            request.headers["Content-Length"] = str(len(body))
        request.read()  # `request.content`, as with `content=` (a SigV4 signer hashes it)
        return request

    def _headers(self, key: str, stream: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(self._static_headers)
        if extra:
            # The client's own headers (forwarded to a provider of its dialect) replace the
            # dialect's defaults, never what the user configured for the provider.
            custom = {name.lower() for name in self.provider.custom_headers}
            headers.update((k, v) for k, v in extra.items() if k.lower() not in custom)
        if key:
            auth = self.provider.auth
            if auth == "bearer":
                headers["authorization"] = f"Bearer {key}"
            else:
                headers[auth] = key
        if stream:
            headers["accept"] = "text/event-stream"
        for name, value in headers.items():
            if _header_problem(name, value):
                raise self._header_error(name, key, extra)
        return headers

    def _header_error(self, name: str, key: str, extra: Mapping[str, str] | None) -> VdmError:
        """The error for a header that cannot be sent: the client's (a forwarded header, its
        own key) is a 400; the provider's configuration is named for a fix. The value is
        never quoted: it may be a credential."""
        lowered = name.lower()
        if self.provider.passthrough and key and lowered in ("authorization", self.provider.auth):
            return VdmError(
                400,
                "the API key in the request has characters that cannot be sent in an HTTP "
                "header (only visible ASCII)",
            )
        if extra and any(k.lower() == lowered for k in extra):
            return VdmError(
                400,
                f"header {name!r} of the request has a value that cannot be forwarded (only "
                "visible ASCII, no line breaks)",
            )
        return VdmError(
            400,
            f"header {name!r} configured for provider {self.provider.name!r} (its key or a "
            "custom header) has characters that cannot be sent: only visible ASCII is allowed",
        )
