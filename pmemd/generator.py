"""``pmemd-generator NORMAL [EARLY LATE]``: the systemd generator (systemd.generator(7)).

systemd runs it on every boot and daemon-reload, before any unit starts. From
``/etc/pmemd.yaml`` alone it writes, into NORMAL, the units of every region with a
filesystem (see :mod:`pmemd.units`). It reads the firmware memory map only to place
regions without an offset, talks to no service, writes nowhere but NORMAL, and never
fails the boot: a problem is logged ("…, ignoring") and only the part it touches is
left out. ``--root DIR`` reads the machine under DIR (tests).

It is on the boot's critical path, so this module imports only what a boot needs:
no argparse, logging or json, and the planner only when a region has no offset.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pmemd.machine import CONFIG_PATH, Machine

if TYPE_CHECKING:
    from pmemd.errors import Problem
    from pmemd.model import Config, MemRange
    from pmemd.units import GeneratedFile

GENERATOR = "pmemd-generator"
USAGE = f"usage: {GENERATOR} [--root DIR] NORMAL_DIR [EARLY_DIR LATE_DIR]\n"
_KMSG_LINE_MAX = 900  # the kernel cuts a /dev/kmsg record at about 1 KiB


class Log:
    """Messages to the kernel log (a generator runs before the journal, its stderr goes to
    /dev/null) or, under ``--root`` or on a terminal, to stderr."""

    def __init__(self, kmsg_fd: int | None = None) -> None:
        self.kmsg_fd = kmsg_fd
        self.count = 0

    def warning(self, message: str) -> None:
        self._write(4, message)

    def error(self, message: str) -> None:
        self._write(3, message)

    def _write(self, level: int, message: str) -> None:
        self.count += 1
        if self.kmsg_fd is not None:
            record = f"<{level}>{GENERATOR}[{os.getpid()}]: {message}"[:_KMSG_LINE_MAX]
            try:
                os.write(self.kmsg_fd, record.encode("utf-8", "replace") + b"\n")
                return
            except OSError:
                pass
        sys.stderr.write(f"{GENERATOR}: {message}\n")


def _open_log(machine: Machine) -> Log:
    if machine.root != Path("/") or sys.stderr.isatty():
        return Log()
    try:
        return Log(os.open(machine.kmsg, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return Log()


def _one_line(problem: Problem) -> str:
    from pmemd.errors import Problem

    return Problem(problem.message, problem.key, problem.location).render()


def _place(machine: Machine, config: Config, log: Log) -> dict[str, MemRange]:
    """Each region's physical range: its offset, or where the planner places it (from the
    firmware map, exactly as `pmemd plan` and reconcile place it)."""
    from pmemd.model import MemRange

    placed = {r.name: MemRange.sized(r.offset, r.size) for r in config.regions
              if r.offset is not None}
    auto = [r.name for r in config.regions if r.offset is None]
    if not auto:
        return placed
    from pmemd.errors import MachineError
    from pmemd.facts import read_memory_map
    from pmemd.plan import place_regions

    try:
        memory = read_memory_map(machine)
    except MachineError as err:
        log.error(f"{err}; cannot place regions without an offset ({', '.join(auto)}), "
                  "ignoring them")
        return placed
    where, problems = place_regions(config, memory)
    for problem in problems:
        log.error(f"{_one_line(problem)}, ignoring")
    return {p.region.name: p.range for p in where}


def generate(machine: Machine, log: Log) -> list[GeneratedFile]:
    """The files to write for the machine's config (pure apart from reading it)."""
    if os.environ.get("SYSTEMD_IN_INITRD") == "1" or machine.initrd_release.exists():
        return []  # pmem filesystems belong to the booted system, not the initrd
    try:
        with machine.config.open("rb") as handle:
            data = handle.read(2 << 20)
    except FileNotFoundError:
        return []  # nothing configured
    except OSError as err:
        log.error(f"{CONFIG_PATH}: {err.strerror}, ignoring")
        return []
    from pmemd.salvage import salvage_config
    from pmemd.units import UnitError, render_region_units

    salvaged = salvage_config(data, CONFIG_PATH)
    dropped = set(salvaged.dropped)
    for problem in salvaged.problems:
        index = problem.key.partition("]")[0] + "]" if problem.key.startswith("regions[") else ""
        what = index if index and salvaged.config is not None else "the whole config"
        log.error(f"{_one_line(problem)}, ignoring {what}")
    config = salvaged.config
    if config is None:
        return []
    for name in salvaged.dropped_auto:
        bad = ", ".join(f"regions[{i}]" for i in sorted(dropped))
        log.error(f"{CONFIG_PATH}: region {name} has no offset and is placed only from a valid "
                  f"config ({bad} have problems), ignoring it")
    with_fs = [r for r in config.regions if r.filesystem is not None]
    ranges = _place(machine, config, log) if with_fs else {}
    files: list[GeneratedFile] = []
    for region in with_fs:
        rng = ranges.get(region.name)
        if rng is None:
            continue  # not placed: logged above
        try:
            files.extend(render_region_units(region, rng))
        except UnitError as err:
            log.error(f"{CONFIG_PATH}: region {region.name}: {err}, ignoring")
    return files


def write_files(directory: Path, files: Sequence[GeneratedFile], log: Log) -> bool:
    """Create every file exclusively (a duplicate is a bug that must show); True if all."""
    ok = True
    made: set[Path] = set()
    for file in files:
        target = directory / file.path
        try:
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            if file.link is not None:
                target.symlink_to(file.link)
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(file.text)
        except FileExistsError:
            log.error(f"{target}: already exists (a duplicate unit?), ignoring")
            ok = False
        except OSError as err:
            log.error(f"{target}: {err.strerror}, ignoring")
            ok = False
    return ok


def _arguments(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    root, positional = "/", []
    items = iter(argv)
    for arg in items:
        if arg == "--root":
            root = next(items, "")
            if not root:
                return None
        elif arg.startswith("--root="):
            root = arg.removeprefix("--root=")
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
    if len(positional) not in (1, 3):
        return None
    return root, positional


def main(argv: Sequence[str] | None = None) -> int:
    parsed = _arguments(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    root, dirs = parsed
    machine = Machine(Path(root))
    log = _open_log(machine)
    try:
        files = generate(machine, log)
    except Exception as err:  # never fail the boot over pmem; say what went wrong
        log.error(f"unexpected error, generating nothing: {type(err).__name__}: {err}")
        return 0
    return 0 if write_files(Path(dirs[0]), files, log) else 1
