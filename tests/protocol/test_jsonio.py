"""`vdm.protocol.jsonio`: orjson's speed, the standard library's answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vdm.protocol import jsonio


def stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "value",
    [
        {"type": "text_delta", "text": 'héllo "wörld" 😀 \\ \x00\x1f\x7f\u2028 \n\t'},
        {"model": "m", "max_tokens": 1024, "temperature": 0.7, "top_p": 1.0, "stop": None},
        [True, False, None, -0.0, 1e16, 1.5e300, 2**63, -(2**63), 2**64 - 1],
        {"nested": [{"a": [1, {"b": "c"}]}], "empty": {}, "list": []},
    ],
    ids=["strings", "request", "numbers", "nested"],
)
def test_dumps_writes_the_bytes_the_standard_library_wrote(value: Any) -> None:
    assert jsonio.dumps(value) == stdlib_dumps(value)


@pytest.mark.parametrize(
    "value",
    [{"n": 2**64}, {"n": -(2**63) - 1}, {1: "int key", None: "null key"}],
    ids=["beyond-u64", "below-i64", "non-str-keys"],
)
def test_what_orjson_cannot_write_is_written_as_before(value: Any) -> None:
    assert jsonio.dumps(value) == stdlib_dumps(value)


def test_an_unpaired_surrogate_fails_as_it_did() -> None:
    with pytest.raises(UnicodeEncodeError):
        jsonio.dumps({"text": "\ud800"})


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"b":[true,null,"\xc3\xa9"],"c":{"d":1.5}}',
        b'{"id":123456789012345678901234567890,"n":-99999999999999999999}',
        b'{"tool":"function-call-1234567890123456789","n":1}',
        b'\xef\xbb\xbf{"bom":1}',
        b'{"u":"\\ud800"}',
        b'{"nan":NaN,"inf":-Infinity,"big":1e400}',
        '{"a": 1}'.encode("utf-16"),
    ],
    ids=["plain", "big-ints", "digits-in-a-string", "bom", "surrogate", "constants", "utf-16"],
)
def test_loads_returns_what_the_standard_library_returned(text: bytes) -> None:
    expected = json.loads(text)
    got = jsonio.loads(text)
    assert repr(got) == repr(expected)  # repr: NaN != NaN, and ints must stay ints
    if text[:1] != b"\xff":  # a str too (the SSE decoders' event data)
        assert repr(jsonio.loads(text.decode("utf-8-sig", "surrogatepass"))) == repr(
            json.loads(text.decode("utf-8-sig", "surrogatepass"))
        )


def test_big_integers_stay_exact() -> None:
    assert jsonio.loads(b'{"n":123456789012345678901234567890}') == {
        "n": 123456789012345678901234567890
    }


@pytest.mark.parametrize("text", [b"{", b'{"a":}', b"\xff\xfe", b"", b"[1,]"])
def test_bad_json_raises_the_standard_library_error(text: bytes) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        jsonio.loads(text)
    assert str(got.value) == str(expected.value)
    assert type(got.value) is type(expected.value)


def test_stdlib_options_apply_where_the_standard_library_decides() -> None:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} refused")

    with pytest.raises(ValueError, match="NaN refused"):
        jsonio.loads(b'{"x":NaN}', parse_constant=refuse)
    assert jsonio.loads(b'{"x":1}', parse_constant=refuse) == {"x": 1}


def test_event_bytes_with_invalid_utf8_read_as_the_text_decoder_reads_them() -> None:
    from vdm.protocol.sse import json_event

    raw = b'{"text":"caf\xc3\xa9 \xff"}'
    assert json_event(raw) == json_event(raw.decode("utf-8", "replace")) == {"text": "café \ufffd"}


@pytest.mark.parametrize(
    ("text", "strict"),
    [
        (b'{"a":[1,2.5,"\\ud83d\\ude00",null],"n":123456789012345678901234567890}', True),
        (b'{"u":"\\ud800"}', False),
        (b'{"x":NaN}', False),
        (b'\xef\xbb\xbf{"bom":1}', False),
        # Strict JSON, but nested beyond jiter's limit: the standard library reads it.
        (b"[" * 300 + b"]" * 300, False),
    ],
    ids=["strict", "unpaired-surrogate", "nan", "bom", "deep"],
)
def test_loads_strict_says_whether_only_the_standard_library_read_it(
    text: bytes, strict: bool
) -> None:
    value, was_strict = jsonio.loads_strict(text)
    assert repr(value) == repr(json.loads(text))
    assert was_strict is strict


def test_tool_arguments_are_compact_utf8_json_with_exact_integers() -> None:
    value = {"command": "ls -la", "note": "café 😀", "n": 2**70, "nested": {"a": [1, 2.5]}}
    text = jsonio.tool_arguments(value)
    big = 2**70
    assert text == f'{{"command":"ls -la","note":"café 😀","n":{big},"nested":{{"a":[1,2.5]}}}}'
    assert json.loads(text) == value
