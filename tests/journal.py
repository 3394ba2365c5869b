"""A stand-in for journald in a test's machine tree: a real AF_UNIX datagram socket bound at
the tree's journal socket, and the native protocol read back by its own parser (not pmemd's
encoder), including entries passed as a file descriptor."""

from __future__ import annotations

import array
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pmemd.core.events import MessageId
from pmemd.machine.root import Machine

Entry = dict[str, str]
MAX_DATAGRAM = 1 << 20


def parse_native(data: bytes) -> Entry:
    """One entry of journald's native protocol: ``KEY=value`` lines, or the key, a newline,
    a 64-bit little-endian length, the value and a newline."""
    entry: Entry = {}
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        line = data[at:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            at = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + size]
            assert data[end + 9 + size:end + 10 + size] == b"\n", data
            at = end + 10 + size
        assert key.decode() not in entry, f"{key!r} twice"
        entry[key.decode()] = value.decode("utf-8", "surrogateescape")
    return entry


class Journal:
    """What was sent to the bound socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[Entry] = []

    def entries(self) -> list[Entry]:
        """Every entry received so far."""
        fd_size = array.array("i").itemsize
        while True:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    MAX_DATAGRAM, socket.CMSG_SPACE(fd_size))
            except BlockingIOError:
                return list(self.received)
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd = array.array("i", payload[:fd_size])[0]
                    data = _read_all(fd)
            self.received.append(parse_native(data))

    def events(self, message_id: MessageId) -> list[Entry]:
        return [e for e in self.entries() if e.get("MESSAGE_ID") == message_id.value]

    def ids(self) -> list[MessageId]:
        return [MessageId(e["MESSAGE_ID"]) for e in self.entries() if "MESSAGE_ID" in e]


def _read_all(fd: int) -> bytes:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@contextmanager
def bound_journal(root: Path) -> Iterator[Journal]:
    """journald's socket in the tree at ``root``, for as long as the block runs."""
    path = Machine(root).journal_socket
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * MAX_DATAGRAM)
        sock.bind(str(path))
        sock.setblocking(False)
        try:
            yield Journal(sock)
        finally:
            path.unlink(missing_ok=True)
