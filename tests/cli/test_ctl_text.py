"""pmemctl's text, from what the service answered (pure: no bus)."""

from __future__ import annotations

from typing import Any

from pmemd.cli.ctl_text import render_regions, render_status
from pmemd.service.api import RegionRow


def props(**changes: Any) -> dict[str, object]:
    fields: dict[str, object] = {
        "Version": "0.1.0", "State": "converged", "RebootRequired": False,
        "Bootloader": "update-grub", "BootloaderReason": "update-grub: found",
        "ConfigPath": "/etc/pmemd.yaml", "CurrentMemmap": ["memmap=4G!12G"],
        "DesiredMemmap": ["memmap=4G!12G"], "Warnings": [], "Problems": [], "ReadError": ""}
    return {**fields, **changes}


def test_status_text() -> None:
    manager = props(State="reboot-required", RebootRequired=True, CurrentMemmap=[],
                    Warnings=[["kaslr", "", "KASLR is on"]],
                    Problems=[["not a size", "regions[0].size", "/etc/pmemd.yaml", 4, 11]])
    regions = [RegionRow(name="data", path="/io/pmemd1/region/data", offset=1 << 34,
                         size=1 << 32, device="", mountpoint="/pmem", fstype="xfs",
                         state="missing")]
    assert render_status(manager, regions) == (
        "          State: reboot-required\n"
        "Reboot required: yes\n"
        "     Bootloader: update-grub (update-grub: found)\n"
        "         Config: /etc/pmemd.yaml\n"
        "   Running with: no memmap= option\n"
        "      Next boot: memmap=4G!12G\n"
        "        Regions: 1 configured, 0 ready\n"
        "        Warning: KASLR is on\n"
        "        Problem: /etc/pmemd.yaml:4:11: regions[0].size: not a size\n"
        "        Version: 0.1.0\n")


def test_regions_text_for_no_region() -> None:
    assert render_regions([]) == "No regions configured.\n"
