"""``make demo-vm`` (the second half of ``./run demo``): pmemd's main job on a real machine.

Builds pmemd's .deb from this checkout, builds (or takes from the cache) the Debian 12 test
image with it installed, boots it under qemu from its own GRUB, writes an example
``/etc/pmemd.yaml`` with two regions, lets ``pmemd-reconcile.service`` arm a trial boot
(a one-time GRUB entry) and reboot the guest into it (``boot.reboot: auto``), where
``pmemd-trial.service`` verifies the regions and commits the options to the default
entry, then shows what a user would
look at: ``/proc/cmdline``, ``pmemctl status``, ``pmemctl regions``, ``pmemd plan`` and the
DAX mounts (``findmnt``), and writes a file through each mount.

As root, on Debian 12 (``./run demo`` installs the packages first)::

    python3 -m tests.vm.demo [--workdir DIR]

The guest's serial console and every step's script and output stay in the work directory
(default ``tests/vm/artifacts/demo-vm/``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.vm.e2e import (
    REPO,
    DebError,
    Journey,
    RegionSpec,
    build_pmemd_deb,
    memmap_options,
    mount_at,
    render_config,
    require,
)
from tests.vm.image import CACHE, ImageError, ensure_with_debs, missing_host_tools
from tests.vm.qemu import Guest, VMError, missing_qemu_tools

REGIONS = (
    RegionSpec("data", "512M", "1G", "xfs", "/pmem", options=("noatime",)),
    RegionSpec("scratch", "256M", "1536M", "ext4", "/pmem-scratch"),
)
CONFIG = render_config(REGIONS, reboot="auto", comment=(
    "pmemd demo (tests/vm/demo.py): two regions of this 2 GiB guest's RAM as emulated pmem,\n"
    "an xfs and an ext4 DAX filesystem; pmemd may reboot the guest once to apply it."))
WORKDIR = REPO / "tests" / "vm" / "artifacts" / "demo-vm"
LOOK = (
    ("the kernel command line", "cat /proc/cmdline"),
    ("pmemd's state over D-Bus", "pmemctl status"),
    ("each region: device, mount, DAX", "pmemctl regions"),
    ("what pmemd planned, and each device by its physical address", "pmemd plan"),
    ("the DAX mounts", "findmnt --types xfs,ext4 --output TARGET,SOURCE,FSTYPE,OPTIONS "
                       "--list | grep -e TARGET -e /dev/pmem"),
)


class Narrator:
    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.number += 1
        elapsed = time.monotonic() - self.started
        print(f"\n==> [{self.number}/{self.total}] {text}  (+{elapsed:.0f} s)", flush=True)

    @staticmethod
    def show(title: str, command: str, output: str) -> None:
        print(f"\n--- {title}\nguest# {command}\n{output.rstrip()}", flush=True)


def demo(workdir: Path) -> None:
    say = Narrator(7)
    say.step("building pmemd's .deb from this checkout (packaging/build-deb)")
    deb = build_pmemd_deb(REPO / "build" / "demo-vm")
    print(f"    {deb}")

    say.step("preparing the Debian 12 guest image with the .deb installed "
             f"(first time: mmdebstrap, about 2 minutes; then cached in {CACHE})")
    image = ensure_with_debs([deb])
    print(f"    {image.path}")

    say.step("booting the guest under qemu (TCG: 30-60 s to multi-user); serial console: "
             f"{workdir / 'console.log'}")
    guest = Guest(image.path, workdir, max_boots=2, timeout=1800)
    with guest:
        journey = Journey(guest)
        boot = journey.first_boot()
        print(f"    boot 1 reached multi-user.target in {boot.seconds:.0f} s")
        cmdline = journey.check("cat /proc/cmdline\n", "cmdline").stdout
        say.show("before: no memmap= option", "cat /proc/cmdline", cmdline)

        say.step("writing /etc/pmemd.yaml and checking it (pmemd validate, pmemd plan)")
        journey.install_config(CONFIG)
        print("\n" + CONFIG.rstrip())
        for command in ("pmemd validate", "pmemd plan"):
            # plan exits 4: the boot configuration must change first
            say.show(command, command, journey.run(command + " 2>&1\n", "before").stdout)

        say.step("pmemd-reconcile.service arms a trial boot (a one-time GRUB entry with the "
                 "new options; the default entry keeps the old ones) and, with "
                 "boot.reboot: auto, reboots the guest into it")
        second = journey.reconcile_reboots("reconcile")
        print(f"    boot 2 (the trial boot) reached multi-user.target in "
              f"{second.seconds:.0f} s")
        say.show("what pmemd-reconcile.service did before the reboot",
                 "journalctl -b -1 -u pmemd-reconcile.service -o cat",
                 journey.journal("reconcile-log", "-b", "-1", "-u", "pmemd-reconcile.service"))
        say.show("pmemd-trial.service verified the trial boot and made the options the "
                 "default entry's", "journalctl -b -u pmemd-trial.service -o cat",
                 journey.journal("trial-log", "-b", "-u", "pmemd-trial.service"))

        say.step("what a user looks at after the reboot")
        snapshot = journey.snapshot("booted")
        for title, command in LOOK:
            say.show(title, command, journey.run(command + " 2>&1\n", "look").stdout)
        for region in REGIONS:
            token = f"written through {region.mountpoint} by the demo"
            done = journey.roundtrip(region.mountpoint, token, "roundtrip")
            require(done["read"] == token, f"{region.mountpoint}: read back {done['read']!r}")
            print(f"    {region.mountpoint}/e2e-token: written and read back; statx says "
                  f"{'DAX' if done['dax'] else 'NOT DAX'}")

        say.step("checking it as the end-to-end test does, then powering off")
        require(memmap_options(snapshot["cmdline"]) == [r.memmap for r in REGIONS],
                f"/proc/cmdline lacks pmemd's options: {snapshot['cmdline']}")
        for region in REGIONS:
            mount = mount_at(snapshot, region.mountpoint)
            require(mount is not None and "dax=always" in mount["options"],
                    f"{region.mountpoint} is not a DAX mount: {mount}")
        require(snapshot["pmemctl_status_json"]["State"] == "converged",
                "pmemd does not say converged:\n" + snapshot["pmemctl_status"]["stdout"])
        require(journey.property("Trial") == 's "committed"',
                "pmemd does not say the trial boot was committed:\n"
                + snapshot["pmemctl_status"]["stdout"])
        guest.poweroff()
    print(f"\npmemd demo on a qemu guest: done in {time.monotonic() - say.started:.0f} s: "
          "memmap= through GRUB, one automatic reboot into a trial boot, verified and "
          "committed, two DAX filesystems, converged.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.vm.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=WORKDIR,
                        help="the guest's console, share and overlay disk (emptied first)")
    args = parser.parse_args(argv)
    missing = missing_host_tools() + missing_qemu_tools()
    if missing:
        print("demo-vm: cannot run the guest here, missing: " + ", ".join(missing)
              + " (./run demo installs the packages)", file=sys.stderr)
        return 1
    try:
        demo(args.workdir)
    except (DebError, ImageError, VMError) as err:
        print(f"\ndemo-vm: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
