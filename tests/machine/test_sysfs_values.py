"""Numbers in sysfs and /proc/iomem read exactly as the kernel writes them (unsigned 64-bit:
``0x%llx``, ``%#llx``, ``%llu``): a sign, separators, non-ASCII digits or more than 64 bits
are an error naming the file (and line), never an address; the generator logs and skips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pmemd.errors import MachineError
from pmemd.fastpath.iomem import IomemFormatError, parse_iomem
from pmemd.machine.memory import read_firmware_map
from pmemd.machine.root import Machine
from pmemd.machine.sysfs import read_devices
from tests.conftest import MACHINES, run_pmemd
from tests.golden.generated import run_generator

BEYOND_64 = "0x" + "f" * 40  # a 160-bit address
BAD_NUMBERS = [
    ("-0x100", "is not a hexadecimal number"),
    (BEYOND_64, "does not fit in 64 bits"),
    ("0x1_0000_0000", "is not a hexadecimal number"),
    ("0x\uff11\uff10\uff10", "is not a hexadecimal number"),  # full-width digits
    ("0x10000000000000000", "does not fit in 64 bits"),  # 2**64
    ("", "is not a hexadecimal number"),
]


def copy_machine(name: str, tmp_path: Path) -> Machine:
    target = tmp_path / name
    shutil.copytree(MACHINES / name, target, symlinks=True)
    return Machine(target)


@pytest.mark.parametrize(("value", "message"), BAD_NUMBERS)
@pytest.mark.parametrize("field", ["start", "end"])
def test_a_firmware_map_number_the_kernel_cannot_write_names_its_file(
        tmp_path: Path, field: str, value: str, message: str) -> None:
    machine = copy_machine("server-16g", tmp_path)
    bad = machine.firmware_memmap / "7" / field
    bad.write_text(value + "\n", encoding="utf-8")
    with pytest.raises(MachineError, match=message) as caught:
        read_firmware_map(machine)
    assert str(caught.value).startswith(f"{bad}: ")


@pytest.mark.parametrize(("value", "start"), [
    ("0x100000000", 1 << 32), ("0X100000000", 1 << 32), ("0xffffffffffffffff", (1 << 64) - 1),
])
def test_every_u64_the_kernel_can_write_is_read(tmp_path: Path, value: str, start: int
                                                ) -> None:
    machine = copy_machine("server-16g", tmp_path)
    (machine.firmware_memmap / "7" / "end").write_text("0xffffffffffffffff\n")
    (machine.firmware_memmap / "7" / "start").write_text(value + "\n")
    assert read_firmware_map(machine).firmware[-1].range.start == start


@pytest.mark.parametrize(("value", "message"), BAD_NUMBERS[:5])
def test_a_namespace_resource_the_kernel_cannot_write_names_its_file(
        tmp_path: Path, value: str, message: str) -> None:
    machine = copy_machine("server-16g-memmap", tmp_path)
    resource = machine.path("/sys/devices/platform/e820_pmem/ndbus0/region0/namespace0.0"
                            "/resource")
    resource.write_text(value + "\n", encoding="utf-8")
    with pytest.raises(MachineError, match=message) as caught:
        read_devices(machine)
    assert str(caught.value).startswith(f"{resource}: ")


@pytest.mark.parametrize("value", ["-1", "1" * 25, "12_000", "\u0661\u0662"])
def test_a_size_the_kernel_cannot_write_names_its_file(tmp_path: Path, value: str) -> None:
    machine = copy_machine("server-16g-memmap", tmp_path)
    size = machine.path("/sys/block/pmem0/size")
    size.write_text(value + "\n", encoding="utf-8")
    with pytest.raises(MachineError) as caught:
        read_devices(machine)
    assert str(caught.value).startswith(f"{size}: ")


def test_a_zero_resource_is_how_the_kernel_prints_zero(tmp_path: Path) -> None:
    machine = copy_machine("server-16g-memmap", tmp_path)
    base = "/sys/devices/platform/e820_pmem/ndbus0/region0"
    for path in (f"{base}/resource", f"{base}/namespace0.0/resource"):
        machine.path(path).write_text("0\n")  # %#llx of 0
    facts = read_devices(machine)
    assert facts.devices[0].range is not None and facts.devices[0].range.start == 0


@pytest.mark.parametrize("line", [
    "00000000-" + "f" * 17 + " : System RAM",  # more digits than the kernel prints
    "-0000100-00000fff : Reserved",
    "0000_100-00000fff : Reserved",
    "+0000100-00000fff : Reserved",
    "\uff10\uff10\uff10\uff11-00000fff : Reserved",
])
def test_an_iomem_address_the_kernel_cannot_print_names_its_line(line: str) -> None:
    with pytest.raises(IomemFormatError) as caught:
        parse_iomem(f"00000000-00000fff : Reserved\n{line}\n")
    assert caught.value.line == 2


def test_pmemd_memmap_names_the_file(tmp_path: Path) -> None:
    machine = copy_machine("server-16g", tmp_path)
    bad = machine.firmware_memmap / "7" / "end"
    bad.write_text(BEYOND_64 + "\n")
    done = run_pmemd("memmap", "--root", str(machine.root))
    assert done.returncode == 1
    assert done.stderr.startswith(f"pmemd: {bad}: '{BEYOND_64}' does not fit in 64 bits")


def test_the_generator_logs_and_skips_a_map_beyond_64_bits(tmp_path: Path) -> None:
    machine = copy_machine("server-16g", tmp_path)
    (machine.firmware_memmap / "7" / "end").write_text(BEYOND_64 + "\n")
    root = tmp_path / "root"
    target = Machine(root)
    target.config.parent.mkdir(parents=True)
    target.config.write_text("version: 1\nregions:\n  - name: cache\n    size: 2G\n"
                             "    filesystem: {type: ext4, mountpoint: /pmem}\n")
    target.path("/sys").symlink_to(machine.path("/sys"))
    run = run_generator(root)
    assert run.returncode == 0, run.log
    assert run.trees == ({}, {}, {})  # nothing placed in a range that cannot exist
    assert "does not fit in 64 bits" in run.log
    assert "ignoring" in run.log
