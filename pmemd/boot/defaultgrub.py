"""(pure) ``/etc/default/grub`` edited in place: only the value of ``GRUB_CMDLINE_LINUX``
changes, every other byte of the admin's file stays as it was.

The file is sourced by ``sh``. pmemd edits the value only when it is a plain word or a
quoted string on one line without expansions; anything cleverer is refused with the line
named, rather than rewritten into something the admin did not write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pmemd.core.cmdline import CmdlineEdit, edit_args_text
from pmemd.errors import BootConfigError

CMDLINE_VAR = "GRUB_CMDLINE_LINUX"
_ASSIGNMENT = re.compile(r"^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_=.,:/!+@%-]*")
_AFTER_VALUE = re.compile(r"[ \t]*(?:#.*)?")


class DefaultGrubError(BootConfigError):
    """``/etc/default/grub`` holds a form pmemd will not edit."""


@dataclass(frozen=True)
class Assignment:
    line: int  # 1-based
    start: int  # offset of the value (inside any quotes) in the file's text
    end: int
    quote: str  # '"', "'" or "" (unquoted)
    value: str


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    offsets, pos = [], 0
    for line in text.splitlines(keepends=True):
        offsets.append((pos, line.rstrip("\r\n")))
        pos += len(line)
    return offsets


def find_assignment(text: str, shown: str, name: str = CMDLINE_VAR) -> Assignment | None:
    """The last assignment of ``name`` (the one ``sh`` keeps), or ``None``."""
    found = None
    for number, (offset, line) in enumerate(_lines_with_offsets(text), 1):
        match = _ASSIGNMENT.match(line)
        if match is None or match["name"] != name:
            continue
        found = _read_value(line, match.end(), offset, number, shown)
    return found


def _read_value(line: str, pos: int, offset: int, number: int, shown: str) -> Assignment:
    where = f"{shown}:{number}"
    quote = line[pos : pos + 1] if line[pos : pos + 1] in ("'", '"') else ""
    if quote:
        close = line.find(quote, pos + 1)
        if close < 0:
            raise DefaultGrubError(f"{where}: {CMDLINE_VAR} continues on the next line; "
                                   "pmemd edits only one-line values. Join it into one line")
        value, after = line[pos + 1 : close], line[close + 1 :]
        start = offset + pos + 1
        if quote == '"' and any(c in value for c in "$`\\"):
            raise DefaultGrubError(
                f"{where}: {CMDLINE_VAR} uses shell expansion or escapes ({value!r}); pmemd "
                "edits only plain values. Write the options out, or set boot.bootloader to "
                "a backend that does not edit this file")
    else:
        match = _PLAIN_WORD.match(line, pos)
        assert match is not None
        value, after = match.group(), line[match.end() :]
        start = offset + pos
    if _AFTER_VALUE.fullmatch(after) is None:
        raise DefaultGrubError(f"{where}: pmemd cannot tell where the value of {CMDLINE_VAR} "
                               f"ends ({line.strip()!r}); quote the whole value")
    return Assignment(number, start, start + len(value), quote, value)


def read_variable(text: str, shown: str, name: str) -> str | None:
    """The value of a simple assignment of ``name`` (``None`` when absent)."""
    try:
        found = find_assignment(text, shown, name)
    except DefaultGrubError:
        return None
    return found.value if found is not None else None


def edit_default_grub(text: str, edit: CmdlineEdit, shown: str) -> str:
    """``text`` with ``edit`` applied to the value of ``GRUB_CMDLINE_LINUX``."""
    found = find_assignment(text, shown)
    if found is None:
        if not edit.add:
            return text
        separator = "" if not text or text.endswith("\n") else "\n"
        return f'{text}{separator}{CMDLINE_VAR}="{" ".join(edit.add)}"\n'
    value = edit_args_text(found.value, edit)
    if value == found.value:
        return text
    if not found.quote:
        value = f'"{value}"'  # an unquoted word pmemd changes: quoted, as in a stock file
    return text[: found.start] + value + text[found.end :]
