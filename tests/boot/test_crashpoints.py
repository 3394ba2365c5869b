"""pmemd killed (SIGKILL) at every rename, write, fsync and unlink of a change, and failed
with ENOSPC or EIO at every write, fsync and rename — for each backend's test root (the
real update-grub in a Debian root; the grubby and grub2-mkconfig stand-ins; kernel-install's
files) and for ``reconcile --remove-all``. See tests/boot/crashpoints.py for the sweep.

The change: config A (one 4 GiB region) is applied; then the config says B (that region
resized to 2 GiB, and a second one). After every fault:

* the default entry's command line is exactly A's or exactly B's — never a mixture, never
  unreadable (what the machine would boot);
* the admin's original files (``*.pmemd-orig``) are untouched;
* an I/O error fails with exit status 1, a message naming the error, and — if the boot
  configuration is still A's — every bootloader file and pmemd's state byte for byte as
  they were;
* after a kill, the next ``pmemd reconcile`` converges: B's command line, state.json
  owning exactly the options the default entry carries, no temporary files left, and a
  dry run finds nothing more to change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmemd.boot.detect import detect
from pmemd.boot.reconcile import reconcile
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import (
    BACKUPS,
    config_text,
    installed_debian,
    snapshot,
    with_facts,
    with_standins,
    write_config,
)
from tests.boot.crashpoints import MAX_POINTS, Fault, Injected, Pristine, Sweep, sweep
from tests.boot.debianroot import DebianRoot
from tests.conftest import REPO, run_pmemd
from tests.reliability import Figure
from tests.service.harness import (
    PrivateBus,
    Running,
    call,
    start_service,
    world_readable_dir,
)

Tree = Callable[..., Path]
REGIONS_A = (("data", "4G", "12G"),)
REGIONS_B = (("data", "2G", "12G"), ("cache", "2G", "10G"))
KILLS = tuple(Fault(call, "signal=SIGKILL") for call in ("rename", "write", "fsync", "unlink"))
ERRORS = (Fault("write", "error=ENOSPC"), Fault("write", "error=EIO"),
          Fault("fsync", "error=EIO"), Fault("rename", "error=EIO"))
STRERROR = {"error=ENOSPC": "No space left on device", "error=EIO": "Input/output error"}
FAILURE = 1  # pmemd.cli.exits.Exit.FAILURE
WORKERS = 2  # roots swept at once (each its own copy; the machine has 2 cores)
PMEMD_TRACEBACK = f'File "{REPO / "pmemd"}'  # (a tool's own traceback is its output)


def default_args(root: Path) -> tuple[str, ...] | None:
    """The command line the machine would boot with next, as pmemd's backend reads it
    from the bootloader's files; None if there is no readable default entry."""
    next_boot = detect(Machine(root)).require().read_next_boot()
    if next_boot.cmdline is None:
        return None
    return tuple(arg.text for arg in next_boot.cmdline.args)


def pmemd_kind(args: Sequence[str]) -> set[str]:
    return {a for a in args if a.startswith("memmap=") or a == "nokaslr"}


def files(root: Path, parts: Sequence[str]) -> dict[str, bytes]:
    """Every file under the ``parts`` of ``root`` (paths relative to the root)."""
    found = {}
    for part in parts:
        path = root / part
        if path.is_file():
            found[part] = path.read_bytes()
        elif path.is_dir():
            found.update({f"{part}/{name}": content
                          for name, content in snapshot(path).items()})
    return found


def lasting(found: dict[str, bytes]) -> dict[str, bytes]:
    """The files a change must leave exactly as they were when it fails: the bootloader's
    and pmemd's state (not the backups, the lock, the generator cache: derived)."""
    return {name: content for name, content in found.items()
            if (name.startswith(("boot/", "etc/")) and not name.endswith(BACKUPS)
                and not _dotfile(name)) or name == "var/lib/pmemd/state.json"}


ORIGINAL = ".pmemd-orig"  # beside a file pmemd changes: the file before its first change


def originals(found: dict[str, bytes]) -> dict[str, bytes]:
    return {name: content for name, content in found.items() if name.endswith(ORIGINAL)}


