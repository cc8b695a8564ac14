"""Editing configuration files as text, so that everything else in them survives.

`vdm config setup` changes a few settings in files the user may have written by hand: their
comments, other sections and other keys must stay as they are, and a setting that is already
there is replaced where it stands. These functions take a file's text and return the new text;
they do no I/O. A setting is named by its TOML path (`("openai", "aliases", "fast")`), and
`variable` spells the same setting for a `.env` file (`OPENAI_ALIAS_FAST`), from the tables of
vdm/config/sources.py.

Every TOML edit is checked by parsing the result with tomllib: an edit that would not read back
as intended raises WriterError rather than produce a broken file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vdm.config.sources import (
    PROVIDER_KEYS,
    TABLES,
    TOP_LEVEL,
    TOP_TABLES,
    dotenv_parts,
    var_name,
)

#: A setting's place in a TOML document: the table names, then the key.
TomlPath = tuple[str, ...]
TomlValue = str | int | float | bool | list[str]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: `.env` values that need no quotes (read_dotenv and a POSIX shell agree on them).
_BARE_ENV = re.compile(r"[A-Za-z0-9_./:@%+,=~-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


class WriterError(ValueError):
    """An edit that cannot be made safely; the message says what to edit by hand."""


# -- TOML values ----------------------------------------------------------------------------------


def toml_string(text: str) -> str:
    """`text` as a TOML basic string, every special character escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(name: str) -> str:
    """A key: bare when it can be (`api-key`), quoted otherwise (`"X.Team"`)."""
    return name if _BARE_KEY.fullmatch(name) else toml_string(name)


def toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_string(v) for v in value) + "]"
    return toml_string(value)


def dotted(path: Sequence[str]) -> str:
    """`("openai", "aliases", "fast")` → `openai.aliases.fast` (parts quoted where needed)."""
    return ".".join(toml_key(part) for part in path)


# -- the shape of a TOML document, line by line ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    path: TomlPath
    line: int
    array: bool  # [[x]]: never edited


@dataclass(frozen=True, slots=True)
class _Entry:
    table: TomlPath  # the header it sits under (() at the top)
    key: TomlPath  # its key, dotted keys split
    start: int
    end: int  # last line (a value may span lines)
    in_array: bool

    @property
    def path(self) -> TomlPath:
        return self.table + self.key


def _walk(data: Any) -> TomlPath:
    """The single path of a one-key document (`{"a": {"b": {}}}` → `("a", "b")`)."""
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        key = next(iter(data))
        path.append(key)
        data = data[key]
    return tuple(path)


