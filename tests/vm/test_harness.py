"""The harness without a guest: what it says when it cannot run, what rebuilds the image."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm.image import ImageError, base_key, ensure_base
from tests.vm.qemu import Guest, VMError
from tests.vm.steps import add_kernel_options


def test_missing_qemu_fails_with_the_package_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    guest = Guest(tmp_path / "image.raw", tmp_path / "guest")
    with pytest.raises(VMError, match=r"qemu-system-x86_64 \(Debian package qemu-system-x86\)"):
        guest.start()
    assert not (tmp_path / "guest").exists()


def test_missing_mmdebstrap_fails_with_the_package_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImageError, match=r"mmdebstrap \(Debian package mmdebstrap\)"):
        ensure_base(tmp_path / "cache")
    assert list((tmp_path / "cache").glob("*.raw")) == []


def test_the_cache_key_changes_with_every_input(tmp_path: Path) -> None:
    for name in ("image.sh", "packages", "guest/unit.service"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"{name}\n")
    keys = [base_key(tmp_path)]
    assert base_key(tmp_path) == keys[0]
    for name in ("image.sh", "packages", "guest/unit.service"):
        with (tmp_path / name).open("a") as file:
            file.write("changed\n")
        keys.append(base_key(tmp_path))
    (tmp_path / "guest" / "new.rules").write_text("")
    keys.append(base_key(tmp_path))
    assert len(set(keys)) == 5


@pytest.mark.parametrize("option", ["memmap=512M\\!1G", "memmap=512M$1G", "a'b", "x/y", ""])
def test_kernel_options_a_shell_or_grub_would_misread_are_refused(option: str) -> None:
    with pytest.raises(ValueError, match="refusing kernel option"):
        add_kernel_options(option)


def blank_disk(tmp_path: Path) -> Path:
    """A disk with nothing to boot: SeaBIOS says so on the console."""
    disk = tmp_path / "blank.raw"
    with disk.open("wb") as file:
        file.truncate(64 << 20)
    return disk


@pytest.mark.vm
def test_a_guest_that_never_comes_up_fails_within_its_time(tmp_path: Path) -> None:
    with Guest(blank_disk(tmp_path), tmp_path / "guest", timeout=10) as guest, \
            pytest.raises(VMError, match=r"(?s)no answer within the guest's 10 s in total"
                          r".*No bootable device"):
        guest.wait_boot()
    assert "No bootable device" in (tmp_path / "guest" / "console.log").read_text()


@pytest.mark.vm
def test_a_boot_loop_is_cut_off_by_the_bound_on_boots(tmp_path: Path) -> None:
    # SeaBIOS retries a failed boot after reboot-timeout ms: a loop of real reboots.
    with Guest(blank_disk(tmp_path), tmp_path / "guest", max_boots=3,
               extra_args=["-boot", "reboot-timeout=100"]) as guest, \
            pytest.raises(VMError, match=r"the guest booted 4 times \(at most 3\)"):
        guest.wait_boot()
