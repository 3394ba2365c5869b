"""What the service does, whatever carries the calls: read the machine (and notice when it
changed), validate, plan, apply, replace the config, mount and format — through the same
functions the ``pmemd`` commands call, one change at a time, in a worker thread.

Nothing that may block or take long runs on the event loop: readings of the machine run
in a reader thread, one at a time, coalesced (:mod:`pmemd.service.coalesce`), and the
last reading answers property reads meanwhile; checking a document runs in a thread of
its own.

Everything the service knows is re-read from the machine (config, memory map, command
line, devices, mounts): it keeps no state of its own, so it may exit when idle and start
again when called. The D-Bus objects (:mod:`pmemd.service.objects`) are thin over this.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TypeVar

from pmemd.boot.reconcile import reconcile
from pmemd.boot.report import plan_with_boot_document, render_reconcile_text
from pmemd.boot.stamp import remove_stamp
from pmemd.boot.trial import abort_trial, outlook, retry_trial
from pmemd.boot.view import BootView, plan_next_boot, read_boot_view
from pmemd.core.config import parse_config
from pmemd.core.facts import MachineFacts
from pmemd.core.model import Config, OnBoot
from pmemd.core.plan import PlacedRegion, Plan, plan
from pmemd.core.report import dump_json
from pmemd.core.units import region_unit_names
from pmemd.errors import (
    ApplyAfterSetConfigFailed,
    Busy,
    ConfigError,
    MachineError,
    NoFilesystem,
    NoSuchRegion,
    PmemdError,
)
from pmemd.generator.cache import CacheResult, refresh_generator_cache
from pmemd.machine.atomic import Transaction, remove_durably, sweep_temporaries
from pmemd.machine.facts import read_facts
from pmemd.machine.lock import change_lock
from pmemd.machine.root import TARGET, Machine
from pmemd.machine.runner import Runner
from pmemd.machine.systemctl import Systemd
from pmemd.service.api import VALIDATE_SOURCE, WarningRow
from pmemd.service.coalesce import Coalesced
from pmemd.service.polkit import Caller
from pmemd.service.status import Status, overall_state, read_status, unreadable_status
from pmemd.service.views import map_entries
from pmemd.storage.makefs import make_region_filesystem

log = logging.getLogger(__name__)

T = TypeVar("T")
RELOAD_SPACING = 1.0  # seconds at least between the starts of two reloads
FileStamp = tuple[int, int, int] | None


class Freshness(Enum):
    FRESH = "fresh"
    STALE = "stale"
    BUSY = "busy"


def _stamp(paths: tuple[str, ...]) -> tuple[FileStamp, ...]:
    """Cheap change detection for the files a status is read from (mtime, size, inode)."""
    out: list[FileStamp] = []
    for path in paths:
        try:
            st = os.stat(path)  # noqa: PTH116 (every call: no Path objects)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def checked_config(yaml: str, status: Status) -> tuple[Config, Plan | None]:
    """(pure, CPU-bound) ``yaml`` checked as ``Validate`` checks it, on the machine of
    ``status``: the config and its plan (``None`` when the machine could not be read, so
    only the text was checked); :class:`ConfigError` locating every problem in
    :data:`VALIDATE_SOURCE`."""
    config = parse_config(yaml, VALIDATE_SOURCE).require()
    if status.facts is None:
        return config, None
    result = _judged(config, status.facts, status)
    if result.problems:
        raise ConfigError(result.problems)
    return config, result


def reading_boot(config: Config, status: Status) -> BootView | None:
    """The reading's boot view when ``config`` names the reading's bootloader (then it is
    what ``config`` would be judged against); None otherwise."""
    if status.boot is None or status.config is None or \
            status.config.boot.bootloader is not config.boot.bootloader:
        return None
    return status.boot


def _judged(config: Config, facts: MachineFacts, status: Status) -> Plan:
    """``config``'s plan as ``pmemd plan`` makes it: knowing the options pmemd owns (an
    option it wrote and the running kernel carries is not a foreign one), against the
    reading's next boot when ``config`` names the reading's bootloader."""
    boot = reading_boot(config, status)
    if boot is not None:
        return plan_next_boot(config, facts, boot)
    return plan(config, facts, owned=status.boot.owned if status.boot is not None else ())


def check_document(yaml: str, status: Status) -> list[WarningRow]:
    """(pure, CPU-bound) ``Validate``'s answer for ``yaml`` on the machine of ``status``."""
    _config, result = checked_config(yaml, status)
    if result is None:
        return [WarningRow("machine-checks-skipped", "",
                           f"the text is valid; machine checks skipped: "
                           f"{status.machine_error}")]
    return [WarningRow(w.code, w.region or "", w.message) for w in result.warnings]


