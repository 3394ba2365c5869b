"""Tables for the pure parts of the D-Bus service: polkit's answer turned into a decision,
and the properties that changed between two readings."""

from __future__ import annotations

from typing import Any

import pytest

from pmemd.service.polkit import Action, PolkitReply, decide
from pmemd.service.views import ManagerView, changed_properties


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
        "DesiredMemmap": ["memmap=4G!12G"], "Warnings": [], "Problems": [], "ReadError": "",
        "Trial": "none", "TrialReason": "", "KernelImage": [[0xb000000, 0x1003000]]}
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
