"""AWS event-stream test vectors, copied from botocore's own decoder tests.

Source: github.com/boto/botocore, `tests/unit/test_eventstream.py` at commit
0e6e2404b85dc336dd2889814e089bde7d1a4c55 (Apache-2.0). The encoded bytes and the headers and
payload botocore decodes them to are copied as they are; only the `EventStreamMessage`
wrappers are reduced to (headers, payload). botocore decodes a uuid header (type 9) to its 16
raw bytes and a timestamp (type 8) to an int of milliseconds; the values here are botocore's.
"""

from __future__ import annotations

#: name -> (encoded message, headers botocore decodes, payload)
POSITIVE: dict[str, tuple[bytes, dict[str, object], bytes]] = {
    "EMPTY_MESSAGE": (b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff", {}, b""),
    "INT8_HEADER": (
        b"\x00\x00\x00\x17\x00\x00\x00\x07)\x86\x01X\x04byte\x02\xff\xc2\xf8i\xdc",
        {"byte": -1},
        b"",
    ),
    "INT16_HEADER": (
        b"\x00\x00\x00\x19\x00\x00\x00\tq\x0e\x92>\x05short\x03\xff\xff\xb2|\xb6\xcc",
        {"short": -1},
        b"",
    ),
    "INT32_HEADER": (
        b"\x00\x00\x00\x1d\x00\x00\x00\r\x83\xe3\xf0\xe7\x07"
        b"integer\x04\xff\xff\xff\xff\x8b\x8e\x12\xeb",
        {"integer": -1},
        b"",
    ),
    "INT64_HEADER": (
        b"\x00\x00\x00\x1e\x00\x00\x00\x0e]J\xdb\x8d\x04"
        b"long\x05\xff\xff\xff\xff\xff\xff\xff\xffK\xc22\xda",
        {"long": -1},
        b"",
    ),
    "PAYLOAD_NO_HEADERS": (
        b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96",
        {},
        b"{'foo':'bar'}",
    ),
    "PAYLOAD_ONE_STR_HEADER": (
        b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10"
        b"application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
        {"content-type": "application/json"},
        b"{'foo':'bar'}",
    ),
    "ALL_HEADERS_TYPES": (
        b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c"
        b"\x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03"
        b"\x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05"
        b"\x016\x06\x00\x05bytes\x017\x07\x00\x04utf8"
        b"\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef"
        b"\x63\x35\x36\x71",
        {
            "0": True,
            "1": False,
            "2": 0x02,
            "3": 0x03,
            "4": 0x04,
            "5": 0x05,
            "6": b"bytes",
            "7": "utf8",
            "8": 0x08,
            "9": b"0123456789abcdef",
        },
        b"",
    ),
    "ERROR_EVENT_MESSAGE": (
        b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e"
        b"\x0d:message-type\x07\x00\x05error"
        b"\x0b:error-code\x07\x00\x04code"
        b"\x0e:error-message\x07\x00\x07message"
        b"\x6b\x6c\xea\x3d",
        {":message-type": "error", ":error-code": "code", ":error-message": "message"},
        b"",
    ),
}

#: name -> encoded message botocore rejects, and the botocore exception it raises.
NEGATIVE: dict[str, tuple[bytes, str]] = {
    "CORRUPTED_LENGTH": (
        b"\x01\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96",
        "ChecksumMismatch",
    ),
    "CORRUPTED_PAYLOAD": (
        b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'\x8d\xc3e96",
        "ChecksumMismatch",
    ),
    "CORRUPTED_HEADERS": (
        b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent+type\x07\x00\x10"
        b"application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
        "ChecksumMismatch",
    ),
    "CORRUPTED_HEADER_LENGTH": (
        b"\x00\x00\x00=\xff\x00\x01\x02\x07\xfd\x83\x96\x0ccontent-type\x07\x00"
        b"\x10application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
        "ChecksumMismatch",
    ),
    "DUPLICATE_HEADER": (
        b"\x00\x00\x00\x24\x00\x00\x00\x14\x4b\xb9\x82\xd0"
        b"\x04test\x04asdf\x04test\x04asdf\xf3\xf4\x75\x63",
        "DuplicateHeader",
    ),
    # Well formed, checksums right, but the headers length is over 128 KiB.
    "INVALID_HEADERS_LENGTH": (
        b"\x00\x00\x00\x3d"  # total length
        b"\xff\x00\x01\x02"  # headers length
        b"\x15\x83\xf5\xc2"  # prelude crc
        b"\x0ccontent-type\x07\x00\x10application/json"  # headers
        b"{'foo':'bar'}"  # payload
        b"\x2f\x37\x7f\x5d",  # message crc
        "InvalidHeadersLength",
    ),
}


def invalid_payload_length() -> bytes:
    """botocore's INVALID_PAYLOAD_LENGTH: well formed, but its payload is one byte over
    24 MiB (built on demand: 24 MiB is too much to hold for every test)."""
    return (
        b"\x01\x80\x00\x21"  # total length
        + b"\x00\x00\x00\x00"  # headers length
        + b"\xdd\x3f\x33\xb1"  # prelude crc
        + b"0" * (24 * 1024**2 + 1)  # payload
        + b"\x2a\xb4\xc5\xa5"  # message crc
    )
