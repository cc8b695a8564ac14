"""`vdm config`'s text: aligned tables within 80 columns, values masked where secret."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

WIDTH = 80


def masked(var: str, value: str) -> str:
    """A value as shown: keys and credential headers masked, URLs without credentials."""
    from vdm.config.secrets import mask, safe_url
    from vdm.config.settings import PASSTHRU

    if var.endswith("_API_KEY"):
        return " ".join(k if k.upper() == PASSTHRU else mask(k) for k in value.split())
    if is_secret(var):
        return mask(value)
    if var.endswith("_BASE_URL") or value.startswith(("http://", "https://")):
        return safe_url(value)
    return value


def is_secret(var: str) -> bool:
    """Keys, and headers that carry a credential (`CUSTOM_HEADER_AUTHORIZATION`)."""
    from vdm.config.secrets import is_credential_name

    return var.endswith("_API_KEY") or ("CUSTOM_HEADER_" in var and is_credential_name(var))


def table(rows: list[tuple[str, str, str]], indent: int) -> Iterator[str]:
    """Aligned `label  value  source` lines within WIDTH. The value column is as wide as keeps
    the most rows aligned; a row that does not fit it has its source right after its value,
    or on the next line when even that is too wide."""
    if not rows:
        return
    pad = " " * indent
    first = max(len(r[0]) for r in rows)

    def aligned(width: int) -> int:
        room = WIDTH - indent - first - width - 4
        return sum(1 for _, v, s in rows if len(v) <= width and len(s) <= room)

    second = max(sorted({len(v) for _, v, _ in rows}), key=lambda w: (aligned(w), w))
    for label, value, source in rows:
        head = f"{pad}{label:<{first}}  "
        line = f"{head}{value:<{second}}  {source}".rstrip()
        if len(line) > WIDTH:
            line = f"{head}{value}  {source}"
        if len(line) <= WIDTH or not source:
            yield line
        else:
            yield f"{head}{value}"
            yield f"{' ' * len(head)}  ({source})"


def notes(problems: list[str], warnings: list[str]) -> Iterator[str]:
    for title, items in (("Problems", problems), ("Warnings", warnings)):
        if items:
            yield ""
            yield f"{title}:"
            yield from bullets(items)


def bullets(items: Iterable[str]) -> Iterator[str]:
    """`  - item`, wrapped at WIDTH; paths, URLs and keys are never split."""
    import textwrap

    for item in items:
        yield from textwrap.wrap(
            item,
            WIDTH,
            initial_indent="  - ",
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
