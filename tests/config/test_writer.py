"""Editing TOML and .env text in place: everything else in the file survives, every edit reads
back as intended (tomllib / read_dotenv), and an edit that cannot be made safely says so."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vdm.config.sources import flatten_toml, read_dotenv
from vdm.config.writer import (
    WriterError,
    set_dotenv,
    set_toml,
    set_toml_values,
    toml_value,
    variable,
)

HAND_WRITTEN = """\
# my vdm configuration
default-provider = "groq"   # the team's choice

[openai]
api-key = "sk-old"  # work account
timeout = 60

# aliases for openai
[openai.aliases]
fast = "gpt-4o-mini"

[groq]
"api-key" = [
  "g1",
  "g2",
]
notes = '''
[not-a-table]
fast = "no"
'''
"""


def test_an_existing_key_is_replaced_in_place_keeping_its_comment() -> None:
    text = set_toml(HAND_WRITTEN, ("openai", "api-key"), "sk-new")
    assert 'api-key = "sk-new"  # work account' in text
    before, after = HAND_WRITTEN.splitlines(), text.splitlines()
    assert len(before) == len(after)
    assert [a for a, b in zip(after, before, strict=True) if a != b] == [
        'api-key = "sk-new"  # work account'
    ]


def test_a_multi_line_value_is_replaced_whole_and_its_key_spelling_kept() -> None:
    text = set_toml(HAND_WRITTEN, ("groq", "api-key"), "g3")
    assert '"api-key" = "g3"' in text and '"g1"' not in text
    assert tomllib.loads(text)["groq"]["notes"] == '[not-a-table]\nfast = "no"\n'


def test_the_comments_of_a_replaced_multi_line_value_stay_above_it() -> None:
    before = (
        "[openai]\n"
        "api-key = [\n"
        '  "k1",  # work\n'
        '  "k#2",  # personal\n'
        "]  # two keys, round robin\n"
        "timeout = 60\n"
    )
    text = set_toml(before, ("openai", "api-key"), "sk-new")
    assert text == (
        '[openai]\n# work\n# personal\n# two keys, round robin\napi-key = "sk-new"\ntimeout = 60\n'
    )


def test_new_settings_land_in_their_table_and_nothing_else_changes() -> None:
    text = set_toml_values(
        HAND_WRITTEN,
        [
            (("openai", "aliases", "research"), "o3"),
            (("groq", "aliases", "code"), "openai/gpt-oss-120b"),
            (("gemini", "api-key"), "AIza-key"),
            (("default-provider",), "openai"),
            (("fallback", "sonnet"), "groq:openai/gpt-oss-120b"),
        ],
    )
    data = tomllib.loads(text)
    assert data["openai"] == {
        "api-key": "sk-old",
        "timeout": 60,
        "aliases": {"fast": "gpt-4o-mini", "research": "o3"},
    }
    assert data["groq"]["aliases"] == {"code": "openai/gpt-oss-120b"}
    assert data["groq"]["api-key"] == ["g1", "g2"]
    assert data["gemini"] == {"api-key": "AIza-key"}
    assert data["default-provider"] == "openai"
    assert data["fallback"] == {"sonnet": "groq:openai/gpt-oss-120b"}
    for comment in ("# my vdm configuration", "# the team's choice", "# aliases for openai"):
        assert comment in text
    # the new alias follows the existing one, inside [openai.aliases]
    lines = text.splitlines()
    assert lines[lines.index('fast = "gpt-4o-mini"') + 1] == 'research = "o3"'
    # the multi-line string's fake header did not attract the new groq alias
    assert text.index("[groq.aliases]") > text.index("'''\n", text.index("notes"))


def test_a_top_level_key_goes_above_the_first_table() -> None:
    text = set_toml("# vdm\n\n[openai]\napi-key = 'k'\n", ("port",), 9000)
    assert text == "# vdm\n\nport = 9000\n\n[openai]\napi-key = 'k'\n"


def test_a_table_opened_before_its_parent_gets_the_parent_above_it() -> None:
    text = set_toml("[openai.aliases]\nfast = 'a'\n", ("openai", "api-key"), "k")
    assert text.startswith('[openai]\napi-key = "k"\n')
    assert tomllib.loads(text)["openai"] == {"api-key": "k", "aliases": {"fast": "a"}}


def test_a_table_made_of_dotted_keys_gets_another_dotted_key() -> None:
    text = set_toml("[openai]\naliases.fast = 'a'\n", ("openai", "aliases", "slow"), "b")
    assert 'aliases.slow = "b"' in text
    assert tomllib.loads(text)["openai"]["aliases"] == {"fast": "a", "slow": "b"}


def test_an_empty_file_gets_a_fresh_table() -> None:
    text = set_toml("", ("openai", "api-key"), "k")
    assert text == '[openai]\napi-key = "k"\n'


def test_crlf_line_endings_are_kept() -> None:
    text = set_toml("[openai]\r\ntimeout = 1\r\n", ("openai", "timeout"), 2)
    assert text == "[openai]\r\ntimeout = 2\r\n"


@pytest.mark.parametrize(
    ("text", "path", "says"),
    [
        ("[openai]\naliases = { fast = 'a' }\n", ("openai", "aliases", "b"), "inline table"),
        ("openai = 3\n", ("openai", "api-key"), "inline table or a value"),
        ("[openai]\ntimeout = = 3\n", ("openai", "api-key"), "invalid TOML"),
    ],
)
def test_an_edit_that_cannot_be_made_safely_is_refused(
    text: str, path: tuple[str, ...], says: str
) -> None:
    with pytest.raises(WriterError, match=says):
        set_toml(text, path, "x")


AWKWARD = [
    "plain",
    'with "double" quotes',
    "with 'single' quotes",
    "back\\slash and \\n literally",
    "tab\there\nnewline",
    "unicode → ü 漢字",
    "control \x01 char",
    "# not a comment",
    "",
]


@pytest.mark.parametrize("value", AWKWARD)
def test_any_string_reads_back_exactly_from_toml(value: str) -> None:
    text = set_toml("[x]\n", ("x", "key with space.and dot"), value)
    assert tomllib.loads(text)["x"]["key with space.and dot"] == value


def test_toml_values_of_every_kind_read_back() -> None:
    for value in (True, 3, 2.5, ["k1", 'k"2']):
        assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value


def test_variables_match_what_the_loader_reads_from_toml() -> None:
    """`variable` spells a TOML setting exactly as vdm/config/sources.py flattens it."""
    paths = [
        ("default-provider",),
        ("proxy-api-key",),
        ("openai", "api-key"),
        ("my-corp", "base-url"),
        ("openai", "aliases", "my-fast"),
        ("openai", "custom-headers", "X-Team"),
        ("fallback", "sonnet"),
        ("custom-headers", "X-Team"),
    ]
    text = set_toml_values("", [(p, f"v{i}") for i, p in enumerate(paths)])
    flat = flatten_toml(tomllib.loads(text), "f").values
    assert {variable(p): f"v{i}" for i, p in enumerate(paths)} == {
        k: v.value for k, v in flat.items()
    }
    with pytest.raises(WriterError, match="not a vdm setting"):
        variable(("openai", "colour"))


# -- .env ----------------------------------------------------------------------------------------


def _env(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return read_dotenv(path)


def test_dotenv_replaces_the_line_in_place_and_keeps_the_rest(tmp_path: Path) -> None:
    before = "# keys\nexport OPENAI_API_KEY=sk-old # mine\nDATABASE_URL=postgres://x\n"
    text = set_dotenv(before, "OPENAI_API_KEY", "sk-new")
    assert text == "# keys\nexport OPENAI_API_KEY=sk-new # mine\nDATABASE_URL=postgres://x\n"
    assert _env(tmp_path, text) == {"OPENAI_API_KEY": "sk-new", "DATABASE_URL": "postgres://x"}


def test_dotenv_keeps_the_comment_after_a_quoted_value_with_an_escaped_quote(
    tmp_path: Path,
) -> None:
    text = set_dotenv('OPENAI_API_KEY="a\\"b" # work key\n', "OPENAI_API_KEY", "sk-new")
    assert text == "OPENAI_API_KEY=sk-new # work key\n"
    assert _env(tmp_path, text) == {"OPENAI_API_KEY": "sk-new"}


def test_dotenv_replaces_the_last_definition_which_is_the_one_that_counts(
    tmp_path: Path,
) -> None:
    text = set_dotenv("A=1\nA=2\nB=3", "A", "9")
    assert text == "A=1\nA=9\nB=3\n"
    assert _env(tmp_path, text)["A"] == "9"


def test_dotenv_appends_a_new_variable(tmp_path: Path) -> None:
    text = set_dotenv("A=1", "GROQ_API_KEY", "gsk_1")
    assert text == "A=1\nGROQ_API_KEY=gsk_1\n"


def test_a_comment_after_a_value_that_needs_quotes_moves_above_it(tmp_path: Path) -> None:
    text = set_dotenv("OPENAI_API_KEY=old # mine\n", "OPENAI_API_KEY", "k1 k2")
    assert text == "# mine\nOPENAI_API_KEY='k1 k2'\n"
    assert _env(tmp_path, text) == {"OPENAI_API_KEY": "k1 k2"}


@pytest.mark.parametrize(
    "value",
    ["sk-1", "k1 k2", "!PASSTHRU", "has # hash", "it's", 'say "hi"', "two\nlines", "ü → x"],
)
def test_any_dotenv_value_reads_back_exactly(tmp_path: Path, value: str) -> None:
    assert _env(tmp_path, set_dotenv("X=old\n", "X", value))["X"] == value


def test_a_dotenv_value_that_cannot_be_quoted_is_refused() -> None:
    with pytest.raises(WriterError, match="by hand"):
        set_dotenv("", "X", "it's a back\\slash")
