"""Fedora, RHEL, CentOS Stream 8+: BLS entries in ``/boot/loader/entries`` changed with
``grubby --update-kernel=ALL``.

grubby's ``--args=key=value`` first deletes every argument with the same key, so all of
pmemd's ``memmap=`` options go into one call, together with every ``memmap=`` option
pmemd does not own (which would otherwise be deleted). On EL8 entries say
``options $kernelopts`` and grubby updates ``kernelopts`` in grubenv instead.

A trial boot is pmemd's own BLS entry, ``pmemd-trial.conf``: a copy of the default entry
with the trial's command line (``$kernelopts`` expanded), selected for one boot with
``grub2-reboot pmemd-trial``; GRUB's default stays what ``saved_entry`` names. Without a
``saved_entry`` GRUB boots the newest entry, which the copy could become: no trial then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends.base import (
    Backend,
    BootWrite,
    NextBoot,
    Probe,
    default_entry_file,
    file_write,
    on_target,
)
from pmemd.boot.backends.grub import pending_selection, read_grubenv
from pmemd.boot.bls import BlsEntry, find_entry, menu_order, parse_bls_entry, trial_copy
from pmemd.boot.grubenv import probe_grubenv
from pmemd.core.cmdline import (
    Cmdline,
    CmdlineEdit,
    parse_cmdline,
    render_cmdline,
    trial_args_text,
)
from pmemd.core.memmap import MEMMAP_KEY
from pmemd.core.model import BootloaderChoice
from pmemd.errors import BootConfigError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner

TOOL = "grubby"
TRIAL_ID = "pmemd-trial"  # the trial entry's BLS id: loader/entries/pmemd-trial.conf


def read_bls_entries(machine: Machine, directory: Path) -> list[BlsEntry]:
    """The type #1 entries (``*.conf``) of a ``loader/entries`` directory, newest first;
    not pmemd's trial entry, which is never the default."""
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob("*.conf")):
        if path.name == f"{TRIAL_ID}.conf":
            continue
        text = machine.read_text(path)
        if text is not None:
            entries.append(parse_bls_entry(path.name.removesuffix(".conf"), text))
    return menu_order(entries)