def _key_end(line: str) -> int:
    """Index of the `=` that ends the key of a key/value line (quotes respected), or -1."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return i
        i += 1
    return -1


def _scan(lines: list[str]) -> tuple[list[_Table], list[_Entry]]:
    """Headers and key/value entries of a valid document. A value's extent is the shortest
    run of lines that parses, so multi-line strings and arrays are never mistaken for
    headers."""
    tables: list[_Table] = []
    entries: list[_Entry] = []
    table: TomlPath = ()
    array = False
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        if stripped.startswith("["):
            array = stripped.startswith("[[")
            table = _walk(tomllib.loads(stripped))
            tables.append(_Table(table, i, array))
            i += 1
            continue
        end = i
        while True:
            try:
                tomllib.loads("\n".join(lines[i : end + 1]))
                break
            except tomllib.TOMLDecodeError:
                end += 1
                if end >= len(lines):
                    raise WriterError(f"line {i + 1}: cannot find the end of this value") from None
        key = _walk(tomllib.loads(lines[i][: _key_end(lines[i])].strip() + " = 0"))
        entries.append(_Entry(table, key, i, end, array))
        i = end + 1
    return tables, entries


def _comment(line: str) -> str:
    """The trailing `# comment` of a one-line entry, or ""."""
    for at in (m.start() for m in re.finditer("#", line)):
        try:
            tomllib.loads(line[:at])
        except tomllib.TOMLDecodeError:
            continue
        return line[at:]
    return ""


def _comments(block: str) -> list[str]:
    """Every `# comment` of a (multi-line) entry, outside its strings, in order."""
    found: list[str] = []
    i, n = 0, len(block)
    while i < n:
        c = block[i]
        if c == "#":
            end = block.find("\n", i)
            end = n if end < 0 else end
            found.append(block[i:end].rstrip("\r"))
            i = end
        elif c in "\"'":
            delim = c * 3 if block.startswith(c * 3, i) else c
            i += len(delim)
            while i < n and not block.startswith(delim, i):
                i += 2 if c == '"' and block[i] == "\\" else 1
            i += len(delim)
        else:
            i += 1
    return found


def _attached_start(lines: list[str], index: int) -> int:
    """The first line of the comment block directly above line `index` (it belongs there)."""
    while index > 0 and lines[index - 1].strip().startswith("#"):
        index -= 1
    return index


def _lookup(data: Any, path: TomlPath) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# -- TOML edits -----------------------------------------------------------------------------------


def set_toml(text: str, path: TomlPath, value: TomlValue) -> str:
    """`text` with the setting at `path` set to `value`: replaced in place when present (its
    key spelling, indentation and comment kept), else added to its table, else added in a
    new table next to its relatives. Everything else is kept byte for byte."""
    if not path:
        raise WriterError("empty setting path")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WriterError(f"invalid TOML: {exc}; fix it first (`vdm config validate`)") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    tables, entries = _scan(lines)
    table, key = path[:-1], path[-1]
    found = [e for e in entries if e.path == path and not e.in_array]
    if found:
        entry = found[0]
        first = lines[entry.start]
        indent = first[: len(first) - len(first.lstrip())]
        key_text = first[: _key_end(first)].strip()
        new = f"{indent}{key_text} = {toml_value(value)}"
        if entry.start == entry.end:
            comment = _comment(first)
            lines[entry.start] = new + (f"  {comment}" if comment else "")
        else:  # the comments inside a multi-line value go above the new line
            block = "\n".join(lines[entry.start : entry.end + 1])
            kept = [f"{indent}{c}" for c in _comments(block)]
            lines[entry.start : entry.end + 1] = [*kept, new]
    else:
        _insert(lines, tables, entries, table, key, value)
    result = newline.join(lines) + newline
    _check(result, path, value)
    return result


def set_toml_values(text: str, items: Iterable[tuple[TomlPath, TomlValue]]) -> str:
    for path, value in items:
        text = set_toml(text, path, value)
    return text


def _insert(
    lines: list[str],
    tables: list[_Table],
    entries: list[_Entry],
    table: TomlPath,
    key: str,
    value: TomlValue,
) -> None:
    n = len(table)
    inside = [e for e in entries if e.path[:n] == table and len(e.path) > n and not e.in_array]
    if any(len(e.path) > n + 1 and e.path[: n + 1] == (*table, key) for e in inside):
        raise WriterError(f"{dotted((*table, key))} is a table here; edit it by hand")
    direct = [e for e in inside if e.table == table]
    if direct:  # append to the table's own entries
        after = max(e.end for e in direct)
        lines.insert(after + 1, f"{toml_key(key)} = {toml_value(value)}")
        return
    declared = [t for t in tables if t.path == table and not t.array]
    if declared:  # an empty [table]
        lines.insert(declared[0].line + 1, f"{toml_key(key)} = {toml_value(value)}")
        return
    dotted_in = [e for e in inside if len(e.table) < n]
    if dotted_in:  # the table was made by dotted keys (`aliases.fast = …`): add one more
        last = max(dotted_in, key=lambda e: e.end)
        rel = (*table, key)[len(last.table) :]
        lines.insert(last.end + 1, f"{dotted(rel)} = {toml_value(value)}")
        return
    if any(e.path[:n] == table for e in entries if len(e.path) == n):
        raise WriterError(f"{dotted(table)} is an inline table or a value; edit it by hand")
    if not table:  # a top-level key with no top-level entries yet: above the first table
        first = _attached_start(lines, tables[0].line) if tables else len(lines)
        block = [f"{toml_key(key)} = {toml_value(value)}"]
        if first < len(lines):
            block.append("")
        lines[first:first] = block
        return
    _new_table(lines, tables, entries, table, f"{toml_key(key)} = {toml_value(value)}")


def _new_table(
    lines: list[str], tables: list[_Table], entries: list[_Entry], table: TomlPath, line: str
) -> None:
    """`[table]` with `line`: before its first sub-table, else after its closest relatives
    (`[openai.aliases]` after `[openai]` and its other sub-tables), else at the end."""
    subs = [t for t in tables if t.path[: len(table)] == table]
    if subs:
        at = _attached_start(lines, subs[0].line)
        lines[at:at] = [f"[{dotted(table)}]", line, ""]
        return
    at = len(lines)
    for depth in range(len(table) - 1, 0, -1):
        family = [k for k, t in enumerate(tables) if t.path[:depth] == table[:depth]]
        if family:
            at = _block_end(lines, tables, entries, family[-1]) + 1
            break
    block = [f"[{dotted(table)}]", line]
    if at > 0 and lines[at - 1].strip():
        block.insert(0, "")
    if at < len(lines) and lines[at].strip():
        block.append("")
    lines[at:at] = block


def _block_end(lines: list[str], tables: list[_Table], entries: list[_Entry], k: int) -> int:
    """The last line of table `k`'s own entries (its header if it has none)."""
    start = tables[k].line
    stop = tables[k + 1].line if k + 1 < len(tables) else len(lines)
    return max([start, *(e.end for e in entries if start < e.start < stop)])


