"""A problem is shown with its source line and a caret, and that stays readable and small
however long the line is and however many problems there are."""

from __future__ import annotations

import pytest

from pmemd.core.config import parse_config
from pmemd.errors import (
    PROBLEMS_SHOWN,
    SOURCE_WINDOW,
    ConfigError,
    Location,
    Problem,
    quoted,
)


def _caret_under(rendered: str) -> str:
    """The character the caret points at in a rendered problem."""
    _, source, caret = rendered.split("\n")
    return source[caret.index("^")]


def test_a_short_line_is_shown_whole() -> None:
    problem = Problem("bad", "k", Location("f", 1, 7), "size: 4X")
    assert problem.render() == "f:1:7: k: bad\n    size: 4X\n          ^"


@pytest.mark.parametrize("column", [1, 2, 50, 5_000, 99_999, 100_000])
def test_a_long_line_is_cut_around_the_column(column: int) -> None:
    line = "".join(chr(ord("a") + i % 26) for i in range(100_000))
    rendered = Problem("bad", "", Location("f", 1, column), line).render()
    head, source, _ = rendered.split("\n")
    assert head == f"f:1:{column}: bad"
    assert len(source) <= SOURCE_WINDOW + 8  # the window, its indent and the … marks
    assert _caret_under(rendered) == line[column - 1]
    assert source.strip().startswith("…") is (column > SOURCE_WINDOW // 2)
    assert source.endswith("…") is (column < 100_000 - SOURCE_WINDOW // 2)


def test_a_column_past_the_end_of_the_line_still_gets_a_caret() -> None:
    rendered = Problem("missing", "", Location("f", 1, 10_000), "x" * 20_000).render()
    assert len(rendered) < 300 and rendered.endswith("^")


def test_many_problems_are_counted_after_the_first_ones() -> None:
    problems = [Problem(f"bad {i}", "", Location("f", 1, i + 1), "x" * 10_000)
                for i in range(5_000)]
    text = ConfigError(problems).render()
    assert text.count(": bad ") == PROBLEMS_SHOWN
    assert text.endswith(f"... and {5_000 - PROBLEMS_SHOWN} more problems")
    assert len(text) < 40_000


def test_a_few_problems_are_all_shown() -> None:
    problems = [Problem(f"bad {i}", "", Location("f", i + 1, 1), "x") for i in range(3)]
    assert "more problems" not in ConfigError(problems).render()


def test_long_values_are_quoted_short() -> None:
    assert quoted("abc") == "'abc'"
    long = quoted("x" * 1_000_000)
    assert len(long) < 100 and long.startswith("'xxx") and "1000000 characters" in long


def test_a_huge_value_makes_a_short_message() -> None:
    parsed = parse_config("version: 1\nregions:\n  - name: " + "a" * 500_000 + "\n    size: 1G\n")
    (problem,) = parsed.problems
    assert len(problem.message) < 300
    assert len(problem.render()) < 600


def test_many_problems_on_one_line() -> None:
    """16 KB that used to make 193 MB of messages (8,000 problems, each with the line)."""
    text = "version: 1\nboot: {" + ", ".join(["x: 1"] * 3_000) + "}\n"
    parsed = parse_config(text, "pmemd.yaml")
    assert len(parsed.problems) == 3_000
    rendered = ConfigError(parsed.problems).render()
    assert len(rendered) < 40_000
    assert rendered.endswith(f"... and {3_000 - PROBLEMS_SHOWN} more problems")


def test_control_characters_never_reach_the_terminal() -> None:
    """An escape sequence in a config must not recolour or move the user's terminal."""
    parsed = parse_config("version: 1\nboot: {reboot: \x1b[2J\x1b[31mnever}\n", "pmemd.yaml")
    (problem,) = parsed.problems
    rendered = problem.render()
    assert "\x1b" not in rendered
    assert rendered.startswith("pmemd.yaml:2:16: character U+001B is not allowed")
    _, source, caret = rendered.split("\n")
    assert source[caret.index("^")] == "\N{REPLACEMENT CHARACTER}"
