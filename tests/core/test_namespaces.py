"""A region's namespace mode: ndctl/daxctl JSON as a Debian 12 guest printed it
(tests/fixtures/ndctl/), and the decision — nothing, create-namespace, reconfigure-device,
or refuse — as a table."""

from __future__ import annotations

import pytest

from pmemd.core.history import FsBasis, FsRecord, Prior, PriorKind
from pmemd.core.makefs import Probe
from pmemd.core.model import NamespaceMode, PageMap, Region
from pmemd.core.namespaces import (
    Claim,
    Current,
    DaxDevice,
    NamespaceState,
    NdctlOutputError,
    Step,
    create_argv,
    decide_mode,
    foreign_filesystem,
    mode_problem,
    namespace_of,
    parse_dax_devices,
    parse_namespaces,
    reconfigure_argv,
    system_ram_problem,
)
from pmemd.core.ranges import MemRange
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "ndctl"
MiB = 1 << 20
RNG = MemRange.sized(1 << 30, 512 * MiB)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_the_namespace_as_the_kernel_makes_it_reads_fsdax_mem_without_uuid() -> None:
    [ns] = parse_namespaces(fixture("raw.ndctl-list-N-n.json"))
    assert ns == NamespaceState("namespace0.0", "fsdax", "mem", 512 * MiB, None, "pmem0")


def test_fsdax_map_dev_is_smaller_by_its_page_array() -> None:
    [ns] = parse_namespaces(fixture("fsdax-dev.ndctl-create-namespace.json"))
    assert (ns.mode, ns.map, ns.size, ns.align, ns.blockdev) == \
        ("fsdax", "dev", 526385152, 4096, "pmem0")


def test_devdax_names_its_char_device_under_the_dax_region() -> None:
    [ns] = parse_namespaces(fixture("devdax.ndctl-create-namespace.json"))
    assert (ns.dev, ns.mode, ns.map, ns.align, ns.chardev, ns.blockdev) == \
        ("namespace1.0", "devdax", "dev", 2 * MiB, "dax1.0", None)


def test_a_list_of_several_namespaces_and_one_picked_by_name() -> None:
    states = parse_namespaces(fixture("warm-reboot.ndctl-list-N-v.json"))
    assert [s.dev for s in states] == ["namespace1.0", "namespace0.0"]
    assert namespace_of(states, "namespace0.0").map == "dev"
    with pytest.raises(NdctlOutputError, match=r"does not list namespace7\.0"):
        namespace_of(states, "namespace7.0")


def test_daxctl_system_ram_and_devdax() -> None:
    [ram] = parse_dax_devices(fixture("system-ram.daxctl-reconfigure-device.json"))
    assert ram == DaxDevice("dax1.0", "system-ram", 526385152, 2 * MiB, 3, 3)
    [dev] = parse_dax_devices(fixture("warm-reboot.daxctl-list.json"))
    assert (dev.mode, dev.online_memblocks) == ("devdax", None)


@pytest.mark.parametrize("text", [
    "not json", '"a string"', '[1, 2]', '{"mode": "fsdax"}', '{"dev": "n", "mode": 3}',
    '{"dev": "n", "mode": "fsdax", "size": -1}', '{"dev": "n", "mode": "fsdax", "size": true}',
])
def test_unexpected_json_is_an_error_naming_the_command(text: str) -> None:
    with pytest.raises(NdctlOutputError, match="ndctl list -N"):
        parse_namespaces(text)


def test_nothing_listed_is_no_namespace() -> None:
    assert parse_namespaces("") == ()
    assert parse_dax_devices("\n") == ()


RAW = Current(NamespaceState("namespace0.0", "fsdax", "mem", 512 * MiB, None, "pmem0"),
              Claim.NONE)
FSDAX_DEV = Current(NamespaceState("namespace0.0", "fsdax", "dev", 526385152, 4096, "pmem0"),
                    Claim.PFN)
DEVDAX = Current(NamespaceState("namespace0.0", "devdax", "dev", 526385152, 2 * MiB, None,
                                "dax0.0"), Claim.DAX, DaxDevice("dax0.0", "devdax"))
SYSRAM = Current(DEVDAX.namespace, Claim.DAX, DaxDevice("dax0.0", "system-ram"))


def region(mode: NamespaceMode, map: PageMap = PageMap.MEM, align: int = 2 * MiB) -> Region:
    return Region("data", 512 * MiB, 1 << 30, mode=mode, map=map, align=align)


DEV = PageMap.DEV
FS, DD, SR, RW = (NamespaceMode.FSDAX, NamespaceMode.DEVDAX, NamespaceMode.SYSTEM_RAM,
                  NamespaceMode.RAW)


