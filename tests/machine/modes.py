"""Sysfs trees of a memmap= namespace in each mode, as a Debian 12 guest showed them
(/work/shared/reference/vm-facts.md, 2026-12-07): a copy of examples/machines/qemu-2g-pmem
(region0 and namespace0.0 at 1 GiB, 512 MiB, pmem0) rewritten the way ndctl rewrites it.

* fsdax map=dev: pmem0 (same device number) moves under ``pfn0.1`` (``devtype`` nd_pfn,
  ``namespace`` namespace0.0, ``resource`` = data start 10 MiB in), 10 MiB smaller;
* devdax: no block device; the nd_dax ``dax0.1`` (the info block) holds the char device
  ``dax0.0`` (subsystem dax, ``/sys/bus/dax/devices/dax0.0``), driver device_dax;
* system-ram: the same, driver kmem.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pmemd.machine.root import Machine
from tests.conftest import MACHINES

MiB = 1 << 20
START = 1 << 30
SIZE = 512 * MiB
INFO = 10 * MiB  # the info block and page array ndctl put before the data (map=dev)
REGION = Path("sys/devices/platform/e820_pmem/ndbus0/region0")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def raw_machine(tmp_path: Path) -> Machine:
    target = tmp_path / "machine"
    shutil.copytree(MACHINES / "qemu-2g-pmem", target, symlinks=True)
    return Machine(target)


def make_fsdax(machine: Machine) -> None:
    """pmem0 behind pfn0.1, as ``ndctl create-namespace -m fsdax --map=dev`` leaves it."""
    region = machine.root / REGION
    pfn = region / "pfn0.1"
    for name, text in (("devtype", "nd_pfn"), ("namespace", "namespace0.0"),
                       ("resource", f"0x{START + INFO:x}"), ("size", str(SIZE - INFO)),
                       ("mode", "pmem"), ("align", "4096")):
        _write(pfn / name, text)
    _link(pfn / "subsystem", "../../../../../../bus/nd")
    _link(pfn / "driver", "../../../../../../bus/nd/drivers/nd_pmem")
    os.rename(region / "namespace0.0/block", pfn / "block")
    disk = pfn / "block/pmem0"
    _link(disk / "device", "../../../pfn0.1")
    _write(disk / "size", str((SIZE - INFO) // 512))
    _write(region / "namespace0.0/holder", "pfn0.1")
    _link(machine.sys_block / "pmem0", "../devices/platform/e820_pmem/ndbus0/region0/"
                                       "pfn0.1/block/pmem0")
    _link(machine.sys_nd_devices / "pfn0.1",
          "../../../devices/platform/e820_pmem/ndbus0/region0/pfn0.1")


def make_devdax(machine: Machine, *, system_ram: bool = False) -> None:
    """No pmem0; dax0.0 under the nd_dax dax0.1, as ``ndctl create-namespace -m devdax``
    (and, ``system_ram``, ``daxctl reconfigure-device --mode=system-ram``) leaves it."""
    region = machine.root / REGION
    shutil.rmtree(region / "namespace0.0/block")
    (machine.sys_block / "pmem0").unlink()
    nd_dax = region / "dax0.1"
    for name, text in (("devtype", "nd_dax"), ("namespace", "namespace0.0"),
                       ("resource", f"0x{START + INFO:x}"), ("size", str(SIZE - INFO)),
                       ("mode", "pmem"), ("align", str(2 * MiB))):
        _write(nd_dax / name, text)
    _link(nd_dax / "subsystem", "../../../../../../bus/nd")
    _write(region / "namespace0.0/holder", "dax0.1")
    _write(region / "namespace0.0/mode", "dax")
    device = nd_dax / "dax0.0"
    for name, text in (("resource", f"0x{START + INFO:x}"), ("size", str(SIZE - INFO)),
                       ("align", str(2 * MiB)), ("dev", "252:0"), ("target_node", "0"),
                       ("uevent", "MAJOR=252\nMINOR=0\nDEVNAME=dax0.0")):
        _write(device / name, text)
    _link(device / "subsystem", "../../../../../../../bus/dax")
    driver = "kmem" if system_ram else "device_dax"
    _link(device / "driver", f"../../../../../../../bus/dax/drivers/{driver}")
    (machine.root / "sys/bus/dax/drivers" / driver).mkdir(parents=True, exist_ok=True)
    _link(machine.sys_dax_devices / "dax0.0",
          "../../../devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax0.0")