def temporaries(found: dict[str, bytes]) -> list[str]:
    return [name for name in found if _dotfile(name) and name.endswith(".tmp")]


def _dotfile(name: str) -> bool:
    return name.rpartition("/")[2].startswith(".")


@dataclass
class Change:
    """A root with config A applied and B written, and what A's and B's boots look like."""

    root: Path
    argv: tuple[str, ...]  # the run being faulted
    recover: tuple[str, ...]  # the run an admin (or the next boot) makes afterwards
    old: tuple[str, ...]
    new: tuple[str, ...]
    parts: tuple[str, ...]  # where a run may write (all Pristine puts back)
    lasting: dict[str, bytes]
    originals: dict[str, bytes]
    removing: bool = False

    def files(self) -> dict[str, bytes]:
        return files(self.root, self.parts)

    def consistent(self) -> str | None:
        """After a successful run: B's command line, state owning what it carries, no
        temporaries, nothing more to change."""
        args = default_args(self.root)
        if args != self.new:
            return f"the default entry carries {args}, not {self.new}"
        state_file = Machine(self.root).state_file
        owned = set(json.loads(state_file.read_text())["owned"]) if state_file.exists() \
            else set()
        if owned != pmemd_kind(args):
            return f"state.json owns {sorted(owned)}, the entry carries {sorted(pmemd_kind(args))}"
        if left := temporaries(self.files()):
            return f"temporary files left: {left}"
        if not self.removing:
            dry = reconcile(Machine(self.root), Runner(), dry_run=True)
            if not dry.write.empty:
                return f"a dry run still wants to change {dry.edit}"
        return None

    def boot_is_old_or_new(self) -> str | None:
        try:
            args = default_args(self.root)
        except Exception as err:  # any failure to read is what this looks for
            return f"the boot configuration cannot be read: {err}"
        if args not in (self.old, self.new):
            return f"the default entry carries a mixture: {args}"
        now = originals(self.files())
        # a file first changed by this run gets its original (itself as it was): no other
        changed = [name for name in sorted(set(now) | set(self.originals))
                   if now.get(name) != self.originals.get(name) and (
                       name in self.originals
                       or now[name] != self.lasting.get(name.removesuffix(ORIGINAL)))]
        if changed:
            return f"the admin's originals changed: {changed}"
        return None

    def after_kill(self, injected: Injected) -> str | None:
        if problem := self.boot_is_old_or_new():
            return problem
        again = run_pmemd(*self.recover)
        if again.returncode not in (0, 5) or PMEMD_TRACEBACK in again.stderr:
            return f"the next run exits {again.returncode}: {again.stderr.strip()[-300:]}"
        return self.consistent()

    def after_error(self, fault: Fault, injected: Injected) -> str | None:
        if problem := self.boot_is_old_or_new():
            return problem
        if PMEMD_TRACEBACK in injected.stderr:
            return f"a traceback: {injected.stderr.strip()[-600:]}"
        if injected.returncode in (0, 5):  # a call whose failure pmemd survives, and says so
            if STRERROR[fault.action] not in injected.stderr:
                return f"exit {injected.returncode} without a word: {injected.stderr!r}"
            return self.consistent()
        if injected.returncode != FAILURE:
            return f"exit status {injected.returncode}, not {FAILURE}"
        if STRERROR[fault.action] not in injected.stderr and not (
                "failed with exit status" in injected.stderr
                and "pmemd put the previous bootloader files back" in injected.stderr):
            # (a tool that failed speaks for itself: its output is shown)
            return f"the message does not name the error: {injected.stderr.strip()!r}"
        now = lasting(self.files())
        if default_args(self.root) == self.old and now != self.lasting:
            changed = sorted(k for k in set(now) | set(self.lasting)
                             if now.get(k) != self.lasting.get(k))
            return f"failed, but files changed: {changed}"
        again = run_pmemd(*self.recover)
        if again.returncode not in (0, 5):
            return f"the next run exits {again.returncode}: {again.stderr.strip()[-300:]}"
        return self.consistent()


