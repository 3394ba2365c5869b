"""Fingerprints (pmemd.fastpath.fingerprint): what the stamp and the generator cache record
of a file, a sysfs tree and pmemd's own code, and that each changes exactly when what it
stands for changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pmemd.fastpath import fingerprint
from pmemd.fastpath.fingerprint import (
    MISSING,
    NOT_REGULAR,
    code_files,
    content,
    hexed,
    identity,
    tree,
    unhexed,
)
from tests.conftest import REPO


@pytest.mark.parametrize("text", ["", "memmap=4G!12G", "é\n", "a b\tc", "\udcff"])
def test_hexed_words_have_no_spaces_and_read_back(text: str) -> None:
    word = hexed(text)
    assert " " not in word and unhexed(word) == text


def test_identity_changes_with_a_rewrite_of_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "grub.cfg"
    path.write_text("x")
    before = identity(str(path))
    os.utime(path, ns=(1, 1))  # same bytes, other times
    assert identity(str(path)) != before
    assert identity(str(tmp_path / "none")) == MISSING


def test_content_is_hex_limited_missing_or_an_errno(tmp_path: Path) -> None:
    path = tmp_path / "cmdline"
    path.write_bytes(b"ro quiet\n")
    assert content(str(path)) == b"ro quiet\n".hex()
    assert content(str(path), 2) == b"ro".hex()
    assert content(str(tmp_path / "none")) == MISSING
    assert content(str(tmp_path)) == NOT_REGULAR  # a directory: never a key's match
    os.mkfifo(tmp_path / "fifo")
    assert content(str(tmp_path / "fifo")) == NOT_REGULAR  # not opened for reading: no wait
    (tmp_path / "locked").write_text("x")
    (tmp_path / "locked").chmod(0)
    assert content(str(tmp_path / "locked")) in ("78", "!13")  # root reads it; others EACCES


def test_a_tree_changes_when_a_leaf_does_and_only_then(tmp_path: Path) -> None:
    memmap = tmp_path / "memmap"
    for n, (start, end, kind) in enumerate([("0x0", "0x9fbff", "System RAM"),
                                             ("0x100000", "0x7ffdffff", "System RAM")]):
        entry = memmap / str(n)
        entry.mkdir(parents=True)
        for name, value in (("start", start), ("end", end), ("type", kind)):
            (entry / name).write_text(value + "\n")
    first = tree(str(memmap))
    os.utime(memmap / "0" / "type", ns=(1, 1))
    assert tree(str(memmap)) == first  # sysfs times mean nothing; the content is the same
    (memmap / "1" / "end").write_text("0x7fffffff\n")
    assert tree(str(memmap)) != first
    assert tree(str(tmp_path / "none")) == MISSING


def test_code_files_are_every_module_in_every_room() -> None:
    package = REPO / "pmemd"
    expected = sorted(str(p) for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    assert sorted(code_files()) == expected
    assert str(package / "boot" / "backends" / "grubby.py") in code_files()


def test_extra_directories_count_without_their_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.py", "b.so", "c.txt", "sub/d.py"):
        (tmp_path / name).write_text("")
    extra = [p for p in code_files([str(tmp_path)]) if p.startswith(str(tmp_path))]
    assert extra == [str(tmp_path / "a.py"), str(tmp_path / "b.so")]


def test_code_is_fingerprinted_as_this_process_loaded_it(tmp_path: Path) -> None:
    """A module replaced after import (an upgrade under the running service) keeps the
    identity it had when loaded: a cache written now must miss under the new code."""
    code = tmp_path / "code"
    shutil.copytree(REPO / "pmemd", code / "pmemd", ignore=shutil.ignore_patterns("__pycache__"))
    module = code / "pmemd" / "core" / "plan.py"
    script = (
        "import os, sys\n"
        "from pmemd.fastpath import fingerprint as f\n"
        "f.remember_code()\n"
        f"path = {str(module)!r}\n"
        "loaded = f.code_identity(path)\n"
        "os.utime(path, ns=(1, 1))\n"
        "print(loaded == f.code_identity(path), loaded == f.identity(path))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(code)},
                          cwd=tmp_path)  # not the repository: its pmemd would come first
    assert done.stdout.split() == ["True", "False"]
    assert str(REPO / "pmemd") == fingerprint.PACKAGE
