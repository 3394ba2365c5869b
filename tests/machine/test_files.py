"""The one bounded reader of files pmemd is given (its config): regular files only, at most
a limit, and a typed error naming the file otherwise: never a hang on a FIFO, never
gigabytes from a device, never a traceback."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmemd.errors import FileMissing, FileTooLarge, MachineError, NotRegularFile
from pmemd.machine.files import read_regular


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """A reader that hangs fails the test instead of hanging the suite."""
    signal.alarm(10)
    yield
    signal.alarm(0)


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"version: 1\n")
    assert read_regular(path, 100) == b"version: 1\n"
    assert read_regular(str(path), 11) == b"version: 1\n"  # exactly the limit


def test_a_file_over_the_limit_is_refused_saying_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(FileTooLarge) as caught:
        read_regular(path, 1 << 20)
    assert str(caught.value) == (f"{path}: larger than 1 MiB (1048576 bytes), the most pmemd "
                                 "reads: 1048577 bytes")
    assert isinstance(caught.value, MachineError)


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile) as caught:
        read_regular(fifo, 100)
    assert str(caught.value) == f"{fifo}: is a FIFO, not a regular file"


@pytest.mark.parametrize(("path", "what"), [("/dev/zero", "a character device"),
                                            ("/dev/null", "a character device"),
                                            ("/", "a directory")])
def test_devices_and_directories_are_refused(path: str, what: str) -> None:
    with pytest.raises(NotRegularFile) as caught:
        read_regular(path, 1 << 20)
    assert str(caught.value) == f"{path}: is {what}, not a regular file"


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s"))
        with pytest.raises(NotRegularFile, match="is a socket, not a regular file"):
            read_regular(tmp_path / "s", 100)


def test_a_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "link").symlink_to("f")
    assert read_regular(tmp_path / "link", 10) == b"x"


def test_a_symlink_loop_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(NotRegularFile) as caught:
        read_regular(tmp_path / "a", 10)
    assert str(caught.value) == f"{tmp_path / 'a'}: is a loop of symbolic links"


def test_missing_files_and_paths_through_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileMissing) as caught:
        read_regular(tmp_path / "nope", 10)
    assert str(caught.value) == f"{tmp_path / 'nope'}: No such file or directory"
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileMissing) as caught:
        read_regular(tmp_path / "file" / "etc" / "pmemd.yaml", 10)
    assert str(caught.value).endswith(": Not a directory")


def test_an_unreadable_file_is_a_typed_error() -> None:
    """As nobody (the tests run as root, who may read anything)."""
    import subprocess
    import sys
    import tempfile

    from tests.service.harness import as_nobody

    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        path = Path(directory) / "f"
        path.write_bytes(b"x")
        path.chmod(0o600)
        script = ("from pmemd.errors import UnreadableFile\n"
                  "from pmemd.machine.files import read_regular\n"
                  "try:\n"
                  f"    read_regular({str(path)!r}, 10)\n"
                  "except UnreadableFile as err:\n"
                  "    print(type(err).__name__, err)\n")
        done = subprocess.run(as_nobody([sys.executable, "-c", script]), capture_output=True,
                              text=True, check=False, timeout=30,
                              cwd=Path(__file__).resolve().parent.parent.parent)
    assert done.stdout == f"UnreadableFile {path}: Permission denied\n", done.stderr


def test_pmemctl_reads_configs_of_the_size_pmemd_reads() -> None:
    from pmemd.cli.ctl import CONFIG_LIMIT
    from pmemd.core.yamltree import MAX_CONFIG_BYTES

    assert CONFIG_LIMIT == MAX_CONFIG_BYTES