def prepare(root: Path, work: Path, parts: Sequence[str], *, bootloader: str = "auto",
            removing: bool = False) -> tuple[Change, Pristine]:
    """Apply A (and for a removal B too), write B; learn the new command line from a clean
    run; put the root back."""
    write_config(root, config_text(*REGIONS_A, bootloader=bootloader))
    first = run_pmemd("reconcile", "--root", str(root))
    assert first.returncode in (0, 5), first.stderr
    write_config(root, config_text(*REGIONS_B, bootloader=bootloader))
    if removing:
        assert run_pmemd("reconcile", "--root", str(root)).returncode in (0, 5)
    old = default_args(root)
    assert old is not None
    work.mkdir(parents=True)
    pristine = Pristine(root, parts, work / "pristine")
    argv = ("reconcile", "--root", str(root), *(("--remove-all",) if removing else ()))
    clean = run_pmemd(*argv)
    assert clean.returncode in (0, 5), clean.stderr
    new = default_args(root)
    assert new is not None and new != old
    pristine.restore()
    found = files(root, parts)
    return Change(root, argv, argv, old, new, tuple(parts), lasting(found), originals(found),
                  removing), pristine


def sweeps_of(change: Change, pristine: Pristine, work: Path, faults: Sequence[Fault]
              ) -> list[Sweep]:
    done = []
    for fault in faults:
        after = change.after_kill if fault.killing else (
            lambda injected, fault=fault: change.after_error(fault, injected))
        done.append(sweep(fault, change.argv, pristine, work, contextlib.nullcontext, after))
    pristine.restore()
    return done


def report(sweeps: Sequence[Sweep], reliability: Callable[[Figure], None], subject: str
           ) -> None:
    failures = [failure for s in sweeps for failure in s.failures]
    assert not failures, "\n".join(failures)
    for s in sweeps:
        assert s.points > 0, f"{s.fault}: pmemd never made such a call"
    kills = [s for s in sweeps if s.fault.killing]
    errors = [s for s in sweeps if not s.fault.killing]
    reliability(Figure("crash points", subject, sum(s.points for s in kills), "kill points",
                       note="SIGKILL at every " + ", ".join(_calls(kills))))
    reliability(Figure("I/O faults", subject, sum(s.points for s in errors), "faults",
                       note=", ".join(f"{s.fault.action.partition('=')[2]} at every "
                                      f"{s.fault.syscall}" for s in errors)))


def _calls(sweeps: Sequence[Sweep]) -> list[str]:
    return [s.fault.syscall + ("" if s.fault.follow else " (pmemd's)") for s in sweeps]


# --- the stand-in roots and kernel-install's files ----------------------------------------

TREE_PARTS = ("boot", "etc", "var", "run")

@pytest.mark.parametrize(("name", "distro", "tools", "bootloader", "removing"), [
    ("grubby", "fedora39", ("grubby",), "auto", False),
    ("grub2-mkconfig", "sle15", ("grub2-mkconfig",), "grub2-mkconfig", False),
    ("kernel-install", "debian12-systemd-boot", (), "auto", False),
    ("kernel-install", "debian12-systemd-boot", (), "auto", True),
])
def test_every_crash_point_and_io_error_leaves_the_old_or_the_new_boot(
        tree: Tree, tmp_path: Path, reliability: Callable[[Figure], None], name: str,
        distro: str, tools: tuple[str, ...], bootloader: str, removing: bool) -> None:
    faults = (*KILLS, *ERRORS)
    roots = [tree(distro) for _ in range(WORKERS)]

    def worker(index: int) -> list[Sweep]:
        """Every WORKERS-th kind of fault, on a root of its own."""
        with with_standins(roots[index], *tools) as root:
            change, pristine = prepare(root, tmp_path / f"work{index}", TREE_PARTS,
                                       bootloader=bootloader, removing=removing)
            return sweeps_of(change, pristine, tmp_path / f"work{index}",
                             faults[index::WORKERS])

    with ThreadPoolExecutor(WORKERS) as pool:
        sweeps = [s for done in pool.map(worker, range(WORKERS)) for s in done]
    report(sweeps, reliability, f"reconcile{' --remove-all' if removing else ''}, {name}")


# --- the real update-grub in a Debian root --------------------------------------------------

DEBIAN_PARTS = ("etc/default", "etc/pmemd.yaml", "etc/kernel", "boot/grub", "var/lib/pmemd",
                "run/pmemd")


