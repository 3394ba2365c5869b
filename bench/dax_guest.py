#!/usr/bin/python3
"""The guest half of bench/dax.py (stdlib only: it runs with the guest's python3, as root).

    python3 dax_guest.py SIZE_MIB ROUNDS LABEL=DIR [LABEL=DIR ...]  > result.json

For each DIR: a SIZE_MIB file is allocated (posix_fallocate), mapped and touched once per
4 KiB page while a private tracefs instance counts the fs_dax PMD and PTE faults of this
process; then ROUNDS rounds of sequential write and read through the mapping (64 MiB
memoryview slice copies) against the same copies over anonymous memory (mmap -1) of the
same size, interleaved so that the machine's state hits both alike. Prints JSON.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import time

MiB = 1 << 20
PAGE = 4096
CHUNK = 64 * MiB
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENTS = ("dax_pmd_fault_done", "dax_pte_fault_done")
BUFFER_KIB = 65536  # per CPU


def tracefs() -> str | None:
    for path in TRACEFS:
        if os.path.isdir(f"{path}/instances"):
            return path
    return None


class Faults:
    """A private tracefs instance counting this process's fs_dax fault events."""

    def __init__(self) -> None:
        root = tracefs()
        self.path = f"{root}/instances/bench-dax-{os.getpid()}" if root else None

    def __enter__(self) -> Faults:
        if self.path is None:
            return self
        os.mkdir(self.path)
        # room for a line per 4 KiB fault of the whole file, should they fall back
        with open(f"{self.path}/buffer_size_kb", "w") as file:
            file.write(str(BUFFER_KIB))
        for event in EVENTS:
            directory = f"{self.path}/events/fs_dax/{event}"
            with open(f"{directory}/filter", "w") as file:
                file.write(f"common_pid == {os.getpid()}")
            with open(f"{directory}/enable", "w") as file:
                file.write("1")
        return self

    def counts(self) -> dict[str, int] | None:
        if self.path is None:
            return None
        counts = {"pmd": 0, "pmd_fallback": 0, "pte": 0}
        with open(f"{self.path}/trace") as file:
            for line in file:
                if "dax_pmd_fault_done:" in line:
                    counts["pmd_fallback" if line.rstrip().endswith("FALLBACK") else "pmd"] += 1
                elif "dax_pte_fault_done:" in line:
                    counts["pte"] += 1
        return counts

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            for event in EVENTS:
                with open(f"{self.path}/events/fs_dax/{event}/enable", "w") as file:
                    file.write("0")
            os.rmdir(self.path)


def first_touch(mapping: mmap.mmap, size: int) -> float:
    started = time.perf_counter()
    for offset in range(0, size, PAGE):
        mapping[offset] = 1
    return time.perf_counter() - started


def bandwidth(mapping: mmap.mmap, size: int) -> dict[str, float]:
    """Bytes per second of one sequential write and one sequential read of the mapping."""
    view = memoryview(mapping)
    source = memoryview(bytearray(b"\xa5") * CHUNK)
    sink = memoryview(bytearray(b"\x5a") * CHUNK)  # written: no first-touch faults in it
    try:
        started = time.perf_counter()
        for offset in range(0, size, CHUNK):
            view[offset:offset + CHUNK] = source
        wrote = time.perf_counter() - started
        started = time.perf_counter()
        for offset in range(0, size, CHUNK):
            sink[:] = view[offset:offset + CHUNK]
        read = time.perf_counter() - started
    finally:
        view.release()
        source.release()
        sink.release()
    return {"write": size / wrote, "read": size / read}


def measure(directory: str, size: int, rounds: int) -> dict[str, object]:
    path = os.path.join(directory, ".bench-dax")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
        with Faults() as faults, mmap.mmap(fd, size) as mapping:
            touch = first_touch(mapping, size)
            counted = faults.counts()
        anonymous = mmap.mmap(-1, size)
        first_touch(anonymous, size)
        runs: dict[str, list[dict[str, float]]] = {"file": [], "anonymous": []}
        with mmap.mmap(fd, size) as mapping:
            for _ in range(rounds):
                runs["file"].append(bandwidth(mapping, size))
                runs["anonymous"].append(bandwidth(anonymous, size))
        anonymous.close()
    finally:
        os.close(fd)
        os.unlink(path)
    return {"first_touch_seconds": touch, "faults": counted, "rounds": runs}


def main(argv: list[str]) -> int:
    size, rounds = int(argv[1]) * MiB, int(argv[2])
    results = {}
    for spec in argv[3:]:
        label, _, directory = spec.partition("=")
        results[label] = measure(directory, size, rounds)
    json.dump(results, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
