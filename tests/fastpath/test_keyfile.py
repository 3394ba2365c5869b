"""The one cache-file format (pmemd.fastpath.keyfile) of the converged stamp and the
generator cache: written and read back, every kind of key line holding or not as the
machine says, and a damaged file a miss, never an answer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pmemd.fastpath import keyfile
from pmemd.fastpath.fingerprint import content, hexed, identity, tree

MAGIC = "pmemd-test-cache 1"
IOMEM = """\
00000000-00000fff : Reserved
00100000-bffdffff : System RAM
  1a000000-1b002fff : Kernel code
  1b200000-1b7fffff : Kernel rodata
100000000-43fffffff : System RAM
"""


def test_render_and_parse_read_back() -> None:
    key = [("python", "1"), ("stat", hexed("/x"), "1:2:3:4")]
    data = [("output", hexed("converged\n"))]
    text = keyfile.render(MAGIC, key, data)
    assert keyfile.parse(text, MAGIC) == (key, data)


@pytest.mark.parametrize("damage", [
    lambda t: t.replace(MAGIC, "pmemd-test-cache 2"),  # another format
    lambda t: t[:-1],  # no final newline
    lambda t: t.replace("data output 63", "data output 64"),  # the checksum no longer matches
    lambda t: t.rpartition("crc")[0],  # no checksum
    lambda t: "",
])
def test_a_damaged_file_is_no_file(damage: object) -> None:
    text = keyfile.render(MAGIC, [("python", "1")], [("output", hexed("converged"))])
    assert callable(damage)
    assert keyfile.parse(damage(text), MAGIC) is None


def test_a_line_that_is_neither_key_nor_data_is_no_file() -> None:
    body = f"{MAGIC}\nkey python 1\nother thing\n"
    text = keyfile.render(MAGIC, [], []).replace(f"{MAGIC}\n", body)
    assert keyfile.parse(text, MAGIC) is None


def test_each_kind_of_key_holds_while_its_file_is_as_recorded(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.delenv("SYSTEMD_IN_INITRD", raising=False)
    path = tmp_path / "f"
    path.write_text("abc")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("1")
    iomem = tmp_path / "iomem"
    iomem.write_text(IOMEM)
    p, d = hexed(str(path)), hexed(str(tmp_path / "d"))
    lines = [
        ("stat", p, identity(str(path))),
        ("code", p, identity(str(path))),
        ("content", p, content(str(path))),
        ("head", p, "2", b"ab".hex()),
        ("tree", d, tree(str(tmp_path / "d"))),
        ("exists", p, "1"),
        ("not-initrd", hexed(str(tmp_path / "initrd-release"))),
        ("kernel-image", hexed(str(iomem)), f"{0x200000000}-{0x300000000}"),
    ]
    for line in lines:
        assert keyfile.holds(line, {}), line
    path.write_text("abd")  # same size, new content and times
    os.utime(path, ns=(5, 5))
    assert [line[0] for line in lines if not keyfile.holds(line, {})] == [
        "stat", "code", "content"]  # the first two bytes and the tree did not change
    (tmp_path / "initrd-release").write_text("")
    assert not keyfile.holds(("not-initrd", hexed(str(tmp_path / "initrd-release"))), {})
    region_over_kernel = f"{0x1A800000}-{0x1B000000}"
    assert not keyfile.holds(("kernel-image", hexed(str(iomem)), region_over_kernel), {})


def test_invocation_kinds_hold_only_for_the_reader_that_expects_them() -> None:
    line = keyfile.python_line()
    assert line == ("python", str(sys.hexversion))
    assert keyfile.holds(line, {"python": [str(sys.hexversion)]})
    assert not keyfile.holds(line, {})  # a reader that does not know this kind: a miss
    assert not keyfile.holds(("root", hexed("/")), {"root": [hexed("/other")]})
    assert not keyfile.holds(("future-kind", hexed("/")), {})


def test_load_returns_the_data_only_when_everything_holds(tmp_path: Path) -> None:
    watched = tmp_path / "config"
    watched.write_text("version: 1\n")
    cache = tmp_path / "cache"
    key = [("python", str(sys.hexversion)), ("content", hexed(str(watched)),
                                             content(str(watched)))]
    cache.write_text(keyfile.render(MAGIC, key, [("output", hexed("ok"))]))
    expected = {"python": [str(sys.hexversion)]}
    assert keyfile.load(str(cache), MAGIC, expected, ["python"]) == [("output", hexed("ok"))]
    assert keyfile.load(str(cache), MAGIC, expected, ["python", "stat"]) is None  # required
    watched.write_text("version: 1\nregions: []\n")
    assert keyfile.load(str(cache), MAGIC, expected, ["python"]) is None
    assert keyfile.load(str(tmp_path / "none"), MAGIC, expected, []) is None
