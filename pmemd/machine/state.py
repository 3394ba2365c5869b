"""What pmemd keeps in ``/var/lib/pmemd/state.json``: the kernel options it wrote (so it
only ever removes its own), the ones it took off that the running kernel may still carry,
and the boot-loop guard: for which desired state it found a reboot needed, on which boot,
and whether it already rebooted for it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pmemd.core.reboot import Pending
from pmemd.core.trial import Trial, TrialState
from pmemd.errors import MachineError
from pmemd.machine.atomic import Transaction, write_atomic
from pmemd.machine.root import Machine

STATE_VERSION = 1


@dataclass(frozen=True)
class State:
    owned: tuple[str, ...] = ()  # on the next boot's command line because pmemd put them
    retired: tuple[str, ...] = ()  # pmemd took them off; the running kernel still has them
    bootloader: str | None = None  # the backend that wrote ``owned``
    pending: Pending | None = None
    degraded: str | None = None  # why the last reboot did not bring the options
    trial: Trial = field(default_factory=Trial)  # the last trial boot (see pmemd.core.trial)


def _strings(value: Any, what: str, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MachineError(f"{path}: {what!r} is not a list of strings")
    return tuple(value)


def parse_state(text: str, path: str) -> State:
    """The state file's JSON; anything malformed is an error, never a guess about what
    pmemd owns."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MachineError(f"{path}:{err.lineno}:{err.colno}: not JSON ({err.msg}); pmemd "
                           "will not guess which kernel options are its own. Fix or remove "
                           "the file (pmemd then owns nothing)") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise MachineError(f"{path}: not a pmemd state file of version {STATE_VERSION}")
    pending = data.get("pending")
    if pending is not None:
        if not isinstance(pending, dict) or not isinstance(pending.get("digest"), str):
            raise MachineError(f"{path}: 'pending' is malformed")
        boot = pending.get("boot_id")
        pending = Pending(pending["digest"], boot if isinstance(boot, str) else None,
                          bool(pending.get("rebooted", False)))
    bootloader = data.get("bootloader")
    degraded = data.get("degraded")
    trial = _parse_trial(data.get("trial"), path)
    return State(
        owned=_strings(data.get("owned", []), "owned", path),
        retired=_strings(data.get("retired", []), "retired", path),
        bootloader=bootloader if isinstance(bootloader, str) else None,
        pending=pending,
        degraded=degraded if isinstance(degraded, str) else None,
        trial=trial,
    )


def _parse_trial(value: Any, path: str) -> Trial:
    if value is None:
        return Trial()
    states = {s.value: s for s in TrialState}
    if not isinstance(value, dict) or value.get("state") not in states:
        raise MachineError(f"{path}: 'trial' is malformed")
    texts = {}
    for key in ("digest", "armed_on", "booted"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise MachineError(f"{path}: 'trial.{key}' is not a string")
        texts[key] = item
    reason = value.get("reason", "")
    if not isinstance(reason, str):
        raise MachineError(f"{path}: 'trial.reason' is not a string")
    return Trial(states[value["state"]], texts["digest"],
                 _strings(value.get("options", []), "trial.options", path),
                 texts["armed_on"], texts["booted"], reason)


def render_state(state: State) -> str:
    pending = state.pending
    document: dict[str, Any] = {
        "version": STATE_VERSION,
        "bootloader": state.bootloader,
        "owned": list(state.owned),
        "retired": list(state.retired),
        "pending": None if pending is None else {
            "digest": pending.digest, "boot_id": pending.boot_id,
            "rebooted": pending.rebooted},
        "degraded": state.degraded,
    }
    trial = state.trial
    if trial != Trial():
        document["trial"] = {
            "state": trial.state.value, "digest": trial.digest, "options": list(trial.options),
            "armed_on": trial.armed_on, "booted": trial.booted, "reason": trial.reason}
    return json.dumps(document, indent=2) + "\n"


def read_state(machine: Machine) -> State:
    text = machine.read_text(machine.state_file)
    if text is None:
        return State()
    return parse_state(text, str(machine.state_file))


def write_state(machine: Machine, state: State, transaction: Transaction | None = None) -> bool:
    """Write ``state`` if it differs from the file; says whether it wrote."""
    text = render_state(state)
    if machine.read_text(machine.state_file) == text:
        return False
    if transaction is not None:
        transaction.write(machine.state_file, text, mode=0o644, backup=False)
    else:
        write_atomic(machine.state_file, text, mode=0o644)
    return True
