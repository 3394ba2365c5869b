"""Sizes: the kernel's memparse, the strict config reader, and canonical rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmemd.core.sizes import (
    U64_MAX,
    SizeError,
    format_bytes,
    format_compared,
    memparse,
    parse_size,
    render_size,
)

K, M, G, T = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize(("text", "value", "end"), [
    ("4G", 4 * G, 2),
    ("4g", 4 * G, 2),
    ("1536M", 1536 * M, 5),
    ("512", 512, 3),
    ("0x40000000", G, 10),
    ("0X40000000", G, 10),
    ("0x1G", G, 4),
    ("0x1E", 30, 4),  # E is a hex digit here, not the exa suffix
    ("1E", 1 << 60, 2),
    ("2P", 2 << 50, 2),
    ("3T", 3 * T, 2),
    ("16k", 16 * K, 3),
    ("010", 8, 3),  # strtoull base 0: a leading 0 means octal
    ("010G", 8 * G, 4),
    ("09", 0, 1),  # octal stops at the 9
    ("0x", 0, 1),  # "0" then 'x' without a hex digit: reads only the zero
    ("512M\\!1G", 512 * M, 4),  # stops at the backslash
    ("", 0, 0),
    ("G", 0, 0),
    ("-1G", 0, 0),
    ("16E", 0, 3),  # wraps at 64 bits as in the kernel
])
def test_memparse_reads_like_the_kernel(text: str, value: int, end: int) -> None:
    assert memparse(text) == (value, end)


def test_memparse_wraps_at_64_bits() -> None:
    assert memparse("99999999999999999999")[0] == 99999999999999999999 % (1 << 64)


@pytest.mark.parametrize(("text", "value"), [
    ("4G", 4 * G),
    (" 4G ", 4 * G),
    ("1536M", 1536 * M),
    ("0x300000000", 12 * G),
    ("4096", 4096),
    ("15E", 15 << 60),
])
def test_parse_size_accepts(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "message", "column"), [
    ("4X", "unexpected 'X' after '4'", 1),
    ("-1G", "sizes cannot be signed", 0),
    ("+1G", "sizes cannot be signed", 0),
    ("0", "greater than zero", 0),
    ("0G", "greater than zero", 0),
    ("", "empty size", 0),
    ("   ", "empty size", 0),
    ("010G", "leading zero", 0),
    ("4GB", "unexpected 'B' after '4G'", 2),
    ("1.5G", "unexpected '.5G' after '1'", 1),
    ("4 G", "unexpected ' G' after '4'", 1),
    ("G", "is not a size", 0),
    ("16E", "does not fit in 64 bits", 0),
    ("512M\\!1G", "unexpected '\\\\!1G'", 4),
])
def test_parse_size_refuses_with_a_reason_and_column(text: str, message: str,
                                                      column: int) -> None:
    with pytest.raises(SizeError) as caught:
        parse_size(text)
    assert message in str(caught.value)
    assert caught.value.column == column


def test_zero_is_allowed_for_offsets() -> None:
    assert parse_size("0", allow_zero=True) == 0


@pytest.mark.parametrize(("value", "text"), [
    (4 * G, "4G"),
    (1536 * M, "1536M"),
    (12 * G, "12G"),
    (G + 512, f"{G + 512}"),
    (3 * K, "3K"),
    (1 << 60, "1E"),
    (0, "0"),
    (U64_MAX, str(U64_MAX)),
])
def test_render_size_uses_the_largest_exact_unit(value: int, text: str) -> None:
    assert render_size(value) == text


@given(st.integers(min_value=1, max_value=U64_MAX))
def test_render_then_parse_round_trips(value: int) -> None:
    rendered = render_size(value)
    assert parse_size(rendered) == value
    # and the kernel reads exactly the same number, consuming all of it
    assert memparse(rendered) == (value, len(rendered))


@given(st.integers(min_value=0, max_value=64), st.sampled_from("KMGTPE"))
def test_suffix_forms_round_trip(count: int, unit: str) -> None:
    text = f"{count}{unit}"
    value, end = memparse(text)
    assert end == len(text)
    if value:  # 16E and more wrap to small values, as in the kernel
        assert parse_size(render_size(value)) == value


@pytest.mark.parametrize(("value", "text"), [
    (4 * G, "4 GiB"), (1536 * M, "1.5 GiB"), (639 * K, "639 KiB"), (512, "512 B"),
])
def test_format_bytes(value: int, text: str) -> None:
    assert format_bytes(value) == text


# --- a size compared with a limit never reads as the limit ---------------------------------


@pytest.mark.parametrize(("value", "bound", "expected"), [
    (2 * (1 << 30) - (1 << 20) * 2, 2 << 30, ("1.998 GiB", "2 GiB")),  # was "2 GiB" twice
    ((1 << 20) + 1, 1 << 20, ("1048577 bytes", "1048576 bytes")),
    (50 << 20, 1 << 20, ("50 MiB", "1 MiB")),
    (3 << 29, 1 << 30, ("1.5 GiB", "1 GiB")),
    (1 << 30, 1 << 30, ("1 GiB", "1 GiB")),
    ((1 << 30) - 1, 1 << 30, ("1073741823 bytes", "1073741824 bytes")),
])
def test_compared_sizes_read_as_they_compare(value: int, bound: int,
                                             expected: tuple[str, str]) -> None:
    assert format_compared(value, bound) == expected


def _read_back(text: str) -> float:
    number, unit = text.split(" ")
    scale = {"B": 1, "bytes": 1, "KiB": K, "MiB": M, "GiB": G, "TiB": T, "PiB": 1 << 50,
             "EiB": 1 << 60}[unit]
    return float(number) * scale


@given(st.integers(0, 1 << 50), st.integers(0, 1 << 50))
def test_compared_sizes_read_in_the_order_they_are(value: int, bound: int) -> None:
    shown, limit = format_compared(value, bound)
    read_value, read_bound = _read_back(shown), _read_back(limit)
    assert (read_value > read_bound) is (value > bound)
    assert (read_value < read_bound) is (value < bound)
