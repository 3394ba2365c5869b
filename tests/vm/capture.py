"""Capture a real machine tree from the test guest (as root), for ``pmemd --root``.

    python -m tests.vm.capture examples/machines/qemu-2g-captured
    python -m tests.vm.capture examples/machines/qemu-2g-memmap-captured \\
        --memmap '512M!1G' --memmap '256M!0x60000000'

Boots the cached base image; with ``--memmap``, adds the options through the guest's
``/etc/default/grub`` + ``update-grub``, reboots, and mounts every ``/dev/pmemN`` with
``-o dax``; then ``capture-guest.sh`` copies what pmemd reads into OUT (replaced), and a
README saying how and when is written next to it.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.vm.image import ImageError, ensure_base
from tests.vm.qemu import SHARE_MOUNT, Guest, VMError
from tests.vm.steps import MOUNT_EVERY_PMEM_WITH_DAX, add_kernel_options

HERE = Path(__file__).resolve().parent
GUEST_SCRIPT = HERE / "capture-guest.sh"


def capture(out: Path, memmaps: Sequence[str], workdir: Path) -> str:
    """Capture into ``out``; returns the guest's kernel command line."""
    options = [f"memmap={value}" for value in memmaps]
    image = ensure_base()
    with Guest(image.path, workdir, max_boots=2) as guest:
        guest.wait_boot()
        if options:
            guest.run(add_kernel_options(*options), name="add-memmap").check()
            guest.reboot()
            guest.run(MOUNT_EVERY_PMEM_WITH_DAX, name="mount-dax").check()
        shutil.copy(GUEST_SCRIPT, guest.share / GUEST_SCRIPT.name)
        guest.run(f"exec bash {SHARE_MOUNT}/{GUEST_SCRIPT.name} {SHARE_MOUNT}/tree\n",
                  name="capture").check()
        tree = guest.share / "tree"
        cmdline = (tree / "proc" / "cmdline").read_text().strip()
        release = (tree / "proc" / "sys" / "kernel" / "osrelease").read_text().strip()
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(tree, out, symlinks=True)
        shutil.rmtree(tree)  # like sysfs, it has link loops: keep it out of the artifacts
    (out / "README.md").write_text(readme(out, options, cmdline, release), encoding="utf-8")
    return cmdline


def describe_pmem(tree: Path) -> list[str]:
    """One line per captured /dev/pmemN: its namespace, range, size, dax flag and mount."""
    mountinfo = (tree / "proc" / "self" / "mountinfo").read_text().splitlines()
    lines = []
    for block in sorted((tree / "sys" / "block").glob("pmem*")):
        namespace = (block / "device").resolve()
        start = int((namespace / "resource").read_text(), 16)
        size = int((namespace / "size").read_text())
        dax = (block / "queue" / "dax").read_text().strip()
        dev = (block / "dev").read_text().strip()
        mounts = [f"{line.split(' - ')[1].split()[0]} at `{line.split()[4]}`"
                  + (" (`dax=always`)" if "dax=always" in line else "")
                  for line in mountinfo if line.split()[2] == dev]
        lines.append(f"* `{block.name}`: `{namespace.name}`, {start:#x}-{start + size - 1:#x} "
                     f"({size >> 20} MiB), `queue/dax` {dax}, "
                     + (f"mounted {', '.join(mounts)}" if mounts else "not mounted"))
    return lines


def readme(out: Path, options: Sequence[str], cmdline: str, release: str) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args = "".join(f" --memmap '{option.removeprefix('memmap=')}'" for option in options)
    if options:
        booted = (f"booted with `{' '.join(options)}` (added to `GRUB_CMDLINE_LINUX_DEFAULT` "
                  "in the guest's `/etc/default/grub`, then `update-grub` and a reboot), "
                  "every `/dev/pmemN` formatted (XFS from 300 MB, else ext4 `-b 4096`) and "
                  "mounted with `-o dax` at `/pmemN`.")
    else:
        booted = "booted plainly (no `memmap=`, so no `sys/bus/nd` and no `sys/block/pmem*`)."
    devices = "\n".join(describe_pmem(out)) or "None."
    return f"""# {out.name}: captured from a real qemu guest

Captured {when} (as root) by

    python -m tests.vm.capture {out}{args}

which boots the end-to-end tests' Debian 12 image (`tests/vm/image.sh`, kernel {release})
under qemu (TCG, `-cpu max -m 2G -smp 2`, SeaBIOS) and runs `tests/vm/capture-guest.sh`
in it. The guest was {booted}

Command line: `{cmdline}`

Persistent memory devices:

{devices}

What is here, copied from the running guest: `sys/firmware/memmap/*/{{start,end,type}}`,
`proc/{{iomem,cmdline,meminfo}}`, `proc/sys/kernel/osrelease`, `proc/self/mountinfo` (it
shows the harness's 9p share at `/mnt/host` too), the `sys/bus/nd/devices/*` links with
the attributes of the devices they lead to and their `driver` links (with the drivers'
links back), `sys/block/pmem*` with `size`, `dev`, `queue/dax` and the `device` link (all
links relative, as in sysfs, so they resolve inside this tree),
`boot/config-{release}` (the kernel's real config), `etc/default/grub` and
`boot/grub/grub.cfg`. `boot/vmlinuz-{release}` is an empty placeholder (only its name
matters). Redo the capture with the command above rather than editing files by hand.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the machine tree to write (replaced)")
    parser.add_argument("--memmap", action="append", default=[], metavar="NN!SS",
                        help="boot with memmap=NN!SS (repeatable)")
    parser.add_argument("--workdir", type=Path, default=HERE / "artifacts" / "capture",
                        help="the guest's console log, share and overlay")
    args = parser.parse_args(argv)
    try:
        cmdline = capture(args.out, args.memmap, args.workdir)
    except (ImageError, VMError, ValueError) as err:
        print(f"capture: {err}", file=sys.stderr)
        return 1
    print(f"captured {args.out} (cmdline: {cmdline})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
