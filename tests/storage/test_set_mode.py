"""pmemd set-mode on a machine tree whose sysfs changes as ndctl and daxctl change the real
one (tests/machine/modes.py), with the commands' JSON as a guest printed it
(tests/fixtures/ndctl/): what runs, in which order, what is refused and why."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pmemd.core.model import Config, Filesystem, FsType, NamespaceMode, PageMap, Region
from pmemd.core.namespaces import Step
from pmemd.errors import MachineError, NoDevice, Refused
from pmemd.machine.root import Machine
from pmemd.machine.runner import Result, Runner
from pmemd.storage.namespace import set_region_mode
from tests.conftest import REPO
from tests.machine.modes import SIZE, START, make_devdax, make_fsdax, raw_machine

FIXTURES = REPO / "tests" / "fixtures" / "ndctl"


def fixture(name: str) -> str:
    """The fixture, with the guest's devdax namespace (namespace1.0, dax1.0) renamed to this
    tree's namespace0.0 / dax0.0 (and the guest's namespace0.0 to another one)."""
    text = (FIXTURES / name).read_text()
    if not name.startswith(("devdax", "system-ram", "warm-reboot")):
        return text
    return text.replace("namespace0.0", "namespace9.0").replace("namespace1.0", "namespace0.0") \
        .replace("dax1.0", "dax0.0")


@dataclasses.dataclass
class FakeTools(Runner):
    """ndctl, daxctl, blkid and udevadm as the guest answered, changing the tree like the
    kernel does."""

    machine: Machine | None = None
    ndctl: str = ""
    daxctl: str = "[]"
    blkid: tuple[int, str] = (2, "")
    after_create: Callable[[FakeTools, Sequence[str]], None] | None = None
    after_reconfigure: Callable[[FakeTools], None] | None = None

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = 600, mutating: bool = True) -> Result:
        args = tuple(argv)
        self.recorded.append(args)
        if self.dry_run and mutating:
            return Result(args, 0, "", "")
        out, code = "", 0
        if args[:2] == ("ndctl", "list"):
            out = self.ndctl
        elif args[:2] == ("daxctl", "list"):
            out = self.daxctl
        elif args[0] == "blkid":
            code, out = self.blkid
        elif args[:2] == ("ndctl", "create-namespace"):
            assert self.after_create is not None, args
            self.after_create(self, args)
        elif args[:2] == ("daxctl", "reconfigure-device"):
            assert self.after_reconfigure is not None, args
            self.after_reconfigure(self)
        return Result(args, code, out, "")

    def mutating(self) -> list[tuple[str, ...]]:
        return [a for a in self.recorded if a[:2] in (("ndctl", "create-namespace"),
                                                      ("daxctl", "reconfigure-device"))]


def machine_with_disk(tmp_path: Path) -> Machine:
    """The tree with its namespace's disk unmounted, its node a sparse zero file."""
    machine = raw_machine(tmp_path)
    machine.mountinfo.write_text("".join(
        line + "\n" for line in machine.mountinfo.read_text().splitlines()
        if "/dev/pmem" not in line))
    node = machine.dev_node("pmem0")
    node.parent.mkdir(parents=True, exist_ok=True)
    with node.open("wb") as handle:
        handle.truncate(SIZE)  # sparse and zero: blkid's "nothing" is then the truth
    return machine


def config(mode: NamespaceMode, map: PageMap = PageMap.DEV, fs: bool = False) -> Config:
    filesystem = Filesystem(FsType.XFS, "/fast") if fs else None
    return Config(regions=(Region("data", SIZE, START, filesystem, mode=mode, map=map),))


def no_wait(seconds: float) -> None:
    raise AssertionError("set-mode waited for a namespace that is there")


def to_fsdax(tools: FakeTools, argv: Sequence[str]) -> None:
    assert argv[-2:] == ("--mode=fsdax", "--map=dev")
    assert tools.machine is not None
    make_fsdax(tools.machine)
    tools.ndctl = fixture("fsdax-dev.ndctl-list-N-n.json")