def grubby_args(current: Cmdline | None,
                edit: CmdlineEdit) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(``--args`` words, arguments that must survive): when a ``memmap=`` is added, every
    ``memmap=`` that stays (pmemd's and the admin's) is passed again, since grubby drops
    all of them first."""
    adds = list(edit.add)
    keep: list[str] = []
    if current is not None and any(a.startswith(f"{MEMMAP_KEY}=") for a in adds):
        for arg in current.args:
            if arg.after_dashdash or arg.key != MEMMAP_KEY or arg.text in edit.remove:
                continue
            if any(c in arg.text for c in ' \t"'):
                raise BootConfigError(
                    f"the default entry carries {arg.text!r}: grubby would drop it when pmemd "
                    "adds its memmap= options and cannot pass it back (it splits at spaces); "
                    "rewrite it without quotes first")
            if arg.text not in keep and arg.text not in adds:
                keep.append(arg.text)
    return (*keep, *adds), tuple(keep)


@dataclass(frozen=True)
class Grubby(Backend):
    tool: str = TOOL

    @property
    def kind(self) -> BootloaderChoice:
        return BootloaderChoice.GRUBBY

    def _env_paths(self) -> tuple[Path, ...]:
        return (self.machine.grub2_env,)

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        entries = read_bls_entries(m, m.loader_entries)
        if not entries:
            return NextBoot(None, str(m.loader_entries), note="no BLS entries")
        env = read_grubenv(m, self._env_paths())
        saved = env.get("saved_entry", "")
        entry = find_entry(entries, saved) if saved else None
        if entry is not None:
            how = f"saved_entry={saved!r} in grubenv"
        else:
            entry = entries[0]
            how = "the newest entry" + (f"; saved_entry={saved!r} names no entry" if saved
                                        else "")
        return NextBoot(parse_cmdline(entry.options(env)),
                        str(m.loader_entries / f"{entry.name}.conf"), entry.title,
                        entry.kernel, how)

    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        if edit.empty:
            return BootWrite()
        m = self.machine
        args, keep = grubby_args(current.cmdline, edit)
        argv = [self.tool, "--update-kernel=ALL"]
        if args:
            argv.append(f"--args={' '.join(args)}")
        if edit.remove:
            argv.append(f"--remove-args={' '.join(edit.remove)}")
        touched = [*sorted(m.loader_entries.glob("*.conf")), *self._env_paths(),
                   m.etc_default_grub]
        return BootWrite(commands=(tuple(argv),),
                         tool_files=tuple(p for p in touched if p.is_file()), keep=keep)

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        entries = sorted(m.loader_entries.glob("*.conf")) if m.loader_entries.is_dir() else []
        return (m.loader_entries, *entries, *self._env_paths())

    # --- the trial boot ---------------------------------------------------------------------

    @property
    def _trial_path(self) -> Path:
        return self.machine.loader_entries / f"{TRIAL_ID}.conf"

    def trial_support(self, runner: Runner) -> str | None:
        m = self.machine
        for tool in ("grub2-reboot", "grub2-editenv", "grub2-probe"):
            if m.program(tool) is None:
                return f"no {tool} program"
        pending = pending_selection(m, self._env_paths(), TRIAL_ID)
        if pending is not None:
            return pending
        saved = read_grubenv(m, self._env_paths()).get("saved_entry", "")
        if not saved or find_entry(read_bls_entries(m, m.loader_entries), saved) is None:
            return (f"{on_target(m, m.grub2_env)} names no saved_entry: GRUB boots the newest "
                    "entry, which a trial entry could become (grubby --set-default sets one)")
        return probe_grubenv(m, runner, m.grub2_env, "grub2-probe")

    def plan_trial(self, current: NextBoot, owned: Sequence[str], trial: Sequence[str]
                   ) -> BootWrite:
        m = self.machine
        text, cmdline = default_entry_file(m, current)
        options = trial_args_text(render_cmdline(a.text for a in cmdline.args), owned, trial)
        files = file_write(self._trial_path, trial_copy(text, options),
                           m.read_text(self._trial_path), own=True)
        return BootWrite(files=files, commands=(("grub2-reboot", TRIAL_ID),),
                         tool_files=self._env_paths())

    def plan_end_trial(self, current: NextBoot, owned: Sequence[str],
                       edit: CmdlineEdit) -> BootWrite:
        m = self.machine
        commit = self.plan_write(current, edit, owned)  # grubby on the entries, on commit
        files = file_write(self._trial_path, None, m.read_text(self._trial_path), own=True)
        unset = ("grub2-editenv", on_target(m, m.grub2_env), "unset", "next_entry")
        return BootWrite(files=(*files, *commit.files), commands=(*commit.commands, unset),
                         tool_files=tuple(dict.fromkeys((*commit.tool_files,
                                                         *self._env_paths()))),
                         keep=commit.keep)

    def read_trial(self) -> Cmdline | None:
        text = self.machine.read_text(self._trial_path)
        if text is None:
            return None
        return parse_cmdline(parse_bls_entry(TRIAL_ID, text).options(
            read_grubenv(self.machine, self._env_paths())))


def probe(machine: Machine) -> Probe:
    kind = BootloaderChoice.GRUBBY
    tool = machine.program(TOOL)
    entries = machine.loader_entries
    count = len(list(entries.glob("*.conf"))) if entries.is_dir() else 0
    if tool is None:
        return Probe(kind, None, f"no {TOOL} program (Fedora/RHEL)")
    if not count:
        return Probe(kind, None, f"{tool} exists but {entries} holds no BLS entries")
    return Probe(kind, Grubby(machine, tool),
                 f"{tool} and {count} BLS entries in {entries} (Fedora/RHEL)")