@pytest.mark.parametrize(("wanted", "current", "step"), [
    (region(RW), RAW, Step.NOTHING),
    (region(FS), RAW, Step.NOTHING),  # fsdax/mem is what the kernel makes (no info block)
    (region(FS, DEV), RAW, Step.CREATE),
    (region(FS, DEV), FSDAX_DEV, Step.NOTHING),  # a warm reboot: the kernel found it
    (region(FS), FSDAX_DEV, Step.CREATE),
    (region(RW), FSDAX_DEV, Step.CREATE),
    (region(DD, DEV), RAW, Step.CREATE),
    (region(DD, DEV), DEVDAX, Step.NOTHING),
    (region(DD), DEVDAX, Step.CREATE),  # map=mem asked, map=dev there
    (region(DD, DEV, align=1 << 30), DEVDAX, Step.CREATE),
    (region(SR, DEV), RAW, Step.CREATE),
    (region(SR, DEV), DEVDAX, Step.RECONFIGURE),  # every boot: system-ram is not kept
    (region(SR, DEV), SYSRAM, Step.NOTHING),
    (region(DD, DEV), SYSRAM, Step.CREATE),
])
def test_what_to_do(wanted: Region, current: Current, step: Step) -> None:
    decision = decide_mode(wanted, current)
    assert decision.step is step, decision.reason
    assert (mode_problem(wanted, current) is None) == (step is Step.NOTHING)


def test_the_commands_for_each_mode() -> None:
    assert create_argv(region(FS, DEV), "namespace0.0") == [
        "ndctl", "create-namespace", "--force", "--reconfig=namespace0.0", "--mode=fsdax",
        "--map=dev"]
    assert create_argv(region(DD, DEV), "namespace1.0") == [
        "ndctl", "create-namespace", "--force", "--reconfig=namespace1.0", "--mode=devdax",
        "--map=dev", "--align=2097152"]
    assert create_argv(region(SR, DEV), "namespace1.0")[-3:] == [
        "--mode=devdax", "--map=dev", "--align=2097152"]
    assert create_argv(region(RW), "namespace0.0")[-1] == "--mode=raw"
    assert reconfigure_argv("dax1.0") == ["daxctl", "reconfigure-device", "--mode=system-ram",
                                          "dax1.0"]


def test_memory_online_as_system_ram_is_never_rewritten() -> None:
    problem = system_ram_problem(SYSRAM)
    assert problem is not None and "online as System RAM" in problem
    assert system_ram_problem(DEVDAX) is None


XFS = Probe({"TYPE": "xfs", "UUID": "u-1"})
OWN = FsRecord("b-1", RNG, "xfs", "u-1", "data", "made", FsBasis.BLANK, "r")


@pytest.mark.parametrize(("probe", "made", "prior", "refused"), [
    (Probe(), False, Prior(PriorKind.NONE), False),  # blank
    (Probe(nonzero_at=7), False, Prior(PriorKind.NONE), False),  # no filesystem
    (XFS, True, Prior(PriorKind.NONE), False),  # made on this boot
    (XFS, False, Prior(PriorKind.PMEM, "b-1", OWN), False),  # pmemd's, previous boot
    (XFS, False, Prior(PriorKind.RAM, "b-1"), False),  # leftover RAM
    (XFS, False, Prior(PriorKind.NONE), True),  # nobody knows whose
    (XFS, False, Prior(PriorKind.PMEM, "b-1"), True),  # pmem, but pmemd made none
    (Probe({"TYPE": "xfs", "UUID": "other"}), False, Prior(PriorKind.PMEM, "b-1", OWN), True),
    (Probe({"TYPE": "ext4", "UUID": "u-1"}), False, Prior(PriorKind.PMEM, "b-1", OWN), True),
    (Probe(ambivalent=True), False, Prior(PriorKind.NONE), True),
])
def test_a_filesystem_pmemd_did_not_make_is_never_destroyed(
        probe: Probe, made: bool, prior: Prior, refused: bool) -> None:
    reason = foreign_filesystem("/dev/pmem0", probe, made_this_boot=made, prior=prior)
    assert (reason is not None) == refused, reason
    if reason is not None:
        assert reason.startswith("/dev/pmem0 holds ") and "did not make" in reason


@pytest.mark.parametrize(("made", "prior", "refused"), [
    (False, Prior(PriorKind.PMEM, "b-1", OWN), True),  # kept data from the previous boot
    (True, Prior(PriorKind.NONE), False),  # made on this boot: nothing kept yet
    (False, Prior(PriorKind.RAM, "b-1"), False),  # leftover RAM
])
def test_a_kept_filesystem_of_pmemd_is_not_destroyed_by_a_mode_change(
        made: bool, prior: Prior, refused: bool) -> None:
    reason = foreign_filesystem("/dev/pmem0", XFS, made_this_boot=made, prior=prior, kept=True)
    assert (reason is not None) == refused, reason
    if reason is not None:
        assert "pmemd kept for region 'data', which is 'on-boot: keep'" in reason
        assert "set 'on-boot: recreate'" in reason


