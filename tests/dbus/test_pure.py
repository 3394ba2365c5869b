"""Tables for the pure parts of the D-Bus service and pmemctl: object-path escaping (as
sd-bus does it), polkit's answer turned into a decision, the properties that changed, and
pmemctl's text."""

from __future__ import annotations

from typing import Any

import pytest

from pmemd.ctl import render_regions, render_status
from pmemd.polkit import Action, PolkitReply, decide
from pmemd.service import (
    ManagerView,
    changed_properties,
    escape_path_label,
    region_path,
    unescape_path_label,
)


@pytest.mark.parametrize(("label", "element"), [
    ("data", "data"),
    ("fast-log", "fast_2dlog"),  # '-' is not allowed in an object path
    ("0cache", "_30cache"),  # nor is a leading digit (sd-bus escapes it)
    ("a0", "a0"),
    ("a_b", "a_5fb"),  # '_' itself is escaped, so the escaping is reversible
    ("", "_"),
    ("é", "_c3_a9"),  # bytes of the UTF-8 encoding
    ("x.y", "x_2ey"),
])
def test_path_elements_are_escaped_like_sd_bus(label: str, element: str) -> None:
    assert escape_path_label(label) == element
    assert unescape_path_label(element) == label


def test_region_path() -> None:
    assert region_path("fast-log") == "/io/pmemd1/region/fast_2dlog"


@pytest.mark.parametrize(("uid", "reply", "error", "refusal"), [
    (0, None, None, None),  # root: always, polkit or not
    (0, PolkitReply(False, False), None, None),
    (1000, PolkitReply(True, False), None, None),
    (1000, None, None, "polkit is not running on the system bus, so only root may do this"),
    (1000, PolkitReply(False, True), None, "authentication is required (io.pmemd1.manage)"),
    (1000, PolkitReply(False, True, dismissed=True), None, "authentication was dismissed"),
    (1000, PolkitReply(False, False), None, "polkit denies io.pmemd1.manage to this caller"),
    (1000, None, "org.freedesktop.PolicyKit1.Error.Failed: Action io.pmemd1.manage is not "
                 "registered", "polkit could not decide (org.freedesktop.PolicyKit1.Error"),
    (None, None, None, "only root may do this"),  # the bus did not say who it is
])
def test_polkit_decisions(uid: int | None, reply: PolkitReply | None, error: str | None,
                          refusal: str | None) -> None:
    decided = decide(Action.MANAGE, uid, reply, error)
    if refusal is None:
        assert decided is None
    else:
        assert decided is not None and refusal in decided
        assert decided.startswith("not allowed to change pmemd's configuration")


def view(**changes: Any) -> ManagerView:
    fields: dict[str, Any] = {
        "Version": "0.1.0", "State": "converged", "RebootRequired": False,
        "Bootloader": "update-grub", "BootloaderReason": "update-grub: found",
        "ConfigPath": "/etc/pmemd.yaml", "CurrentMemmap": ["memmap=4G!12G"],
        "DesiredMemmap": ["memmap=4G!12G"], "Warnings": [], "Problems": [], "ReadError": ""}
    return ManagerView(**{**fields, **changes})


@pytest.mark.parametrize(("old", "new", "changed"), [
    (None, view(), set(view().__dict__)),  # the first reading: everything
    (view(), view(), set()),
    (view(), view(State="reboot-required", RebootRequired=True),
     {"State", "RebootRequired"}),
    (view(), view(DesiredMemmap=["memmap=4G!12G", "memmap=2G!10G"]), {"DesiredMemmap"}),
    (view(), view(Warnings=[["kaslr", "", "KASLR is on"]]), {"Warnings"}),
])
def test_only_changed_properties_are_signalled(old: ManagerView | None, new: ManagerView,
                                               changed: set[str]) -> None:
    assert set(changed_properties(old, new)) == changed


def test_status_text() -> None:
    props = {**view(State="reboot-required", RebootRequired=True, CurrentMemmap=[],
                    Warnings=[["kaslr", "", "KASLR is on"]],
                    Problems=[["not a size", "regions[0].size", "/etc/pmemd.yaml", 4, 11]],
                    ReadError="").__dict__}
    regions = [["data", "/io/pmemd1/region/data", 1 << 34, 1 << 32, "", "/pmem", "xfs",
                "missing"]]
    assert render_status(props, regions) == (
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