class Operations:
    """The service's work. ``on_change`` runs (on the event loop) after every new reading
    of the machine (the server publishes it)."""

    def __init__(self, machine: Machine, config_path: Path | None, systemd: Systemd,
                 on_change: Callable[[Status], None]) -> None:
        self.machine = machine
        self.config_path = config_path
        self.systemd = systemd
        self.on_change = on_change
        self.status: Status | None = None  # the last reading: what every answer is from
        # Files whose change means the status must be read again (checked at every call).
        self._watched = tuple(str(p) for p in (
            self.config_file, machine.cmdline, machine.state_dir, machine.runtime_dir,
            machine.pmd_checks, machine.sys_block, machine.mountinfo))
        self._stamp: tuple[FileStamp, ...] = ()
        self._plan_json: tuple[Status, str] | None = None  # GetPlan's answer for a status
        self._operation: str | None = None  # the change in progress, for Busy
        self.stopping = False  # the service is stopping: no new change is taken on
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="pmemd-op")
        # Reading the machine (sysfs, /boot, the config) and checking a document happen in
        # threads of their own: a slow file or a large document never holds the event loop,
        # which keeps answering property reads from the last reading.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="pmemd-read")
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="pmemd-check")
        self._readings = Coalesced(self._reading)
        self._reloads = Coalesced(self._reload, spacing=RELOAD_SPACING)
        self._force = False  # the next reading reads even if no watched file changed

    @property
    def config_file(self) -> Path:
        return self.config_path if self.config_path is not None else self.machine.config

    # --- reading --------------------------------------------------------------------

    def poke(self, *, force: bool = False, delay: float = 0.0) -> None:
        """Something may have changed (a call arrived, the mount table moved): read again
        if a watched file changed (``force``: in any case), in the background; ``delay``
        gathers a burst of pokes into one reading."""
        self._force |= force
        if delay > 0:
            self._readings.soon(delay)
        else:
            self._readings.request()

    def freshness(self) -> Freshness:
        """(on the loop: a few stat calls) Whether the last reading still holds: BUSY while
        a reading or a change is under way (it publishes what it finds), STALE when a
        watched file changed since the last reading, else FRESH."""
        if self._operation is not None or self._readings.running:
            return Freshness.BUSY
        return Freshness.STALE if _stamp(self._watched) != self._stamp else Freshness.FRESH

    async def fresh(self, *, force: bool = False) -> Status:
        """The status as of now: after a reading that started after this call (shared with
        every other call that arrives meanwhile)."""
        self._force |= force
        return await self._readings.request()

    async def _reading(self) -> Status:
        force, self._force = self._force, False
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(self._reader, self._read, force)
        if status is not None:
            self.status = status
            self.on_change(status)
        assert self.status is not None
        return self.status

    def _read(self, force: bool) -> Status | None:
        """(reader thread) A new reading; ``None`` when nothing it depends on changed."""
        stamp = _stamp(self._watched)
        last = self.status
        if not force and last is not None and stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            status = read_status(self.machine, self.config_path, last)
        except Exception as err:  # a bug: shown as a state, with the traceback in the log
            log.exception("reading the machine failed")
            status = unreadable_status(f"internal error reading the machine: {err}",
                                       last, self.config_file)
        if status.machine_error is not None and (
                last is None or last.machine_error != status.machine_error):
            log.warning("cannot read the machine: %s", status.machine_error)
        return status

    async def reload(self) -> None:
        """Read everything again, and write the generator's cache (the next boot's
        generator replays it). Reloads asked for while one runs share the next one, and
        they start at most once per :data:`RELOAD_SPACING` seconds."""
        result, why = await self._reloads.request()
        if result is CacheResult.FAILED:
            raise MachineError(f"cannot write the generator's cache: {why}")

    async def _reload(self) -> tuple[CacheResult, str]:
        await self.fresh(force=True)
        loop = asyncio.get_running_loop()
        result, why = await loop.run_in_executor(self._reader, refresh_generator_cache,
                                                 self.machine)
        log.info("reloaded: read the machine again; generator cache %s%s", result.value,
                 f" ({why})" if why else "")
        return result, why

    @staticmethod
    def facts_of(status: Status) -> MachineFacts:
        if status.facts is None:
            raise MachineError(status.machine_error or "the machine could not be read")
        return status.facts

    async def memory_map(self) -> list[list[list[object]]]:
        memory = self.facts_of(await self.fresh()).memory
        return [map_entries(memory.firmware), map_entries(memory.edited)]

    async def plan_json(self) -> str:
        """The document ``pmemd plan --json`` prints (made once per reading)."""
        status = await self.fresh()
        if status.plan is None:
            if status.config is None:
                raise ConfigError(status.problems)
            raise MachineError(status.machine_error or "the machine could not be read")
        if self._plan_json is None or self._plan_json[0] is not status:
            text = await asyncio.get_running_loop().run_in_executor(
                self._reader, self._plan_document, status)
            self._plan_json = (status, text)
        return self._plan_json[1]

    def _plan_document(self, status: Status) -> str:
        """(reader thread: it may ask the bootloader, grub-probe) ``pmemd plan --json``."""
        result, boot, config = status.plan, status.boot, status.config
        assert result is not None and boot is not None and config is not None
        return self._document(result, boot, config)

    def _document(self, result: Plan, boot: BootView, config: Config) -> str:
        """(reader thread) The ``pmemd plan --json`` document of ``result``."""
        trial = outlook(self.machine, result, boot.detection.backend, config.boot.trial)
        return dump_json({**plan_with_boot_document(result, boot), "trial": trial.document()})

    async def plan_config(self, yaml: str) -> str:
        """``GetPlan``'s document as it would be if ``yaml`` were the config file, on the
        current reading of the machine; nothing is written. The text is checked as
        ``validate`` checks it (in the checker thread), and fails as it fails."""
        status = await self.fresh()
        loop = asyncio.get_running_loop()
        config, checked = await loop.run_in_executor(self._checker, checked_config, yaml,
                                                      status)
        return await loop.run_in_executor(self._reader, self._candidate_document, status,
                                          config, checked)

    def _candidate_document(self, status: Status, config: Config, checked: Plan | None
                            ) -> str:
        """(reader thread: it may ask the bootloader, grub-probe) ``pmemd plan --json``
        with ``config`` in place of the config file: judged against the next boot of the
        bootloader ``config`` names (the reading's, when it names the same: then
        ``checked``, the checker's plan, is that plan already)."""
        facts = self.facts_of(status)
        boot = reading_boot(config, status)
        if boot is not None and checked is not None:
            return self._document(checked, boot, config)
        boot = read_boot_view(self.machine, config)
        result = plan_next_boot(config, facts, boot)
        if result.problems:
            raise ConfigError(result.problems)
        return self._document(result, boot, config)

    async def validate(self, yaml: str) -> list[WarningRow]:
        """Like ``pmemd validate``: the text must parse and the plan must have no problem;
        when the machine cannot be read, only the text is checked, and that is said. The
        checking runs in a thread of its own: a large document takes its time there."""
        status = await self.fresh()
        return await asyncio.get_running_loop().run_in_executor(
            self._checker, check_document, yaml, status)

    # --- changing -------------------------------------------------------------------

    @property
    def operation(self) -> str | None:
        """The change in progress (what, and for whom), if any."""
        return self._operation

    async def exclusive(self, what: str, caller: Caller, work: Callable[[], T]) -> T:
        """Run ``work`` in the worker thread; one change at a time, never queued silently."""
        if self._operation is not None:
            raise Busy(f"{self._operation} is in progress; try again when it finishes")
        if self.stopping:
            raise Busy("the pmemd service is stopping; try again (a new one starts)")
        self._operation = f"{what} (requested by {caller.sender})"
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, work)
        finally:
            self._operation = None
            # The caller's reply follows the reading that shows what changed (read in the
            # reader thread; others' property reads are answered meanwhile).
            await self.fresh(force=True)

    def _locked(self, what: str, caller: Caller) -> AbstractContextManager[None]:
        """pmemd's change lock (shared with ``pmemd reconcile``, make-filesystem …); held
        elsewhere, the caller gets Busy naming the holder at once, rather than a call that
        hangs."""
        return change_lock(self.machine, f"{what} (requested by {caller.sender})", wait=0)

    def _replace_config(self, yaml: str, caller: Caller) -> None:
        shown = str(self.config_file)
        config = parse_config(yaml, shown).require()
        with self._locked("SetConfig", caller):
            self._write_config(yaml, config, caller)

    def _write_config(self, yaml: str, config: Config, caller: Caller) -> None:
        shown = str(self.config_file)
        result = plan(config, read_facts(self.machine))
        if result.problems:
            raise ConfigError(result.problems)
        sweep_temporaries([self.config_file.parent])  # a killed SetConfig's, if any
        transaction = Transaction()
        transaction.write(self.config_file, yaml, mode=0o644)
        refresh_generator_cache(self.machine)  # before the reload that runs the generator
        try:
            self.systemd.daemon_reload()
        except PmemdError:
            transaction.rollback()
            raise
        log.info("%s: replaced for %s (%d regions)", shown, caller.sender, len(config.regions))

    async def set_config(self, yaml: str, *, apply: bool, caller: Caller) -> str:
        """Validate ``yaml`` like ``pmemd validate``, then replace the config atomically
        (the old one kept as ``pmemd.yaml.pmemd-bak``) and let systemd re-run the
        generator; on any failure the old file is back and nothing else changed."""
        await self.exclusive("SetConfig", caller,
                              functools.partial(self._replace_config, yaml, caller))
        if apply:
            try:
                await self.apply(dry_run=False, caller=caller)
            except PmemdError as err:
                raise ApplyAfterSetConfigFailed(
                    f"{self.config_file} was replaced, but applying it failed: {err}",
                    err) from None
        return overall_state(await self.fresh()).value

    def _reconcile(self, dry_run: bool, caller: Caller) -> tuple[str, list[str]]:
        if dry_run:  # writes nothing: needs no lock
            outcome = reconcile(self.machine, Runner(dry_run=True),
                                config_path=self.config_path, dry_run=True)
            return outcome.state.value, render_reconcile_text(outcome).splitlines()
        with self._locked("Apply", caller):
            outcome = reconcile(self.machine, Runner(), config_path=self.config_path)
            remove_stamp(self.machine)  # the boot-time reconcile checks everything again
        return outcome.state.value, render_reconcile_text(outcome).splitlines()

    def _retry_trial(self, caller: Caller) -> tuple[str, list[str]]:
        with self._locked("RetryTrial", caller):
            retry_trial(self.machine)
        return self._reconcile(False, caller)  # arms it again (under its own lock)

    async def retry_trial(self, *, caller: Caller) -> tuple[str, list[str]]:
        """Forget a failed trial and apply again (which arms it again)."""
        return await self.exclusive("RetryTrial", caller,
                                    functools.partial(self._retry_trial, caller))

    def _abort_trial(self, caller: Caller) -> str:
        with self._locked("AbortTrial", caller):
            return abort_trial(self.machine, Runner(), self.config_path).trial.state.value

    async def abort_trial(self, *, caller: Caller) -> str:
        """Disarm the armed trial; the Trial property's new value."""
        return await self.exclusive("AbortTrial", caller,
                                    functools.partial(self._abort_trial, caller))

    async def apply(self, *, dry_run: bool, caller: Caller) -> tuple[str, list[str]]:
        """``pmemd reconcile [--dry-run]``: the same function, the same report."""
        work = functools.partial(self._reconcile, dry_run, caller)
        if dry_run:  # changes nothing: not exclusive, but still off the bus's thread
            return await asyncio.get_running_loop().run_in_executor(None, work)
        return await self.exclusive("Apply", caller, work)

    async def _region(self, name: str) -> tuple[Status, Config, PlacedRegion]:
        status = await self.fresh()
        placed = next((p for p in status.plan.regions if p.region.name == name), None) \
            if status.plan is not None else None
        if status.config is None or placed is None:
            known = [r.name for r in status.config.regions] if status.config else []
            raise NoSuchRegion(name, known, status.config_path)
        return status, status.config, placed

    async def mount(self, name: str, *, mount: bool, caller: Caller) -> None:
        """Start or stop the region's mount unit (the generator wrote it from the config)."""
        _status, _config, placed = await self._region(name)
        if placed.region.filesystem is None:
            raise NoFilesystem(name)
        unit = region_unit_names(placed.region, placed.range, TARGET).mount
        work = functools.partial(self.systemd.start if mount else self.systemd.stop, unit)
        await self.exclusive("Mount" if mount else "Unmount", caller, work)

    async def format(self, name: str, *, force: bool, caller: Caller) -> None:
        """A fresh filesystem on the region's device, by the function the make-filesystem
        unit runs (device proven by address, size and number; never in use), with the
        region forced to ``on-boot: recreate``. Mounted: refused unless ``force``, which
        stops the mount unit first and starts it again after."""
        status, config, placed = await self._region(name)
        fs = placed.region.filesystem
        if fs is None:
            raise NoFilesystem(name)
        found = {d.region: d for d in status.plan.devices}.get(name) if status.plan else None
        mounted = found is not None and found.mount is not None
        if mounted and not force:
            raise Busy(f"region {name!r} is mounted at {fs.mountpoint}; unmount it first, or "
                       "format with force (it is unmounted and mounted again)")
        recreate = replace(config, regions=tuple(
            replace(r, filesystem=replace(fs, on_boot=OnBoot.RECREATE))
            if r.name == name else r for r in config.regions))
        unit = region_unit_names(placed.region, placed.range, TARGET).mount if mounted else None
        await self.exclusive("Format", caller, functools.partial(
            self._format, recreate, name, unit, caller))

    def _format(self, config: Config, name: str, mount_unit: str | None,
                caller: Caller) -> None:
        if mount_unit is not None:
            self.systemd.stop(mount_unit)
        try:
            # Only the filesystem is made under the lock: starting the mount unit below may
            # run the region's make-filesystem unit, which takes the lock itself.
            with self._locked("Format", caller):
                remove_durably(self.machine.filesystems_made / name)  # not "made this boot"
                outcome = make_region_filesystem(self.machine, config, name, Runner())
        except BaseException:
            if mount_unit is not None:  # formatting failed: the region goes back as it was
                self._remount(mount_unit)
            raise
        if outcome.journaled:  # what was made is in the journal's event; here, for whom
            log.info("Format of region %s: done for %s", name, caller.sender)
        else:
            log.info("%s (for %s)", outcome.message(), caller.sender)
        for warning in outcome.warnings:
            log.warning("%s", warning)
        if mount_unit is not None:
            self.systemd.start(mount_unit)

    def _remount(self, unit: str) -> None:
        try:
            self.systemd.start(unit)
        except PmemdError as err:  # the failure being reported matters more; say this too
            log.error("after a failed Format, %s could not be started again: %s", unit, err)

    def close(self) -> None:
        """Wait for the change in progress, then release the worker and the readers."""
        self._readings.cancel()
        self._worker.shutdown(wait=True)
        self._checker.shutdown(wait=False, cancel_futures=True)
        self._reader.shutdown(wait=False, cancel_futures=True)
