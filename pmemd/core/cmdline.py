"""(pure) The kernel command line: split it as the kernel does, edit its text keeping every
byte pmemd does not own, and render arguments back.

One splitter (:func:`arg_spans`) and one reading of an argument (:func:`key_value`) serve
both the command line the kernel booted with and the bootloader files pmemd edits, so the
two cannot disagree about where an argument starts, what it says, or where init's part
begins."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_SPACE = " \t\n\v\f\r"
_BLANK = " \t"
END_OF_KERNEL_ARGS = "--"  # what follows goes to init, not to the kernel
# What pmemd itself ever writes: canonical memmap=SIZE!START and nokaslr. Nothing a shell,
# GRUB script or the kernel would read differently (no quotes, backslashes, $ or spaces).
_WRITABLE = re.compile(r"[A-Za-z0-9_.,:=!-]+")


@dataclass(frozen=True)
class KernelArg:
    """One command-line argument: the text as written and the key/value the kernel sees."""

    text: str
    key: str
    value: str | None
    after_dashdash: bool = False  # passed to init, not seen as a kernel parameter


@dataclass(frozen=True)
class Cmdline:
    args: tuple[KernelArg, ...]

    def has_flag(self, key: str) -> bool:
        return any(a.key == key and not a.after_dashdash for a in self.args)

    def values(self, key: str) -> tuple[str, ...]:
        return tuple(a.value for a in self.args
                     if a.key == key and a.value is not None and not a.after_dashdash)


# --- reading ------------------------------------------------------------------------------


def arg_spans(text: str) -> list[tuple[int, int]]:
    """Where each argument lies, as the kernel's ``lib/cmdline.c:next_arg`` splits: white
    space outside double quotes ends an argument."""
    spans: list[tuple[int, int]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _SPACE:
            pos += 1
        if pos >= end:
            return spans
        start, in_quote = pos, False
        while pos < end and (in_quote or text[pos] not in _SPACE):
            if text[pos] == '"':
                in_quote = not in_quote
            pos += 1
        spans.append((start, pos))


def _unquote(text: str) -> str:
    """A leading double quote, and then a last one, taken off (as ``next_arg`` does)."""
    if text.startswith('"'):
        text = text[1:]
        if text.endswith('"'):
            text = text[:-1]
    return text


def key_value(raw: str) -> tuple[str, str | None]:
    """What the kernel sees of one argument as written: ``param`` and ``val`` (``None``
    without ``=``), quotes removed as ``next_arg`` removes them."""
    key, equals, value = _unquote(raw).partition("=")
    return (key, _unquote(value)) if equals else (key, None)


def _is_separator(raw: str) -> bool:
    """The ``--`` after which arguments belong to init (``kernel/params.c:parse_args``)."""
    return key_value(raw) == (END_OF_KERNEL_ARGS, None)


def parse_cmdline(text: str) -> Cmdline:
    """Split a command line into arguments; arguments after ``--`` go to init."""
    args: list[KernelArg] = []
    after = False
    for start, end in arg_spans(text):
        raw = text[start:end]
        key, value = key_value(raw)
        args.append(KernelArg(raw, key, value, after_dashdash=after))
        after = after or _is_separator(raw)
    return Cmdline(tuple(args))


def merge_args(*groups: Iterable[str]) -> tuple[str, ...]:
    """The arguments of every group, each once, in the order first seen."""
    return tuple(dict.fromkeys(arg for group in groups for arg in group))


def carries(cmdline: Cmdline, arg: str) -> bool:
    """``arg``, exactly as written, is among the kernel's arguments (not init's)."""
    return any(a.text == arg and not a.after_dashdash for a in cmdline.args)


# --- writing ------------------------------------------------------------------------------


def render_cmdline(args: Iterable[str]) -> str:
    return " ".join(args)


def check_writable(arg: str) -> str:
    if _WRITABLE.fullmatch(arg) is None:
        raise ValueError(f"pmemd refuses to write the kernel argument {arg!r}")
    return arg


@dataclass(frozen=True)
class CmdlineEdit:
    """Arguments to put on the next boot's command line and pmemd's own to take off."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for arg in self.add + self.remove:
            check_writable(arg)

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def _kernel_spans(text: str) -> list[tuple[int, int]]:
    """The spans before a ``--`` (arguments after it belong to init)."""
    spans = []
    for start, end in arg_spans(text):
        if _is_separator(text[start:end]):
            break
        spans.append((start, end))
    return spans


def args_of(text: str) -> tuple[str, ...]:
    """The kernel's arguments of a command line's text, as written."""
    return tuple(text[s:e] for s, e in _kernel_spans(text))


def _cut(text: str, start: int, end: int) -> str:
    """``text`` without the argument at ``start:end`` and the blanks that separated it."""
    cut_from = start
    while cut_from > 0 and text[cut_from - 1] in _BLANK:
        cut_from -= 1
    cut_to = end
    if cut_from == 0 or text[cut_from - 1] in "\n\r":
        cut_from = start  # first on its line: take the blanks after it instead
        while cut_to < len(text) and text[cut_to] in _BLANK:
            cut_to += 1
    return text[:cut_from] + text[cut_to:]


def _append(text: str, addition: str) -> str:
    """``addition`` after the kernel's last argument (before a ``--``, if any)."""
    spans = arg_spans(text)
    for start, end in spans:
        if _is_separator(text[start:end]):
            return text[:start] + addition + " " + text[start:]
    if not spans:
        lead = len(text) - len(text.lstrip(_BLANK))
        return text[:lead] + addition + text[lead:]
    last = spans[-1][1]
    return text[:last] + " " + addition + text[last:]


def trial_args_text(text: str, owned: Sequence[str], trial: Sequence[str]) -> str:
    """A command line's ``text`` as a trial entry carries it: pmemd's ``owned`` options
    replaced by ``trial``'s (each one pmemd may write), every other byte kept."""
    return edit_args_text(text, CmdlineEdit(add=tuple(map(check_writable, trial)),
                                            remove=tuple(owned)))


def edit_args_text(text: str, edit: CmdlineEdit) -> str:
    """``text`` with ``edit.remove`` taken out and missing ``edit.add`` appended (before a
    ``--``), every other byte kept."""
    out = text
    for start, end in reversed(_kernel_spans(text)):
        if out[start:end] in edit.remove:
            out = _cut(out, start, end)
    present = set(args_of(out))
    missing = [arg for arg in edit.add if arg not in present]
    return _append(out, " ".join(missing)) if missing else out