def test_every_crash_point_and_io_error_with_the_real_update_grub(
        debian: tuple[DebianRoot, Path], tmp_path: Path,
        reliability: Callable[[Figure], None]) -> None:
    """update-grub's own processes write grub.cfg with hundreds of write() calls each: the
    write sweeps hit pmemd only; renames, fsyncs and unlinks hit update-grub's too. Two
    Debian roots (the module's and one more) share the faults."""
    faults = [Fault(f.syscall, f.action, follow=f.syscall != "write") for f in
              (*KILLS, *ERRORS)]

    def worker(index: int) -> list[Sweep]:
        with contextlib.ExitStack() as stack:
            (tmp_path / "second").mkdir(exist_ok=True)
            root = debian[0] if index == 0 else stack.enter_context(with_facts(
                stack.enter_context(installed_debian(tmp_path / "second")),
                tmp_path / "second-facts"))[0]
            work = tmp_path / f"work{index}"
            change, pristine = prepare(root.root, work, DEBIAN_PARTS)
            return sweeps_of(change, pristine, work, faults[index::WORKERS])

    with ThreadPoolExecutor(WORKERS) as pool:
        sweeps = [s for done in pool.map(worker, range(WORKERS)) for s in done]
    report(sweeps, reliability, "reconcile, update-grub (real, Debian 12 root)")


# --- a read-only /boot ------------------------------------------------------------------------

@pytest.mark.parametrize(("distro", "tools", "bootloader"), [
    ("fedora39", ("grubby",), "auto"),
    ("sle15", ("grub2-mkconfig",), "grub2-mkconfig"),
    ("debian12-systemd-boot", (), "auto"),
])
def test_a_read_only_boot_fails_cleanly_and_changes_nothing(
        tree: Tree, tmp_path: Path, distro: str, tools: tuple[str, ...], bootloader: str
        ) -> None:
    """/boot mounted read-only (a real read-only bind mount): the change fails with exit 1
    and a message naming a file under /boot and the error; every bootloader file and
    pmemd's state stay as they were, and once /boot is writable the next run converges."""
    with with_standins(tree(distro), *tools) as root:
        change, pristine = prepare(root, tmp_path / "work", TREE_PARTS, bootloader=bootloader)
        boot = root / "boot"
        subprocess.run(["mount", "--bind", str(boot), str(boot)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(boot)], check=True)
            done = run_pmemd(*change.argv)
        finally:
            subprocess.run(["umount", str(boot)], check=True)
        assert done.returncode == FAILURE, done.stdout + done.stderr
        assert f"{boot}/" in done.stderr and "Read-only file system" in done.stderr
        assert ".tmp:" not in done.stderr  # the file pmemd meant to write, not its temporary
        assert PMEMD_TRACEBACK not in done.stderr
        assert lasting(change.files()) == change.lasting
        assert default_args(root) == change.old
        again = run_pmemd(*change.recover)
        assert again.returncode in (0, 5), again.stderr
        assert change.consistent() is None
        pristine.restore()


# --- SetConfig through the D-Bus service ----------------------------------------------------

SERVICE_KILLS = KILLS  # rename, write, fsync, unlink: of every thread of the service


