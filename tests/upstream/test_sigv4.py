"""SigV4 signing: the official AWS test suite (as botocore carries it), Bedrock-shaped URLs
signed as botocore signs them, and the request httpx actually sends matching what was signed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from vdm.upstream.sigv4 import canonical_path, host_of, sign, signature

SUITE = Path(__file__).parent / "aws4_testsuite"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)


def suite_cases() -> list[str]:
    return sorted(str(p.parent.relative_to(SUITE)) for p in SUITE.rglob("*.req"))


def parse_request(raw: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, url, header pairs, body) of a suite `.req` file. Its path is kept as written
    (`/example space/`, `/ሴ`): the suite encodes it once, as botocore's own runner does."""
    head, _, body = raw.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, rest = request_line.split(" ", 1)
    path = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:  # a file that ends its header block with a newline
            continue
        if line[:1].isspace():  # an obsolete folded continuation line
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    host = next(value for name, value in headers if name.lower() == "host")
    return method, f"https://{host}{path}", headers, body.encode()


def read(case: str, suffix: str) -> str:
    path = SUITE / case / f"{Path(case).name}.{suffix}"
    return path.read_text(encoding="utf-8").replace("\r", "")


def test_the_whole_suite_is_there() -> None:
    """Guard against a glob that finds nothing and so passes vacuously."""
    cases = suite_cases()
    assert len(cases) == 34
    assert {"get-vanilla", "normalize-path/get-space", "post-sts-token/post-sts-header-before"} <= (
        set(cases)
    )


@pytest.mark.parametrize("case", suite_cases())
def test_the_aws_sigv4_suite(case: str) -> None:
    method, url, headers, body = parse_request(read(case, "req"))
    expected_canonical = read(case, "creq")
    # As in botocore's runner: a case signs with the session token its canonical request has.
    token = re.search(r"^x-amz-security-token:(.*)$", expected_canonical, re.MULTILINE)
    result = signature(
        method,
        url,
        headers,
        body,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        session_token=token.group(1) if token else None,
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
    )
    assert result.canonical_request == expected_canonical
    assert result.string_to_sign == read(case, "sts")
    assert result.authorization == read(case, "authz")
    assert result.headers["Authorization"] == result.authorization
    assert result.headers["X-Amz-Date"] == "20150830T123600Z"


# -- Bedrock ---------------------------------------------------------------------------------------