def to_devdax(tools: FakeTools, argv: Sequence[str]) -> None:
    assert argv[-3:] == ("--mode=devdax", "--map=dev", "--align=2097152")
    assert tools.machine is not None
    make_devdax(tools.machine)
    tools.ndctl = fixture("devdax.ndctl-create-namespace.json")
    tools.daxctl = fixture("warm-reboot.daxctl-list.json")


def to_system_ram(tools: FakeTools) -> None:
    assert tools.machine is not None
    link = tools.machine.root / "sys/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax0.0"
    (link / "driver").unlink()
    (link / "driver").symlink_to("../../../../../../../bus/dax/drivers/kmem")
    tools.ndctl = fixture("system-ram.ndctl-list-N-v.json")
    tools.daxctl = fixture("system-ram.daxctl-reconfigure-device.json")


def test_raw_to_fsdax_map_dev_runs_create_namespace_and_checks_the_result(tmp_path: Path
                                                                          ) -> None:
    machine = machine_with_disk(tmp_path)
    tools = FakeTools(machine=machine, ndctl=fixture("raw.ndctl-list-N-n.json"),
                      after_create=to_fsdax)
    outcome = set_region_mode(machine, config(NamespaceMode.FSDAX, fs=True), "data", tools,
                              sleep=no_wait)
    assert tools.mutating() == [("ndctl", "create-namespace", "--force",
                                 "--reconfig=namespace0.0", "--mode=fsdax", "--map=dev")]
    assert ("udevadm", "settle", "--timeout=60") in tools.recorded
    assert outcome.decision.step is Step.CREATE
    assert "raw" in outcome.before and "fsdax mode map=dev (pmem0)" in outcome.after


def test_a_namespace_already_in_its_mode_is_left_alone(tmp_path: Path) -> None:
    """A warm reboot: the kernel found the info block; nothing runs, nothing is probed."""
    machine = machine_with_disk(tmp_path)
    make_fsdax(machine)
    tools = FakeTools(machine=machine, ndctl=fixture("fsdax-dev.ndctl-list-N-n.json"))
    outcome = set_region_mode(machine, config(NamespaceMode.FSDAX), "data", tools,
                              sleep=no_wait)
    assert outcome.decision.step is Step.NOTHING
    assert tools.mutating() == [] and not any(a[0] == "blkid" for a in tools.recorded)
    assert "nothing to do" in outcome.message()