@contextlib.contextmanager
def traced_service(bus: PrivateBus, root: Path, fault: Fault, point: int, log: Path
                   ) -> Iterator[tuple[Running, subprocess.Popen[bytes]]]:
    """``pmemd serve`` on ``root``, with strace attached to every thread of it (and
    following the threads and tools it starts) from now on, injecting ``fault`` at each
    thread's ``point``-th call."""
    with serving_unchecked(bus, root) as running:
        strace = subprocess.Popen(
            ["strace", "-qq", "-f", "-o", str(log), "-e", f"trace={fault.syscall}",
             "-e", f"inject={fault.syscall}:{fault.action}:when={point}",
             "-p", str(running.process.pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            wait_traced(running.process.pid, strace)
            yield running, strace
        finally:
            if strace.poll() is None:
                running.stop()
            strace.wait(timeout=60)


def wait_traced(pid: int, strace: subprocess.Popen[bytes]) -> None:
    """Until every thread of ``pid`` has a tracer (strace has attached)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert strace.poll() is None, strace.stderr.read() if strace.stderr else ""
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        if all(_tracer(task) != 0 for task in tasks):
            return
        time.sleep(0.02)
    raise TimeoutError(f"strace did not attach to {pid}")


def _tracer(task: Path) -> int:
    for line in (task / "status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def serving_unchecked(bus: PrivateBus, root: Path) -> Iterator[Running]:
    running = start_service(bus, root)
    try:
        yield running
    finally:
        running.stop()


def test_every_crash_point_of_set_config_through_the_service(
        tree: Tree, tmp_path: Path, reliability: Callable[[Figure], None]) -> None:
    """``SetConfig(B, apply=true)`` by root over D-Bus while the service is killed at each
    of its threads' Nth rename, write, fsync and unlink. After each kill: /etc/pmemd.yaml is
    exactly A or exactly B, the default entry exactly A's or B's boot; the next
    ``pmemd reconcile`` (the next boot's) converges on the config in place, with state.json
    owning what the entry carries and no temporary files left anywhere pmemd writes."""
    root = tree("debian12-systemd-boot")
    work = tmp_path / "work"
    change, _ = prepare(root, work, TREE_PARTS)
    text_a = config_text(*REGIONS_A)
    text_b = config_text(*REGIONS_B)
    write_config(root, text_a)
    pristine = Pristine(root, TREE_PARTS, work / "pristine-a")
    config = root / "etc/pmemd.yaml"
    directory = world_readable_dir("pmemd-crash-")
    bus = PrivateBus(directory).start()
    sweeps = []
    try:
        for fault in SERVICE_KILLS:
            result = Sweep(fault)
            for point in range(1, MAX_POINTS + 1):
                pristine.restore()
                log = work / "strace.log"
                with traced_service(bus, root, fault, point, log) as (running, _):
                    reply = call(bus.address, "/io/pmemd1", "io.pmemd1.Manager",
                                 "SetConfig", "sb", [text_b, True])
                    killed = running.process.poll() is not None or (
                        reply.error is not None and running.process.wait(timeout=60) != 0)
                hits = log.read_text(errors="replace").count("+++ killed by SIGKILL +++")
                if not hits:
                    assert not killed and reply.error is None, reply
                    assert config.read_text() == text_b
                    assert change.consistent() is None
                    break
                result.points += 1
                result.hits += hits
                result.check(point, after_set_config_kill(change, config, text_a, text_b))
            else:
                raise AssertionError(f"{fault}: more than {MAX_POINTS} calls, a runaway")
            sweeps.append(result)
    finally:
        bus.stop()
        shutil.rmtree(directory, ignore_errors=True)
    failures = [failure for s in sweeps for failure in s.failures]
    assert not failures, "\n".join(failures)
    reliability(Figure("crash points", "D-Bus SetConfig with apply, kernel-install",
                       sum(s.points for s in sweeps), "kill points",
                       note="SIGKILL at every " + ", ".join(_calls(sweeps))
                            + " of any of the service's threads"))


def after_set_config_kill(change: Change, config: Path, text_a: str, text_b: str
                          ) -> str | None:
    if (text := config.read_text()) not in (text_a, text_b):
        return f"/etc/pmemd.yaml is neither A nor B: {text[:200]!r}"
    # The admin's original config is kept once, when it is first replaced: it may appear.
    kept = config.with_name(config.name + ".pmemd-orig")
    if kept.exists() and kept.read_text() != text_a:
        return f"{kept.name} is not the admin's config: {kept.read_text()[:200]!r}"
    with_kept = dict(change.originals)
    if kept.exists():
        with_kept[str(kept.relative_to(change.root))] = kept.read_bytes()
    if problem := dataclasses.replace(change, originals=with_kept).boot_is_old_or_new():
        return problem
    again = run_pmemd("reconcile", "--root", str(change.root))
    if again.returncode not in (0, 5) or PMEMD_TRACEBACK in again.stderr:
        return f"the next reconcile exits {again.returncode}: {again.stderr.strip()[-300:]}"
    expected = change.new if text == text_b else change.old
    return dataclasses.replace(change, new=expected).consistent()
