"""DAX mappings of pmemd's filesystems: 2 MiB faults, and bandwidth against plain memory.

    .venv/bin/python bench/dax.py [--size-mib 1024] [--rounds 3] [--json build/bench-dax.json]

Boots the end-to-end tests' cached Debian 12 image under qemu (TCG, 2 vCPUs, 6 GiB, two
1.5 GiB ``memmap=`` regions), makes an ext4 and an xfs filesystem on the two pmem devices
with the argv pmemd's make-filesystem runs (``pmemd.core.makefs.mkfs_argv``), mounts them
with ``dax=always``, and runs ``bench/dax_guest.py`` in the guest on each mount and on a
directory of the guest's root filesystem (ext4 on a virtio disk: the page cache, not DAX):

* first touch of a SIZE file mapped from each: the fs_dax PMD and PTE faults (a private
  tracefs instance; the target is all PMD, no PTE);
* sequential write and read through the mapping (64 MiB memoryview slice copies) against
  the same copies over anonymous memory (``mmap(-1)``) of the same size, interleaved, in
  the same run; the ratio is the median's (target >= 0.8x).

Prints a table and writes JSON. Under TCG the guest's CPU is emulated: absolute figures
are the emulator's, the ratios are what means something.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pmemd.core.makefs import mkfs_argv  # noqa: E402
from pmemd.core.model import FsType  # noqa: E402
from tests.vm.image import ensure_base  # noqa: E402
from tests.vm.qemu import Guest  # noqa: E402

MiB = 1 << 20
GUEST_MEMORY = "6G"
REGIONS = ("1536M!4G", "1536M!5632M")  # RAM above 4 GiB in a 6 GiB guest
REGION_SIZE = 1536 * MiB
KERNEL = "6.1.0"  # the image's kernel series (decides xfs reflink)
TARGET = 0.8
WORK = REPO / "build" / "bench-dax"
GUEST_SCRIPT = REPO / "bench" / "dax_guest.py"


def set_memmap(guest: Guest) -> None:
    """The regions on the default entry's command line, and a reboot into it."""
    options = " ".join(f"memmap={r}" for r in REGIONS)
    guest.run(f"sed -i 's/^GRUB_CMDLINE_LINUX=\"/GRUB_CMDLINE_LINUX=\"{options} /' "
              "/etc/default/grub\nupdate-grub\n", name="memmap", timeout=300).check()
    guest.reboot(timeout=600)


def make_mounts(guest: Guest) -> dict[str, str]:
    """ext4 on pmem0 and xfs on pmem1, made as pmemd makes them, mounted with DAX."""
    mounts = {}
    script = ""
    for fs_type, device in ((FsType.EXT4, "/dev/pmem0"), (FsType.XFS, "/dev/pmem1")):
        target = f"/mnt/dax-{fs_type.value}"
        argv = mkfs_argv(fs_type, device, size=REGION_SIZE, kernel_release=KERNEL)
        script += (f"{' '.join(argv)}\nmkdir -p {target}\n"
                   f"mount -o dax=always {device} {target}\n"
                   f"grep -q ' {target} .*dax' /proc/self/mountinfo\n")
        mounts[f"{fs_type.value} DAX (as pmemd makes it)"] = target
    script += "mkdir -p /var/tmp/bench-dax\n"
    guest.run(script, name="mkfs", timeout=300).check()
    mounts["ext4 on virtio disk (page cache)"] = "/var/tmp/bench-dax"
    return mounts


def median(rounds: list[dict[str, float]], what: str) -> float:
    return statistics.median(r[what] for r in rounds)


def summarize(raw: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    table = {}
    for label, result in raw.items():
        runs = result["rounds"]
        assert isinstance(runs, dict)
        row: dict[str, object] = {"faults": result["faults"],
                                  "first_touch_seconds": result["first_touch_seconds"]}
        for what in ("write", "read"):
            file, anonymous = median(runs["file"], what), median(runs["anonymous"], what)
            row[f"{what}_mib_s"] = file / MiB
            row[f"{what}_anonymous_mib_s"] = anonymous / MiB
            row[f"{what}_ratio"] = file / anonymous
        table[label] = row
    return table


def render(table: dict[str, dict[str, object]], size_mib: int) -> str:
    lines = [f"{'mapping of a ' + str(size_mib) + ' MiB file':<36} {'PMD':>5} {'fallback':>8} "
             f"{'PTE':>7} {'touch s':>8} {'write MiB/s':>12} {'x anon':>7} "
             f"{'read MiB/s':>11} {'x anon':>7}"]
    for label, row in table.items():
        faults = row["faults"] or {}
        assert isinstance(faults, dict)
        lines.append(
            f"{label:<36} {faults.get('pmd', '-'):>5} {faults.get('pmd_fallback', '-'):>8} "
            f"{faults.get('pte', '-'):>7} {row['first_touch_seconds']:>8.2f} "
            f"{row['write_mib_s']:>12.0f} {row['write_ratio']:>6.2f}x "
            f"{row['read_mib_s']:>11.0f} {row['read_ratio']:>6.2f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=REPO / "build" / "bench-dax.json")
    args = parser.parse_args()
    image = ensure_base()
    started = time.monotonic()
    with Guest(image.path, WORK, memory=GUEST_MEMORY, max_boots=2, timeout=3600) as guest:
        guest.wait_boot(600)
        set_memmap(guest)
        mounts = make_mounts(guest)
        script = guest.put("dax_guest.py", GUEST_SCRIPT.read_text())
        specs = " ".join(shlex.quote(f"{label}={path}") for label, path in mounts.items())
        done = guest.run(f"python3 {script} {args.size_mib} {args.rounds} {specs}\n",
                         name="bench", timeout=3000).check()
        guest.poweroff()
    table = summarize(json.loads(done.stdout))
    print(render(table, args.size_mib))
    print(f"target: all first-touch faults PMD, DAX bandwidth >= {TARGET}x anonymous memory "
          "(TCG: the guest's CPU is emulated; the ratios count, not the absolute figures)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "host": {"cpus": platform.machine(), "python": platform.python_version()},
        "guest": {"accel": "tcg", "memory": GUEST_MEMORY, "memmap": list(REGIONS),
                  "kernel_series": KERNEL},
        "size_mib": args.size_mib, "rounds": args.rounds,
        "seconds": round(time.monotonic() - started, 1), "results": table}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
