"""(pure) The kernel command line: split it as the kernel does, and render arguments back."""

from __future__ import annotations

from collections.abc import Iterable

from pmemd.model import Cmdline, KernelArg

_SPACE = " \t\n\v\f\r"


def _next_arg(text: str, pos: int) -> tuple[str, str, str | None, int]:
    """One step of ``lib/cmdline.c:next_arg``: (raw, key, value, next position)."""
    in_quote = quoted = text[pos] == '"'
    start = pos + 1 if quoted else pos
    i = start
    equals = -1
    while i < len(text):
        char = text[i]
        if char in _SPACE and not in_quote:
            break
        if equals < 0 and char == "=":
            equals = i
        if char == '"':
            in_quote = not in_quote
        i += 1
    raw = text[pos:i]
    body = text[start:i]
    if quoted and body.endswith('"'):
        body = body[:-1]
    if equals < 0:
        key, value = body, None
    else:
        key, value = body[: equals - start], body[equals - start + 1 :]
        if value.startswith('"'):
            value = value[1:]
            if value.endswith('"'):
                value = value[:-1]
    return raw, key, value, i


def parse_cmdline(text: str) -> Cmdline:
    """Split a command line into arguments; arguments after ``--`` go to init."""
    args: list[KernelArg] = []
    pos = 0
    after = False
    while True:
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        if pos >= len(text):
            break
        raw, key, value, pos = _next_arg(text, pos)
        if not after and key == "--" and value is None:
            after = True
            args.append(KernelArg(raw, key, value, after_dashdash=False))
            continue
        args.append(KernelArg(raw, key, value, after_dashdash=after))
    return Cmdline(tuple(args))


def render_arg(key: str, value: str | None) -> str:
    """``key`` or ``key=value``, quoting the value only when it holds white space."""
    if value is None:
        return key
    if any(char in _SPACE for char in value):
        if '"' in value:
            raise ValueError(f"cannot quote a value holding both spaces and quotes: {value!r}")
        return f'{key}="{value}"'
    return f"{key}={value}"


def render_cmdline(args: Iterable[str]) -> str:
    return " ".join(args)
