"""Exactly what the kernel reads, and never a traceback: ASCII digits only (Python's int()
and str.isdigit() take any Unicode digit, memparse does not), numbers of any length
answered at once, and NUL or control characters located where they are."""

from __future__ import annotations

import time

import pytest

from pmemd.core.config import parse_config
from pmemd.core.sizes import SizeError, memparse, parse_size

REGION = "version: 1\nregions:\n  - name: a\n    size: {size}\n    offset: {offset}\n"

# Each input, and the "LINE:COL: key: message" it must give.
NOT_ASCII = {
    "superscript one": ("version: ¹\n", "1:10: version: expected the number 1, got '¹'"),
    "arabic-indic one": ("version: ١\n", "1:10: version: expected the number 1, got '١'"),
    "fullwidth one": ("version: １\n", "1:10: version: expected the number 1, got '１'"),
    "fullwidth size": (REGION.format(size="４G", offset="12G"),
                       "4:11: regions[0].size: '４G' is not a size"),
    "fullwidth offset": (REGION.format(size="4G", offset="１２G"),
                         "5:13: regions[0].offset: '１２G' is not a size"),
    "devanagari digit after an ASCII one": (REGION.format(size="1०G", offset="12G"),
                                            "4:12: regions[0].size: '1०G' is not a size: "
                                            "unexpected '०G' after '1'"),
    "fullwidth hex digit": (REGION.format(size="0x４0000000", offset="12G"),
                            "regions[0].size: '0x４0000000' is not a size: unexpected"),
    "fullwidth alignment": ("version: 1\nmemory:\n  alignment: ２M\n",
                            "3:14: memory.alignment: '２M' is not a size"),
}


@pytest.mark.parametrize("case", sorted(NOT_ASCII))
def test_only_ascii_digits_are_numbers(case: str) -> None:
    text, expected = NOT_ASCII[case]
    parsed = parse_config(text, "pmemd.yaml")
    assert parsed.config is None
    rendered = [p.render() for p in parsed.problems]
    assert any(expected in r for r in rendered), rendered


@pytest.mark.parametrize("text", ["４G", "١", "²", "1٠", "0x١"])
def test_memparse_stops_at_a_unicode_digit_as_the_kernel_does(text: str) -> None:
    value, end = memparse(text)
    assert text[:end].isascii() and not text[end:].isascii()
    assert value == (int(text[:end], 0) if end else 0)
    with pytest.raises(SizeError):
        parse_size(text)


def test_a_version_of_5000_digits_is_an_error_not_a_traceback() -> None:
    """Python refuses int() of more than 4,300 digits: it used to escape as ValueError."""
    (problem,) = parse_config("version: " + "1" * 5000 + "\n", "pmemd.yaml").problems
    assert problem.render().startswith("pmemd.yaml:1:10: version: unsupported version "
                                       "'1111")
    assert "(5000 characters)" in problem.message and len(problem.message) < 200


def test_versions_are_read_as_decimal() -> None:
    assert parse_config("version: 01\n").problems == ()
    (problem,) = parse_config("version: 0x1\n").problems
    assert "expected the number 1, got '0x1'" in problem.message


@pytest.mark.parametrize("key", ["size", "offset"])
def test_a_number_of_a_million_digits_is_answered_at_once(key: str) -> None:
    """Reading digits into a Python int was quadratic: a 1 MB number took about 90 s."""
    sizes = {"size": "1G", "offset": "12G", key: "1" * 1_000_000 + "G"}
    started = time.monotonic()
    parsed = parse_config(REGION.format(**sizes), "pmemd.yaml")
    assert time.monotonic() - started < 5  # a safety bound: it takes well under a second
    (problem,) = parsed.problems
    assert "does not fit in 64 bits" in problem.message and len(problem.message) < 200


def test_memparse_still_wraps_at_64_bits_as_the_kernel_does() -> None:
    assert memparse("18446744073709551617") == (1, 20)  # 2**64 + 1
    assert memparse("0x10000000000000001G") == (1 << 30, 20)
    assert memparse("9" * 100)[1] == 100
    assert memparse("9" * 100)[0] == int("9" * 100) % (1 << 64)


# Control characters: located at the character itself, not at 1:1.
CONTROL = {
    "NUL in a value": ("version: 1\nboot:\n  reboot: ne\x00ver\n", "3:13:"),
    "NUL at the start": ("\x00version: 1\n", "1:1:"),
    "escape in a key": ("version: 1\nbo\x1bot: {}\n", "2:3:"),
    "NUL after a long line": ("version: 1\n# " + "x" * 500 + "\nboot: {reboot: \x00}\n",
                              "3:16:"),
    "DEL": ("version: 1\nregions: []\x7f\n", "2:12:"),
}


@pytest.mark.parametrize("case", sorted(CONTROL))
def test_control_characters_are_located_where_they_are(case: str) -> None:
    text, where = CONTROL[case]
    (problem,) = parse_config(text, "pmemd.yaml").problems
    rendered = problem.render()
    assert rendered.startswith(f"pmemd.yaml:{where} "), rendered
    assert "<unicode string>" not in rendered and "position" not in rendered
    assert "control character" in rendered or "character" in rendered


def test_a_text_just_over_the_size_limit_does_not_read_as_the_limit() -> None:
    """What D-Bus Validate and SetConfig are sent: "is 1 MiB; at most 1 MiB" before."""
    (problem,) = parse_config(b"#" * ((1 << 20) + 1), "<input>").problems
    assert problem.message == ("file is 1048577 bytes; pmemd reads configs of at most "
                               "1048576 bytes")