BODY = (
    b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,'
    b'"messages":[{"role":"user","content":"hi"}]}'
)
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    # Set by the transport, changed by proxies: never signed.
    "user-agent": "vdm/3",
    "connection": "keep-alive",
}
BEDROCK_TIME = datetime(2026, 1, 15, 9, 30, 5, tzinfo=UTC)
RUNTIME = "https://bedrock-runtime.us-east-1.amazonaws.com"
PROFILE_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
BEDROCK_KEYS = {
    "access_key": "AKIAIOSFODNN7EXAMPLE",
    "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}

#: (URL as sent, session token, canonical request derived by hand, Authorization). The
#: Authorization values are what botocore 1.44.18's `SigV4Auth(creds, "bedrock", "us-east-1")`
#: adds to the same request at the same time (checked once, outside this suite: botocore is
#: no dependency of vdm).
BEDROCK_CASES = [
    (
        # The id quoted whole, as Claude Code's Bedrock client does: `:` travels as %3A, and
        # SigV4 encodes the path again, so the % itself becomes %25.
        f"{RUNTIME}/model/{quote(PROFILE_ID, safe='')}/invoke",
        None,
        "POST\n"
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke\n"
        "\n"
        "accept:application/json\n"
        "content-type:application/json\n"
        "host:bedrock-runtime.us-east-1.amazonaws.com\n"
        "x-amz-date:20260115T093005Z\n"
        "\n"
        "accept;content-type;host;x-amz-date\n"
        "9486a82cfd91e2684ea43a127c457fb9d8b1172e53e7f6710d1348249fae7d30",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260115/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date, "
        "Signature=05f68c39cd27c2574d49f2dd1550b0a6f43c476ce40e02dd85dba60ca2bf0967",
    ),
    (
        # An application inference profile ARN quoted as the Python SDK does (`safe=":"`): the
        # `/` travels as %2F and is signed as %252F; the bare `:` is signed as %3A.
        f"{RUNTIME}/model/{quote(PROFILE_ARN, safe=':')}/invoke-with-response-stream",
        "FwoGZXIvYXdzEXAMPLETOKEN//+=",
        "POST\n"
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
        "application-inference-profile%252Fabc123/invoke-with-response-stream\n"
        "\n"
        "accept:application/json\n"
        "content-type:application/json\n"
        "host:bedrock-runtime.us-east-1.amazonaws.com\n"
        "x-amz-date:20260115T093005Z\n"
        "x-amz-security-token:FwoGZXIvYXdzEXAMPLETOKEN//+=\n"
        "\n"
        "accept;content-type;host;x-amz-date;x-amz-security-token\n"
        "9486a82cfd91e2684ea43a127c457fb9d8b1172e53e7f6710d1348249fae7d30",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260115/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, "
        "Signature=586a7ac8fd3c35e43b4b08571778f67e52febd5db9b509d41bb983cbdd4f9905",
    ),
]


@pytest.mark.parametrize(("url", "token", "canonical", "authorization"), BEDROCK_CASES)
def test_bedrock_urls_are_signed_as_botocore_signs_them(
    url: str, token: str | None, canonical: str, authorization: str
) -> None:
    result = signature(
        "POST",
        url,
        HEADERS,
        BODY,
        **BEDROCK_KEYS,
        session_token=token,
        region="us-east-1",
        service="bedrock",
        now=BEDROCK_TIME,
    )
    assert result.canonical_request == canonical
    assert result.authorization == authorization
    expected = {"Authorization": authorization, "X-Amz-Date": "20260115T093005Z"}
    if token is not None:
        expected["X-Amz-Security-Token"] = token
    assert result.headers == expected
    # The secret is in none of what is kept or returned.
    assert BEDROCK_KEYS["secret_key"] not in repr(result)


@pytest.mark.parametrize(("url", "token", "canonical", "authorization"), BEDROCK_CASES)
def test_what_httpx_sends_is_what_was_signed(
    url: str, token: str | None, canonical: str, authorization: str
) -> None:
    """Sign `str(request.url)` of the httpx request, then check the request as it goes out
    the way AWS does: from its raw path, its Host header and its body."""
    request = httpx.Request("POST", url, headers=HEADERS, content=BODY)
    added = sign(
        request.method,
        str(request.url),
        HEADERS,
        request.content,
        **BEDROCK_KEYS,
        session_token=token,
        region="us-east-1",
        service="bedrock",
        now=BEDROCK_TIME,
    )
    request.headers.update(added)
    assert request.headers["authorization"] == authorization
    wire_path = request.url.raw_path.decode().partition("?")[0]
    lines = canonical.split("\n")
    assert lines[1] == quote(wire_path, safe="/~")  # every service but S3: encoded twice
    assert f"host:{request.headers['host']}" in lines


@pytest.mark.parametrize(
    "url",
    [
        "https://Bedrock-Runtime.US-EAST-1.amazonaws.com:443/model/x/invoke",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke",
        "http://127.0.0.1:8123/model/x/invoke",
        "http://127.0.0.1:80/model/x/invoke",
        "http://[::1]:8080/model/x/invoke",
        "http://[::1]/model/x/invoke",
        "https://user:pw@bedrock-mantle.us-west-2.api.aws/anthropic/v1/messages",
    ],
)
def test_the_signed_host_is_the_host_httpx_sends(url: str) -> None:
    assert host_of(url) == httpx.Request("POST", url).headers["host"]


# -- the rules on their own ------------------------------------------------------------------------


def sign_get(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    now: datetime = SUITE_TIME,
    token: str | None = None,
) -> str:
    return signature(
        "GET",
        "https://example.amazonaws.com/",
        headers,
        b"",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        session_token=token,
        region="us-east-1",
        service="service",
        now=now,
    ).canonical_request


def test_headers_as_a_mapping_or_as_pairs_sign_the_same() -> None:
    assert sign_get({"My-Header1": "a"}) == sign_get([("my-header1", "a")])
    assert "my-header1:a,b\n" in sign_get([("My-Header1", "a"), ("my-header1", "b")])


def test_transport_headers_and_an_old_signature_are_not_signed() -> None:
    canonical = sign_get(
        {
            "User-Agent": "x",
            "Connection": "close",
            "Transfer-Encoding": "chunked",
            "X-Amzn-Trace-Id": "Root=1",
            "Authorization": "AWS4-HMAC-SHA256 old",
        }
    )
    assert canonical.split("\n")[-2] == "host;x-amz-date"


def test_the_signing_time_replaces_a_stale_date_header() -> None:
    canonical = sign_get({"X-Amz-Date": "20000101T000000Z"}, now=SUITE_TIME + timedelta(hours=1))
    assert "x-amz-date:20150830T133600Z\n" in canonical
    assert "20000101" not in canonical


def test_the_time_is_taken_in_utc() -> None:
    paris = datetime(2015, 8, 30, 14, 36, 0, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2015, 8, 30, 12, 36, 0)
    assert sign_get({}, now=paris) == sign_get({}, now=naive) == sign_get({})


def test_a_session_token_is_signed_and_sent() -> None:
    canonical = sign_get({}, token="tok")
    assert "x-amz-security-token:tok\n" in canonical
    assert canonical.split("\n")[-2] == "host;x-amz-date;x-amz-security-token"


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("/model/a%2Fb/invoke", "/model/a%252Fb/invoke"),
        ("/model/a:b/invoke", "/model/a%3Ab/invoke"),
        ("/a/./b/../c//d/", "/a/c/d/"),
        ("/../..", "/"),
        ("/~user/a b", "/~user/a%20b"),
    ],
)
def test_canonical_paths(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical
