"""The kernel command line, split as lib/cmdline.c:next_arg does — by the one splitter that
both reading (parse_cmdline) and editing a bootloader's text (edit_args_text) use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmemd.core.cmdline import (
    CmdlineEdit,
    arg_spans,
    args_of,
    edit_args_text,
    key_value,
    parse_cmdline,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("ro quiet", [("ro", None), ("quiet", None)]),
    ("root=UUID=abc ro", [("root", "UUID=abc"), ("ro", None)]),
    ("  memmap=4G!12G\tquiet\n", [("memmap", "4G!12G"), ("quiet", None)]),
    ('dyndbg="file foo.c +p" ro', [("dyndbg", "file foo.c +p"), ("ro", None)]),
    ('"memmap=4G!12G" ro', [("memmap", "4G!12G"), ("ro", None)]),
    ('acpi_osi="!Windows 2012"', [("acpi_osi", "!Windows 2012")]),
    ("empty= x", [("empty", ""), ("x", None)]),
    ("a==b", [("a", "=b")]),
    ("", []),
])
def test_split_like_the_kernel(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert [(a.key, a.value) for a in parse_cmdline(text).args] == expected


def test_arguments_after_double_dash_go_to_init() -> None:
    cmdline = parse_cmdline("ro memmap=1G!4G -- single memmap=2G!8G")
    assert cmdline.values("memmap") == ("1G!4G",)
    assert not cmdline.has_flag("single")
    assert [a.after_dashdash for a in cmdline.args] == [False, False, False, True, True]


def test_raw_text_is_kept() -> None:
    (arg,) = parse_cmdline('"memmap=4G!12G"').args
    assert arg.text == '"memmap=4G!12G"'


def render_arg(key: str, value: str | None) -> str:
    """How a person writes an argument: ``key=value``, the value quoted when it holds
    white space (the generator of command lines for the property below)."""
    if value is None:
        return key
    if any(char in " \t\n\v\f\r" for char in value):
        if '"' in value:
            raise ValueError(f"cannot quote a value holding both spaces and quotes: {value!r}")
        return f'{key}="{value}"'
    return f"{key}={value}"


words = st.text(alphabet=st.characters(exclude_characters=' \t\n\v\f\r"',
                                       exclude_categories=["Cs"]), min_size=1)


@given(st.lists(st.tuples(words.filter(lambda w: "=" not in w), st.none() | words), max_size=8))
def test_rendered_arguments_split_back(pairs: list[tuple[str, str | None]]) -> None:
    text = " ".join(render_arg(k, v) for k, v in pairs)
    parsed = [(a.key, a.value) for a in parse_cmdline(text).args]
    assert parsed == pairs


# One table for the splitter: where each argument is, what the kernel sees of it, and
# whether it ends the kernel's part ("--"), for reading and for editing alike.
SPLITS = [
    ("ro quiet", ["ro", "quiet"]),
    ('dyndbg="file foo.c +p" ro', ['dyndbg="file foo.c +p"', "ro"]),
    ('"memmap=4G!12G"  x', ['"memmap=4G!12G"', "x"]),
    ('a"b c"d e', ['a"b c"d', "e"]),  # a quote inside a word still protects the space
    ('"unterminated rest', ['"unterminated rest']),
    ("\tmemmap=1G!4G\n-- init", ["memmap=1G!4G", "--", "init"]),
    ('ro "--" x', ["ro", '"--"', "x"]),
]


@pytest.mark.parametrize(("text", "args"), SPLITS)
def test_one_splitter_for_reading_and_editing(text: str, args: list[str]) -> None:
    assert [text[s:e] for s, e in arg_spans(text)] == args
    assert [a.text for a in parse_cmdline(text).args] == args


@pytest.mark.parametrize(("raw", "seen"), [
    ("ro", ("ro", None)),
    ("memmap=4G!12G", ("memmap", "4G!12G")),
    ('"memmap=4G!12G"', ("memmap", "4G!12G")),
    ('x="a b"', ("x", "a b")),
    ("empty=", ("empty", "")),
    ('"--"', ("--", None)),
])
def test_what_the_kernel_sees_of_an_argument(raw: str, seen: tuple[str, str | None]) -> None:
    assert key_value(raw) == seen


@pytest.mark.parametrize("text", ["ro -- single", 'ro "--" single'])
def test_the_end_of_the_kernels_arguments_is_the_same_for_reading_and_editing(
        text: str) -> None:
    """The kernel unquotes before it compares with "--" (kernel/params.c): both spellings
    end its part, for the reader and for the editor."""
    assert [a.text for a in parse_cmdline(text).args if not a.after_dashdash][-1] != "single"
    assert args_of(text) == ("ro",)
    edited = edit_args_text(text, CmdlineEdit(add=("nokaslr",)))
    assert edited.startswith("ro nokaslr ") and edited.endswith("single")