def _check(text: str, path: TomlPath, value: TomlValue) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a bug here, never the user's file
        raise WriterError(f"setting {dotted(path)} would break the file ({exc})") from None
    if _lookup(data, path) != value:
        raise WriterError(f"cannot set {dotted(path)} safely here; edit it by hand")


# -- .env -----------------------------------------------------------------------------------------


def variable(path: TomlPath) -> str:
    """The environment variable of a TOML setting: `("openai", "aliases", "fast")` →
    `OPENAI_ALIAS_FAST`, `("default-provider",)` → `VDM_DEFAULT_PROVIDER`."""
    if len(path) == 1 and path[0] in TOP_LEVEL:
        return TOP_LEVEL[path[0]]
    if len(path) == 2 and path[0] in TOP_TABLES:
        return TOP_TABLES[path[0]] + var_name(path[1])
    if len(path) == 2 and path[1] in PROVIDER_KEYS:
        return f"{var_name(path[0])}_{PROVIDER_KEYS[path[1]]}"
    if len(path) == 3 and path[1] in TABLES:
        return f"{var_name(path[0])}_{TABLES[path[1]]}{var_name(path[2])}"
    raise WriterError(f"{dotted(path)} is not a vdm setting")


def dotenv_value(value: str) -> str:
    """`value` spelled so that read_dotenv (and a shell's `source`) read it back unchanged."""
    if _BARE_ENV.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    if "\\" in value:
        raise WriterError("a value with both a quote and a backslash; edit .env by hand")
    return '"' + value.replace('"', '\\"').replace("\n", "\\n") + '"'


def set_dotenv(text: str, name: str, value: str) -> str:
    """`text` with `name=value`: the line that defines `name` (the last one, which wins) is
    replaced in place, keeping an `export ` prefix; else the line is appended."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    pattern = re.compile(rf"^(\s*(?:export\s+)?){re.escape(name)}\s*=")
    rendered = dotenv_value(value)
    for i in range(len(lines) - 1, -1, -1):
        match = pattern.match(lines[i])
        if match is None:
            continue
        comment = _dotenv_comment(lines[i][match.end() :])
        new = f"{match.group(1)}{name}={rendered}"
        if comment and _BARE_ENV.fullmatch(value):
            lines[i] = f"{new} {comment}"
        else:  # a comment after a quoted value would be read as part of it: keep it above
            lines[i : i + 1] = [comment, new] if comment else [new]
        break
    else:
        lines.append(f"{name}={rendered}")
    return newline.join(lines) + newline


def _dotenv_comment(rest: str) -> str:
    """The ` # comment` after a value, as read_dotenv sees it."""
    return dotenv_parts(rest)[1]