def test_fsdax_map_mem_is_what_the_kernel_made(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    tools = FakeTools(machine=machine, ndctl=fixture("raw.ndctl-list-N-n.json"))
    outcome = set_region_mode(machine, config(NamespaceMode.FSDAX, PageMap.MEM), "data",
                              tools, sleep=no_wait)
    assert outcome.decision.step is Step.NOTHING and tools.mutating() == []


def test_a_filesystem_pmemd_did_not_make_is_refused(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    tools = FakeTools(machine=machine, ndctl=fixture("raw.ndctl-list-N-n.json"),
                      blkid=(0, "DEVNAME=/dev/pmem0\nUUID=1234\nTYPE=ext4\n"),
                      after_create=to_fsdax)
    with pytest.raises(Refused, match=r"/dev/pmem0 holds ext4 .*UUID=1234.*did not make"):
        set_region_mode(machine, config(NamespaceMode.FSDAX), "data", tools, sleep=no_wait)
    assert tools.mutating() == []


def test_a_mounted_device_is_refused(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    dev = (machine.sys_block / "pmem0" / "dev").read_text().strip()
    machine.mountinfo.write_text(
        f"90 1 {dev} / /mnt rw,relatime shared:1 - xfs /dev/pmem0 rw,dax=always\n")
    tools = FakeTools(machine=machine, ndctl=fixture("raw.ndctl-list-N-n.json"),
                      after_create=to_fsdax)
    with pytest.raises(Refused, match="mounted at /mnt"):
        set_region_mode(machine, config(NamespaceMode.DEVDAX), "data", tools, sleep=no_wait)
    assert tools.mutating() == []


def test_raw_to_system_ram_creates_devdax_then_hands_it_to_the_kernel(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    tools = FakeTools(machine=machine, ndctl=fixture("raw.ndctl-list-N-n.json"),
                      after_create=to_devdax, after_reconfigure=to_system_ram)
    outcome = set_region_mode(machine, config(NamespaceMode.SYSTEM_RAM), "data", tools,
                              sleep=no_wait)
    assert [a[:2] for a in tools.mutating()] == [("ndctl", "create-namespace"),
                                                 ("daxctl", "reconfigure-device")]
    assert tools.mutating()[1] == ("daxctl", "reconfigure-device", "--mode=system-ram",
                                   "dax0.0")
    assert "system-ram" in outcome.after


def test_system_ram_again_on_a_warm_boot_is_daxctl_only(tmp_path: Path) -> None:
    """The kernel brings the devdax info block back, but not the system-ram mode."""
    machine = raw_machine(tmp_path)
    make_devdax(machine)
    tools = FakeTools(machine=machine, ndctl=fixture("devdax.ndctl-create-namespace.json"),
                      daxctl=fixture("warm-reboot.daxctl-list.json"),
                      after_reconfigure=to_system_ram)
    outcome = set_region_mode(machine, config(NamespaceMode.SYSTEM_RAM), "data", tools,
                              sleep=no_wait)
    assert outcome.decision.step is Step.RECONFIGURE
    assert [a[:2] for a in tools.mutating()] == [("daxctl", "reconfigure-device")]


def test_memory_online_as_system_ram_is_not_rewritten(tmp_path: Path) -> None:
    machine = raw_machine(tmp_path)
    make_devdax(machine, system_ram=True)
    tools = FakeTools(machine=machine, ndctl=fixture("system-ram.ndctl-list-N-v.json"),
                      daxctl=fixture("system-ram.daxctl-reconfigure-device.json"))
    with pytest.raises(Refused, match="online as System RAM"):
        set_region_mode(machine, config(NamespaceMode.FSDAX), "data", tools, sleep=no_wait)
    assert tools.mutating() == []


def test_a_result_that_is_not_what_was_asked_is_an_error(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)

    def wrong(tools: FakeTools, argv: Sequence[str]) -> None:
        assert tools.machine is not None
        make_fsdax(tools.machine)
        tools.ndctl = fixture("raw.ndctl-list-N-n.json")  # ndctl left map=mem

    tools = FakeTools(machine=machine, ndctl=fixture("raw.ndctl-list-N-n.json"),
                      after_create=wrong)
    with pytest.raises(MachineError, match=r"after ndctl create-namespace .*not fsdax with "
                                           r"map=dev"):
        set_region_mode(machine, config(NamespaceMode.FSDAX), "data", tools, sleep=no_wait)


def test_unexpected_json_is_an_error(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    tools = FakeTools(machine=machine, ndctl="Error: no namespaces\n")
    with pytest.raises(MachineError, match="ndctl list -N printed no JSON"):
        set_region_mode(machine, config(NamespaceMode.FSDAX), "data", tools, sleep=no_wait)


def test_dry_run_decides_and_runs_nothing(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    tools = FakeTools(machine=machine, dry_run=True, ndctl=fixture("raw.ndctl-list-N-n.json"))
    outcome = set_region_mode(machine, config(NamespaceMode.DEVDAX), "data", tools,
                              sleep=no_wait)
    assert outcome.argvs[0][:2] == ("ndctl", "create-namespace") and not outcome.after
    assert (machine.sys_block / "pmem0").exists()


def test_a_region_the_command_line_does_not_reserve_has_no_namespace(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    machine.cmdline.write_text("root=/dev/vda1 ro\n")
    with pytest.raises(NoDevice, match="does not reserve it"):
        set_region_mode(machine, config(NamespaceMode.FSDAX), "data", FakeTools(machine=machine),
                        sleep=no_wait)


def test_the_namespace_is_waited_for_then_given_up_on(tmp_path: Path) -> None:
    machine = machine_with_disk(tmp_path)
    (machine.sys_nd_devices / "namespace0.0").unlink()
    slept: list[float] = []
    with pytest.raises(NoDevice, match="no nvdimm namespace at 0x40000000 after 2 s"):
        set_region_mode(machine, config(NamespaceMode.FSDAX), "data", FakeTools(machine=machine),
                        timeout=2, sleep=slept.append)
    assert slept and all(s == 0.5 for s in slept)
