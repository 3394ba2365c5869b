"""Unified kernel images (type #2 entries, ``$BOOT/EFI/Linux/*.efi``) with the
kernel-install backend.

The images are real PE images: Debian 12's systemd-stub (systemd-boot-efi) with the
sections added by binutils' objcopy, signed with sbsign where a test needs a vendor's
signature. Two cases:

* a vendor's image (not built here, usually signed) that is the next boot: pmemd refuses,
  says why and what the admin can do, and writes nothing;
* images built here (kernel-install's ``layout=uki`` and a builder plugin): pmemd writes
  /etc/kernel/cmdline and rebuilds each image with ``kernel-install add``. That runs in the
  real Debian 12 root with its real kernel-install (252) and, because Debian 12 ships no
  plugin that builds a UKI, stand-ins for systemd 254's 60-ukify.install and
  90-uki-copy.install (tests/boot/standins) that build with the real stub and objcopy.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.boot.backends.uki import NotAnImage, Uki, find_ukis, local_build, read_uki
from pmemd.boot.detect import detect
from pmemd.boot.pe import HEADER_BYTES, NotPE, parse_pe
from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.model import BootloaderChoice
from pmemd.errors import BootConfigError, MachineError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import (
    BACKUPS,
    STANDINS,
    assert_same_files,
    config_text,
    snapshot,
    write_config,
)
from tests.boot.debianroot import MACHINE_ID, DebianRoot, run
from tests.conftest import run_pmemd

Tree = Callable[..., Path]
STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
ESP = "boot/efi"
IMAGES = f"{ESP}/EFI/Linux"
RELEASES = ("6.1.0-26-amd64", "6.1.0-27-amd64")
BASE = "root=UUID=0e6a4f7c-1111-4c1e-9e0b-2f3a4b5c6d7e ro quiet"
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
BUILDERS = ("60-ukify.install", "90-uki-copy.install")


def build_uki(target: Path, cmdline: str, release: str | None, *, work: Path,
              key: tuple[Path, Path] | None = None) -> Path:
    """A real UKI: the stub with .osrel, .cmdline, (.uname), .linux and .initrd; signed
    with ``key`` (key, certificate) by sbsign."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "cmdline").write_text(cmdline + "\n")
    (work / "osrel").write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 '
                                '(bookworm)"\nID=debian\nVERSION_ID="12"\n')
    (work / "linux").write_bytes(b"\x4d\x5a" + bytes(4094))  # not booted: a kernel's size
    (work / "initrd").write_bytes(bytes(2048))
    sections = [("osrel", 0x20000), ("cmdline", 0x30000)]
    if release is not None:
        (work / "uname").write_text(release)
        sections.append(("uname", 0x40000))
    sections += [("linux", 0x2000000), ("initrd", 0x3000000)]
    argv: list[str] = ["objcopy"]
    for name, address in sections:
        argv += ["--add-section", f".{name}={work / name}",
                 "--change-section-vma", f".{name}={address:#x}"]
    target.parent.mkdir(parents=True, exist_ok=True)
    unsigned = work / "unsigned.efi"
    subprocess.run([*argv, str(STUB), str(unsigned)], check=True, capture_output=True)
    if key is None:
        shutil.move(unsigned, target)
    else:
        subprocess.run(["sbsign", "--key", str(key[0]), "--cert", str(key[1]), "--output",
                        str(target), str(unsigned)], check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def vendor_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Secure Boot signing key of a 'vendor' (self-signed, made by openssl)."""
    where = tmp_path_factory.mktemp("key")
    key, cert = where / "db.key", where / "db.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=pmemd test vendor/", "-days", "2", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return key, cert


def uki_machine(tree: Tree, tmp_path: Path, *, key: tuple[Path, Path] | None = None,
                config: str | None = None, releases: tuple[str, ...] = RELEASES) -> Path:
    """The 16 GiB example machine booting a vendor's images through systemd-boot: its ESP
    at /boot/efi with loader.conf and one image per kernel, and no type #1 entries."""
    root = tree(None, config=config)
    (root / ESP / "loader").mkdir(parents=True)
    (root / ESP / "loader/loader.conf").write_text("timeout 3\n")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/machine-id").write_text(MACHINE_ID + "\n")
    for release in releases:
        build_uki(root / IMAGES / f"debian-{release}.efi", BASE, release,
                  work=tmp_path / f"build-{release}", key=key)
        (root / "boot" / f"vmlinuz-{release}").write_bytes(b"")
    return root


def boot_files(root: Path, files: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Everything but pmemd's own records (its state and the generator's cache)."""
    return {k: v for k, v in (snapshot(root) if files is None else files).items()
            if not k.startswith(("var/lib/pmemd", "run/"))}


def images(root: Path) -> dict[str, Uki]:
    return {u.path.name: u for u in find_ukis(Machine(root), root / ESP)}


# --- the image: sections and signature --------------------------------------------------------


def test_an_image_says_its_command_line_release_title_and_signature(
        tmp_path: Path, vendor_key: tuple[Path, Path]) -> None:
    plain = build_uki(tmp_path / "plain.efi", f"{BASE} {M1}", "6.1.0-27-amd64",
                      work=tmp_path / "a")
    signed = build_uki(tmp_path / "signed.efi", BASE, None, work=tmp_path / "b",
                       key=vendor_key)
    first = read_uki(plain, "/plain.efi", MACHINE_ID)
    assert (first.cmdline, first.version, first.title, first.signed) == (
        f"{BASE} {M1}", "6.1.0-27-amd64", "Debian GNU/Linux 12 (bookworm)", False)
    second = read_uki(signed, "/signed.efi", MACHINE_ID)
    assert (second.cmdline, second.version, second.signed) == (BASE, None, True)
    # without .uname, kernel-install's file name says the release (ENTRY-TOKEN-RELEASE.efi)
    named = tmp_path / f"{MACHINE_ID}-6.1.0-28-amd64+3-0.efi"
    shutil.copy(signed, named)
    assert read_uki(named, "/n.efi", MACHINE_ID).version == "6.1.0-28-amd64"


@pytest.mark.parametrize(("content", "said"), [
    (b"", "no MZ header"),
    (b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\0\0" + bytes(10),
     "headers end early"),
    (b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"NE\0\0" + bytes(200),
     "no PE signature"),
    (None, "no .linux section"),  # systemd-boot itself: an EFI program, not a kernel image
])
def test_what_is_not_an_image_is_an_error_naming_the_file(tmp_path: Path, content: bytes | None,
                                                          said: str) -> None:
    path = tmp_path / "bad.efi"
    if content is None:
        shutil.copy(STUB, path)
    else:
        path.write_bytes(content)
    with pytest.raises(NotAnImage, match=f"^/EFI/Linux/bad.efi: {said}"):
        read_uki(path, "/EFI/Linux/bad.efi", None)
    # systemd-boot lists no such file, and neither does pmemd
    assert find_ukis(Machine(tmp_path), tmp_path) == []
    (tmp_path / "EFI/Linux").mkdir(parents=True)
    shutil.move(path, tmp_path / "EFI/Linux/bad.efi")
    assert find_ukis(Machine(tmp_path), tmp_path) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=HEADER_BYTES))
def test_any_bytes_parse_or_raise_notpe(data: bytes) -> None:
    try:
        image = parse_pe(data)
    except NotPE:
        return
    assert all(s.size >= 0 and s.offset >= 0 for s in image.sections)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_real_header_with_any_byte_changed_parses_or_raises_notpe(data: st.DataObject
                                                                      ) -> None:
    head = bytearray(STUB.read_bytes()[:HEADER_BYTES])
    for _ in range(data.draw(st.integers(1, 8))):
        head[data.draw(st.integers(0, 511))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(NotPE):
        parse_pe(bytes(head))


# --- a vendor's image: refused, nothing written ------------------------------------------------


def test_a_signed_vendor_image_is_detected_shown_and_refused(
        tree: Tree, tmp_path: Path, vendor_key: tuple[Path, Path]) -> None:
    root = uki_machine(tree, tmp_path, key=vendor_key,
                       config=config_text(("data", "4G", "12G")))
    found = detect(Machine(root))
    assert found.backend is not None and found.backend.kind is BootloaderChoice.KERNEL_INSTALL
    assert "2 unified kernel images" in found.reason
    assert "pmemd cannot change their command line" in found.reason
    plan = run_pmemd("plan", "--root", str(root))
    assert f"next boot: {root / IMAGES}/debian-6.1.0-27-amd64.efi" in plan.stdout, plan.stdout
    assert "a unified kernel image: its .cmdline" in plan.stdout
    before = snapshot(root)
    with pytest.raises(BootConfigError) as refused:
        reconcile(Machine(root), Runner())
    said = str(refused.value)
    assert said.startswith(f"the next boot is a signed unified kernel image, "
                           f"/{IMAGES}/debian-6.1.0-27-amd64.efi"), said
    assert "no layout=uki in /etc/kernel/install.conf or /usr/lib/kernel/install.conf" in said
    assert f"ukify build --cmdline='{M1}'" in said and ".efi.extra.d/" in said
    assert "never writes a global addon (loader/addons/)" in said
    assert_same_files(boot_files(root), boot_files(root, before))
    shown = run_pmemd("reconcile", "--root", str(root))
    assert shown.returncode != 0 and "re-signing" in shown.stderr, shown.stderr
    assert_same_files(boot_files(root), boot_files(root, before))


def test_a_vendor_image_with_nothing_to_change_is_fine(tree: Tree, tmp_path: Path) -> None:
    root = uki_machine(tree, tmp_path, config=config_text())
    outcome = reconcile(Machine(root), Runner())
    assert not outcome.applied and outcome.write.empty


def test_a_newer_type1_entry_is_the_next_boot_and_the_image_stays(tree: Tree,
                                                                  tmp_path: Path) -> None:
    """Images and type #1 entries side by side: the default is the newest of all; an older
    vendor image that is not the next boot stays as it is, as other EFI programs do."""
    root = uki_machine(tree, tmp_path, releases=("6.1.0-26-amd64",),
                       config=config_text(("data", "4G", "12G")))
    shutil.copytree(tree("debian12-systemd-boot"), root, dirs_exist_ok=True)
    image = (root / IMAGES / "debian-6.1.0-26-amd64.efi").read_bytes()
    outcome = reconcile(Machine(root), Runner())
    assert outcome.applied and outcome.next_boot.source.endswith("6.1.0-27-amd64.conf")
    assert (root / IMAGES / "debian-6.1.0-26-amd64.efi").read_bytes() == image
    assert M1 in (root / "etc/kernel/cmdline").read_text()


@pytest.mark.parametrize(("layout", "plugins", "said"), [
    ("layout=bls\n", (), "/etc/kernel/install.conf says layout=bls"),
    ("layout=uki\n", (), "says layout=uki, but no plugin builds the images"),
    ("layout=uki\n", ("60-ukify.install -> /dev/null",), "no plugin builds the images"),
    ("layout=uki\n", ("60-ukify.install (empty)",), "no plugin builds the images"),
    ('layout="uki"  # built here\n', ("60-ukify.install",), ""),
    ("layout=uki\n", ("50-dracut.install",), ""),
])
def test_built_here_means_layout_uki_and_a_builder(tree: Tree, tmp_path: Path, layout: str,
                                                   plugins: tuple[str, ...], said: str) -> None:
    root = uki_machine(tree, tmp_path, releases=("6.1.0-27-amd64",))
    (root / "etc/kernel").mkdir(parents=True, exist_ok=True)
    (root / "etc/kernel/install.conf").write_text(layout)
    for plugin in plugins:
        name = plugin.split()[0]
        lib = root / "usr/lib/kernel/install.d" / name
        lib.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(STANDINS / "60-ukify.install", lib)
        etc = root / "etc/kernel/install.d" / name
        etc.parent.mkdir(parents=True, exist_ok=True)
        if plugin.endswith("-> /dev/null"):
            etc.symlink_to("/dev/null")
        elif plugin.endswith("(empty)"):
            etc.write_text("")
    local, why = local_build(Machine(root))
    assert local is (said == ""), why
    assert said in why


# --- images built here: the real kernel-install rebuilds them ----------------------------------


@pytest.fixture
def built_here(debian: tuple[DebianRoot, Path]) -> Iterator[tuple[DebianRoot, Path]]:
    """The Debian root with an ESP (a tmpfs at /boot/efi) holding systemd-boot's
    loader.conf and one image per kernel, built by the real kernel-install with
    ``layout=uki`` and the builder stand-ins."""
    root, _ = debian
    esp = root.file("/boot/efi")
    esp.mkdir(exist_ok=True)
    run(["mount", "-t", "tmpfs", "tmpfs", esp])
    (esp / "loader").mkdir()
    (esp / "loader/loader.conf").write_text("timeout 3\n")
    kernel = root.file("/etc/kernel")
    (kernel / "install.d").mkdir(parents=True, exist_ok=True)
    (kernel / "install.conf").write_text("layout=uki\nBOOT_ROOT=/boot/efi\n")
    (kernel / "cmdline").write_text(f"root=UUID={root.uuid} ro quiet\n")
    for name in BUILDERS:
        shutil.copy(STANDINS / name, kernel / "install.d" / name)
    for release in RELEASES:  # never empty (objcopy drops empty sections)
        root.file(f"/boot/vmlinuz-{release}").write_bytes(b"MZ" + bytes(4094))
        root.file(f"/boot/initrd.img-{release}").write_bytes(b"070701" + bytes(1018))
        root.chroot("kernel-install", "add", release, f"/boot/vmlinuz-{release}",
                    f"/boot/initrd.img-{release}")
    yield root, esp
    run(["umount", "-l", esp], check=False)
    shutil.rmtree(kernel, ignore_errors=True)
    for release in RELEASES:
        root.file(f"/boot/vmlinuz-{release}").write_bytes(b"")
        root.file(f"/boot/initrd.img-{release}").write_bytes(b"")


def reconcile_uki(root: DebianRoot, runner: Runner | None = None) -> Outcome:
    return reconcile(Machine(root.root), runner or Runner())


def cmdlines(esp: Path) -> dict[str, str]:
    return {p.name: read_uki(p, p.name, MACHINE_ID).cmdline
            for p in sorted((esp / "EFI/Linux").glob("*.efi"))}


def test_images_built_here_are_rebuilt_with_the_options(
        built_here: tuple[DebianRoot, Path]) -> None:
    root, esp = built_here
    original = cmdlines(esp)
    assert set(original) == {f"{MACHINE_ID}-{r}.efi" for r in RELEASES}
    write_config(root.root, config_text(("data", "4G", "12G"), bootloader="kernel-install"))
    plan = run_pmemd("plan", "--root", str(root.root))
    assert "built here: layout=uki in /etc/kernel/install.conf, " \
           "/etc/kernel/install.d/60-ukify.install" in plan.stdout, plan.stdout
    runner = Runner()
    outcome = reconcile_uki(root, runner)
    assert outcome.applied, outcome
    assert [argv[2:] for argv in runner.recorded] == [
        ("kernel-install", "add", r, f"/boot/vmlinuz-{r}", f"/boot/initrd.img-{r}")
        for r in RELEASES]
    # the trial: the next boot is an image; pmemd does not build a second one to try
    assert outcome.trial is not None and outcome.trial.action == "direct"
    assert "unified kernel image" in outcome.trial.message
    assert all(line == f"root=UUID={root.uuid} ro quiet {M1}" for line in cmdlines(esp).values())
    # rebuilt with the initrd: built without one, the image would not boot
    for image in (esp / "EFI/Linux").glob("*.efi"):
        assert parse_pe(image.read_bytes()[:HEADER_BYTES]).section(".initrd") is not None
    assert root.file("/etc/kernel/cmdline").read_text() == f"root=UUID={root.uuid} ro quiet {M1}\n"
    # idempotent: nothing rebuilt the second time
    again = Runner()
    assert not reconcile_uki(root, again).applied and again.recorded == []
    # a kernel installed later gets its image with the options, from /etc/kernel/cmdline
    root.file("/boot/vmlinuz-6.1.0-28-amd64").write_bytes(b"MZ" + bytes(4094))
    root.chroot("kernel-install", "add", "6.1.0-28-amd64", "/boot/vmlinuz-6.1.0-28-amd64")
    assert M1 in cmdlines(esp)[f"{MACHINE_ID}-6.1.0-28-amd64.efi"]
    # resize, then remove: every image back to the command line it had
    write_config(root.root, config_text(("data", "2G", "10G"), bootloader="kernel-install"))
    reconcile_uki(root)
    assert all(line.endswith(f"ro quiet {M2}") for line in cmdlines(esp).values())
    write_config(root.root, config_text(bootloader="kernel-install"))
    reconcile_uki(root)
    after = cmdlines(esp)
    assert {k: after[k] for k in original} == original
    root.file("/boot/vmlinuz-6.1.0-28-amd64").unlink()


def test_a_failed_rebuild_puts_every_file_back(built_here: tuple[DebianRoot, Path]) -> None:
    root, esp = built_here
    write_config(root.root, config_text(("data", "4G", "12G"), bootloader="kernel-install"))
    before = {**snapshot(esp), **{f"kernel/{k}": v for k, v in
                                  snapshot(root.file("/etc/kernel")).items()}}
    stub = root.file("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
    saved = stub.read_bytes()
    stub.unlink()  # the builder fails: objcopy has no stub to build from
    try:
        with pytest.raises(BootConfigError, match=r"kernel-install add 6\.1\.0-26-amd64"):
            reconcile_uki(root)
    finally:
        stub.write_bytes(saved)
    after = {**snapshot(esp), **{f"kernel/{k}": v for k, v in
                                 snapshot(root.file("/etc/kernel")).items()}}
    assert_same_files({k: v for k, v in after.items() if not k.endswith(BACKUPS)},
                      before)


def test_an_image_whose_kernel_is_gone_is_named(built_here: tuple[DebianRoot, Path]) -> None:
    root, _ = built_here
    write_config(root.root, config_text(("data", "4G", "12G"), bootloader="kernel-install"))
    kernel = root.file("/boot/vmlinuz-6.1.0-26-amd64")
    kernel.unlink()
    try:
        with pytest.raises(MachineError, match=r"its kernel 6\.1\.0-26-amd64 is not installed"):
            reconcile_uki(root)
    finally:
        kernel.write_bytes(b"MZ" + bytes(4094))
