"""Fedora, RHEL, CentOS Stream 8+: BLS entries in ``/boot/loader/entries`` changed with
``grubby --update-kernel=ALL``.

grubby's ``--args=key=value`` first deletes every argument with the same key, so all of
pmemd's ``memmap=`` options go into one call, together with every ``memmap=`` option
pmemd does not own (which would otherwise be deleted). On EL8 entries say
``options $kernelopts`` and grubby updates ``kernelopts`` in grubenv instead (where grubenv
does not set it, GRUB takes the fallback grub.cfg gives, which grubby cannot change: pmemd
refuses then).

Kernels installed later get their entry from Fedora's kernel-install plugin
(20-grub.install), which takes the options from ``/etc/kernel/cmdline`` (without it, from
the running kernel's ``/proc/cmdline``, which lacks what changed since the boot), and
``grub2-mkconfig --update-bls-cmdline`` rewrites every entry from ``GRUB_CMDLINE_LINUX``.
pmemd keeps both in step itself, every other byte kept (grubby would rewrite the whole
``GRUB_CMDLINE_LINUX=`` line, and only where its value is not empty, so it is told
``--no-etc-grub-update``, which grubby has had since 2020: Fedora 33, RHEL 8's 8.40-39).
``/etc/kernel/cmdline`` is written after ``/etc/default/grub``: 20-grub.install runs
``grub2-mkconfig`` first when it is the older one. A missing ``/etc/kernel/cmdline`` is
created with the default entry's options, as ``grub2-mkconfig`` creates it; not on EL8,
whose new entries read ``$kernelopts``.

A trial boot is pmemd's own BLS entry, ``pmemd-trial.conf``: a copy of the default entry
with the trial's command line (``$kernelopts`` expanded), selected for one boot with
``grub2-reboot pmemd-trial``; GRUB's default stays what ``saved_entry`` names. Without a
``saved_entry`` GRUB boots the newest entry, which the copy could become: no trial then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends.base import (
    Backend,
    BootWrite,
    FileWrite,
    NextBoot,
    Probe,
    default_entry_file,
    file_write,
    on_target,
)
from pmemd.boot.backends.grub import pending_selection, read_grubenv
from pmemd.boot.backends.mkconfig import grub_cfg_output
from pmemd.boot.bls import BlsEntry, find_entry, menu_order, parse_bls_entry, trial_copy
from pmemd.boot.defaultgrub import edit_default_grub
from pmemd.boot.grubcfg import GRUBENV_HEADER, fallback_variable
from pmemd.boot.grubenv import probe_grubenv
from pmemd.core.cmdline import (
    Cmdline,
    CmdlineEdit,
    edit_args_text,
    parse_cmdline,
    render_cmdline,
    trial_args_text,
)
from pmemd.core.memmap import MEMMAP_KEY
from pmemd.core.model import BootloaderChoice
from pmemd.errors import BootConfigError, NoBootloader
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner

TOOL = "grubby"
TRIAL_ID = "pmemd-trial"  # the trial entry's BLS id: loader/entries/pmemd-trial.conf
KERNELOPTS = "kernelopts"  # EL8: the entries' options, in grubenv
# the word grubby looks for (``$kernelopts``), and GRUB's other spelling of it
_READS_KERNELOPTS = re.compile(r"\$(?:kernelopts|\{kernelopts\})(?![A-Za-z0-9_])")


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


def reads_kernelopts(entry: BlsEntry) -> bool:
    """The entry's options take ``$kernelopts`` from GRUB's environment (EL8)."""
    return _READS_KERNELOPTS.search(entry.options()) is not None


def default_bls_entry(entries: Sequence[BlsEntry], env: Mapping[str, str]
                      ) -> tuple[BlsEntry, str]:
    """The entry GRUB boots by default (``saved_entry``, else the newest), and how."""
    saved = env.get("saved_entry", "")
    entry = find_entry(entries, saved) if saved else None
    if entry is not None:
        return entry, f"saved_entry={saved!r} in grubenv"
    return entries[0], "the newest entry" + (
        f"; saved_entry={saved!r} names no entry" if saved else "")


@dataclass(frozen=True)
class Grubby(Backend):
    tool: str = TOOL

    @property
    def kind(self) -> BootloaderChoice:
        return BootloaderChoice.GRUBBY

    def _env_paths(self) -> tuple[Path, ...]:
        return (self.machine.grub2_env,)

    def _variables(self) -> dict[str, str]:
        """What GRUB expands the entries' ``$variables`` from: grubenv, and grub.cfg's
        fallback ``kernelopts`` where grubenv leaves it empty."""
        variables = read_grubenv(self.machine, self._env_paths())
        if not variables.get(KERNELOPTS):
            fallback = fallback_variable(self._grub_cfg_text(), KERNELOPTS)
            if fallback is not None:
                variables[KERNELOPTS] = fallback
        return variables

    def _grub_cfg_text(self) -> str:
        path = self._grub_cfg()
        return (self.machine.read_text(path) or "") if path is not None else ""

    def _grub_cfg(self) -> Path | None:
        """The grub.cfg GRUB reads (EL8 on EFI: beside its EFI binary)."""
        try:
            return grub_cfg_output(self.machine).path
        except NoBootloader:  # several vendors' configs: none is known to be read
            return None

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        entries = read_bls_entries(m, m.loader_entries)
        if not entries:
            return NextBoot(None, str(m.loader_entries), note="no BLS entries")
        variables = self._variables()
        entry, how = default_bls_entry(entries, variables)
        source = str(m.loader_entries / f"{entry.name}.conf")
        if reads_kernelopts(entry) and KERNELOPTS not in variables:
            return NextBoot(None, source, entry.title, entry.kernel,
                            f"{how}; its options read $kernelopts, which neither grubenv "
                            "nor grub.cfg sets")
        return NextBoot(parse_cmdline(entry.options(variables)), source, entry.title,
                        entry.kernel, how)

    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        m = self.machine
        # What later kernels and a later grub2-mkconfig take carries what pmemd owns,
        # whether or not the entries need grubby now.
        wanted = CmdlineEdit(add=tuple(owned_after), remove=edit.remove)
        files = (*self._default_grub_write(wanted), *self._kernel_cmdline_write(wanted))
        if edit.empty:
            return BootWrite(files=files)
        problem = self._kernelopts_problem()
        if problem is not None:
            raise BootConfigError(problem)
        args, keep = grubby_args(current.cmdline, edit)
        argv = [self.tool, "--update-kernel=ALL", "--no-etc-grub-update"]
        if args:
            argv.append(f"--args={' '.join(args)}")
        if edit.remove:
            argv.append(f"--remove-args={' '.join(edit.remove)}")
        # a grubby that keeps /etc/kernel/cmdline in step whatever --no-etc-grub-update
        # says may rewrite it too (pmemd's edit first: the same arguments): back on failure
        touched = [*sorted(m.loader_entries.glob("*.conf")), *self._env_paths(),
                   m.etc_default_grub, m.etc_kernel_cmdline]
        return BootWrite(files=files, commands=(tuple(argv),),
                         tool_files=tuple(p for p in touched if p.is_file()), keep=keep)

    def _default_grub_write(self, wanted: CmdlineEdit) -> tuple[FileWrite, ...]:
        """``GRUB_CMDLINE_LINUX``, which ``grub2-mkconfig --update-bls-cmdline`` (and
        EL8's grub2-mkconfig, into ``kernelopts``) writes into every entry."""
        m = self.machine
        old = m.read_text(m.etc_default_grub)
        if old is None:
            return ()
        return file_write(m.etc_default_grub,
                          edit_default_grub(old, wanted, on_target(m, m.etc_default_grub)),
                          old)

    def _kernel_cmdline_write(self, wanted: CmdlineEdit) -> tuple[FileWrite, ...]:
        """``/etc/kernel/cmdline``, where the entry of a kernel installed later takes its
        options from; created from the default entry's when missing."""
        m = self.machine
        old = m.read_text(m.etc_kernel_cmdline)
        base = old if old is not None else self._new_kernel_options()
        new = None if base is None else edit_args_text(base, wanted)
        if new is None or new == base:  # nothing of pmemd's: no file made for nothing
            return ()
        return file_write(m.etc_kernel_cmdline, new, old)

    def _new_kernel_options(self) -> str | None:
        """The default entry's options as written, for a new ``/etc/kernel/cmdline``;
        None where new entries read ``$kernelopts`` (EL8) or there is no entry."""
        m = self.machine
        entries = read_bls_entries(m, m.loader_entries)
        env = read_grubenv(m, self._env_paths())
        if not entries or env.get(KERNELOPTS):
            return None
        entry, _ = default_bls_entry(entries, env)
        return None if reads_kernelopts(entry) else entry.options() + "\n"

    def _kernelopts_problem(self) -> str | None:
        """Why grubby cannot carry an edit to the entries that read ``$kernelopts``."""
        m = self.machine
        readers = [e for e in read_bls_entries(m, m.loader_entries) if reads_kernelopts(e)]
        if not readers:
            return None
        env_file = on_target(m, m.grub2_env)
        text = m.read_text(m.grub2_env)
        if text is not None and not text.startswith(GRUBENV_HEADER):
            return (f"{env_file} is not a GRUB environment block (it does not start with "
                    f"{GRUBENV_HEADER.strip()!r}): grubby cannot change kernelopts there, "
                    f"which {len(readers)} BLS entries read; nothing was changed")
        if read_grubenv(m, self._env_paths()).get(KERNELOPTS):
            return None
        return (f"{len(readers)} BLS entries read $kernelopts, which {env_file} does not "
                "set (GRUB takes grub.cfg's fallback, which grubby does not change): pmemd's "
                "options would not reach them. Put the value in grubenv first: "
                'grub2-editenv - set "kernelopts=<the options>"')

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        entries = sorted(m.loader_entries.glob("*.conf")) if m.loader_entries.is_dir() else []
        grub_cfg = self._grub_cfg()
        return (m.loader_entries, *entries, *self._env_paths(),
                *(() if grub_cfg is None else (grub_cfg,)), m.etc_default_grub,
                m.etc_kernel_cmdline)

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
        return parse_cmdline(parse_bls_entry(TRIAL_ID, text).options(self._variables()))


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
