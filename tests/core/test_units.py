"""Unit names as systemd derives them, and the units of one region."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.core.model import Filesystem, FsType, OnBoot, Region
from pmemd.core.ranges import MemRange
from pmemd.core.units import (
    DEVICE_TIMEOUT,
    UnitError,
    escape_path,
    region_unit_names,
    render_region_units,
    unit_name,
)
from pmemd.machine.root import PMEMD_BIN, TARGET

GiB = 1 << 30


def systemd_escape(path: str) -> str:
    done = subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("path", [
    "/pmem", "/pmem-cache", "/", "//pmem//x/", "/pmem/./x", "/mnt/with space",
    "/data/pmém 100%", "/.hidden/x", "/a.b/c_d:e", "/x/-y-", "/tab\\back", "/über/ß",
    "/a/.b", "/dev/disk/by-pmem-address/0x300000000",
])
def test_escape_path_is_systemd_escape(path: str) -> None:
    assert escape_path(path) == systemd_escape(path)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc"),
                                      blacklist_characters="/\0"), min_size=1, max_size=8)
                .filter(lambda s: s not in (".", "..")), min_size=1, max_size=4))
def test_escape_path_agrees_with_systemd_on_any_normalized_path(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    assert escape_path(path) == systemd_escape(path)


@pytest.mark.parametrize(("path", "problem"), [
    ("/a/../b", "not a normalized path"),
    ("/" + "x" * 300, "too long for a unit name"),
])
def test_unit_names_systemd_could_not_load_are_refused(path: str, problem: str) -> None:
    with pytest.raises(UnitError, match=problem):
        unit_name(path, ".mount")


def _region(mountpoint: str = "/pmem", fs_type: FsType = FsType.XFS,
            options: tuple[str, ...] = ("noatime",), on_boot: OnBoot = OnBoot.RECREATE
            ) -> Region:
    return Region("data", 4 * GiB, 12 * GiB, Filesystem(fs_type, mountpoint, options, on_boot))


def _files(region: Region) -> dict[str, str]:
    rng = MemRange.sized(12 * GiB, 4 * GiB)
    return {f.path: (f.text if f.link is None else f"-> {f.link}")
            for f in render_region_units(region, rng, TARGET)}


def _values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_the_mount_waits_for_the_stable_name_with_dax_and_nofail() -> None:
    files = _files(_region())
    mount = files["pmem.mount"]
    assert _values(mount, "What") == ["/dev/disk/by-pmem-address/0x300000000"]
    assert _values(mount, "Where") == ["/pmem"]
    assert _values(mount, "Type") == ["xfs"]
    assert _values(mount, "Options") == ["dax=always,noatime,nofail"]
    # Wanted by local-fs.target, never required by it or ordered before it: a region whose
    # device never appears cannot send the boot to emergency mode.
    assert files["local-fs.target.wants/pmem.mount"] == "-> ../pmem.mount"
    assert not any("local-fs.target" in line for line in mount.splitlines()
                   if line.startswith(("Before=", "RequiredBy=", "WantedBy=")))


def test_the_mount_requires_its_make_filesystem_unit_and_wants_its_dax_check() -> None:
    names = region_unit_names(_region(), MemRange.sized(12 * GiB, 4 * GiB), TARGET)
    files = _files(_region())
    mount = files[names.mount]
    assert _values(mount, "Requires") == [names.makefs]
    assert _values(mount, "After") == [names.makefs]
    assert _values(mount, "Wants") == [names.dax]
    makefs = files[names.makefs]
    assert _values(makefs, "BindsTo") == [names.device_unit]
    assert _values(makefs, "After") == [names.device_unit, "local-fs-pre.target"]
    assert _values(makefs, "RequiresMountsFor") == ["/var/lib/pmemd"]  # the boot history
    assert names.mount in _values(makefs, "Before")[0].split()
    assert _values(makefs, "ExecStart") == [f"{PMEMD_BIN} make-filesystem data"]
    dax = files[names.dax]
    assert _values(dax, "BindsTo") == [names.mount]
    assert _values(dax, "After") == [names.mount, "sys-kernel-tracing.mount"]  # tracefs
    assert _values(dax, "ExecStart") == [f"{PMEMD_BIN} verify-dax data"]


def test_the_device_wait_is_bounded() -> None:
    files = _files(_region())
    dropin = files["dev-disk-by\\x2dpmem\\x2daddress-0x300000000.device.d/"
                   "50-pmemd-device-timeout.conf"]
    assert _values(dropin, "JobRunningTimeoutSec") == [DEVICE_TIMEOUT]


def test_percent_is_escaped_in_values() -> None:
    files = _files(_region("/data/100%"))
    mount = next(text for name, text in files.items() if name.endswith(".mount"))
    assert _values(mount, "Where") == ["/data/100%%"]


@pytest.mark.parametrize("mountpoint", ["/pmem\\", "/pmem "])
def test_mountpoints_a_unit_file_cannot_hold_are_refused(mountpoint: str) -> None:
    with pytest.raises(UnitError):
        _files(_region(mountpoint))


def test_a_region_without_filesystem_has_no_units() -> None:
    region = Region("raw", GiB, 4 * GiB)
    assert render_region_units(region, MemRange.sized(4 * GiB, GiB), TARGET) == ()
