"""The Debian package: built from this tree, lintian clean, installed by dpkg into a
throwaway Debian 12 root, where each file must sit where the installed systemd, udev, D-Bus,
polkit and man look for it, the units must pass `systemd-analyze verify`, and pmemd must run.
Then upgrade, removal and purge, as an admin would do them."""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import pytest

from pmemd import __version__
from pmemd.cli.exits import Exit
from pmemd.core.events import MessageId
from tests.conftest import MACHINES
from tests.packaging.conftest import REPO, BuiltDeb, Root, host_env, package_names, run

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount")
SHIPPED_UNITS = sorted(p.name for p in (REPO / "systemd").glob("*") if p.suffix in UNIT_SUFFIXES)
GENERATORS = sorted(p.name for p in (REPO / "systemd").glob("*-generator"))
UDEV_RULES = sorted(p.name for p in (REPO / "systemd").glob("*.rules"))
ETC_FILES = sorted(p for p in (REPO / "etc").rglob("*") if p.is_file())
BASH_COMPLETIONS = sorted((REPO / "shell-completion" / "bash").iterdir())
ZSH_COMPLETIONS = sorted((REPO / "shell-completion" / "zsh").glob("_*"))
# Debian's directory for the zsh functions of packages (zsh's own are under functions/).
ZSH_VENDOR_COMPLETIONS = "/usr/share/zsh/vendor-completions"
CATALOGS = sorted((REPO / "catalog").glob("*.catalog"))
MAN_SOURCES = sorted((REPO / "docs" / "man").glob("*.rst"))

pytestmark = pytest.mark.packaging


def pkgconfig_variable(root: Root, pc: str, name: str) -> str:
    """A variable of a .pc file in the root, with ${...} expanded as pkg-config does."""
    values: dict[str, str] = {}
    for line in root.file(f"/usr/share/pkgconfig/{pc}").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.]+)=(.*)", line.strip())
        if match:
            values[match[1]] = match[2]

    def expand(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: expand(values.get(m[1], "")), text)

    return expand(values[name])


def dbus_system_dirs(root: Root) -> tuple[list[str], bool]:
    """The system bus's policy <includedir>s, and whether it reads the standard service dirs."""
    config = root.file("/usr/share/dbus-1/system.conf")
    tree = ET.parse(config)
    base = PurePosixPath("/usr/share/dbus-1")
    includes = [str(base / (e.text or "").strip()) for e in tree.iter("includedir")]
    return includes, tree.find("standard_system_servicedirs") is not None


def zsh_fpath(root: Root) -> list[str]:
    return root.run("zsh", "-f", "-c", "print -rl -- $fpath").stdout.splitlines()


def expected_locations(root: Root) -> dict[str, Path]:
    """Where, according to the installed system's own declarations, each file of this
    tree must be, keyed by that path; values are the source files."""
    unitdir = pkgconfig_variable(root, "systemd.pc", "systemdsystemunitdir")
    generatordir = pkgconfig_variable(root, "systemd.pc", "systemdsystemgeneratordir")
    rulesdir = pkgconfig_variable(root, "udev.pc", "udevdir") + "/rules.d"
    policy_dirs, standard_services = dbus_system_dirs(root)
    assert "/usr/share/dbus-1/system.d" in policy_dirs
    assert standard_services  # /usr/share/dbus-1/system-services is read
    polkit_own = [line for line in root.run("dpkg", "-L", "polkitd").stdout.splitlines()
                  if line.endswith(".policy")]
    assert polkit_own, "polkitd ships no action file to learn its directory from"
    polkit_dir = str(PurePosixPath(polkit_own[0]).parent)
    bash_dir = pkgconfig_variable(root, "bash-completion.pc", "completionsdir")
    assert ZSH_VENDOR_COMPLETIONS in zsh_fpath(root)

    expected: dict[str, Path] = {}
    for name in SHIPPED_UNITS:
        expected[f"{unitdir}/{name}"] = REPO / "systemd" / name
    for name in GENERATORS:
        expected[f"{generatordir}/{name}"] = REPO / "systemd" / name
    for name in UDEV_RULES:
        expected[f"{rulesdir}/{name}"] = REPO / "systemd" / name
    for source in BASH_COMPLETIONS:
        expected[f"{bash_dir}/{source.name}"] = source
    for source in ZSH_COMPLETIONS:
        expected[f"{ZSH_VENDOR_COMPLETIONS}/{source.name}"] = source
    by_suffix = {".conf": "/usr/share/dbus-1/system.d",
                 ".service": "/usr/share/dbus-1/system-services",
                 ".xml": "/usr/share/dbus-1/interfaces",
                 ".policy": polkit_dir}
    catalogdir = pkgconfig_variable(root, "systemd.pc", "catalogdir")
    for source in CATALOGS:
        expected[f"{catalogdir}/{source.name}"] = source
    for source in ETC_FILES:
        if source.name == "pmemd.yaml":
            expected["/etc/pmemd.yaml"] = source
        elif source.parent.name == "grub.d":  # run by update-grub from /etc/grub.d
            expected[f"/etc/grub.d/{source.name}"] = source
        elif source.suffix in by_suffix:
            expected[f"{by_suffix[source.suffix]}/{source.name}"] = source
        else:
            pytest.fail(f"{source.relative_to(REPO)}: this test does not know where it goes")
    return expected


# --- the package itself ----------------------------------------------------------------

def test_lintian_reports_no_error_or_warning(built_deb: BuiltDeb) -> None:
    done = run(["lintian", "--fail-on", "error,warning", "--display-info", built_deb.changes],
               check=False, env=host_env())
    tags = [line for line in done.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert done.returncode == 0 and not tags, done.stdout + done.stderr


def test_package_version_is_the_python_version(built_deb: BuiltDeb) -> None:
    assert built_deb.field("Version") == __version__
    assert built_deb.field("Architecture") == "all"


def test_package_depends_on_debian_python_modules_and_mkfs(built_deb: BuiltDeb) -> None:
    depends = set(package_names(built_deb.field("Depends")))
    assert {"python3-yaml", "python3-dbus-next", "python3-pystemd", "e2fsprogs",
            "xfsprogs", "python3", "libsystemd0"} <= depends  # pmemctl: sd-bus
    assert {"ndctl", "polkitd"} <= set(package_names(built_deb.field("Recommends")))


# --- installed into a Debian 12 root ---------------------------------------------------

def test_files_land_where_the_installed_system_looks(built_deb: BuiltDeb,
                                                     installed_root: Root) -> None:
    expected = expected_locations(installed_root)
    for target, source in expected.items():
        installed = installed_root.file(target)
        assert installed.is_file(), f"{source.relative_to(REPO)} is not at {target}"
        assert installed.read_bytes() == source.read_bytes(), target
    for generator in GENERATORS:
        unitdir = pkgconfig_variable(installed_root, "systemd.pc", "systemdsystemgeneratordir")
        assert installed_root.file(f"{unitdir}/{generator}").stat().st_mode & 0o111
    # update-grub runs only the executable scripts of /etc/grub.d
    assert installed_root.file("/etc/grub.d/42_pmemd_trial").stat().st_mode & 0o777 == 0o755
    # Every other file the package ships is the Python package, a program, a man page or
    # Debian's documentation: nothing stray.
    canonical = {t.replace("/usr/lib/", "/lib/", 1) for t in expected}  # merged /usr
    stray = [f for f in built_deb.files()
             if f.replace("/usr/lib/", "/lib/", 1) not in canonical
             and not f.startswith(("/usr/lib/python3/dist-packages/pmemd",
                                   "/usr/share/man/", "/usr/share/doc/pmemd/"))
             and f not in ("/usr/bin/pmemd", "/usr/bin/pmemctl")]
    assert stray == []


def test_cockpit_finds_the_page_where_pmemd_cockpit_puts_it(
        built_deb: BuiltDeb, built_cockpit_deb: BuiltDeb, installed_root: Root) -> None:
    """pmemd-cockpit: exactly the cockpit/ folder, under the directory the installed
    cockpit-bridge reads (`cockpit-bridge --packages` lists it), depending on the bridge
    and on pmemd of the same version."""
    page = sorted(p for p in (REPO / "cockpit").iterdir() if p.is_file())
    shipped = [f for f in built_cockpit_deb.files()
               if not f.startswith(("/usr/share/doc/pmemd-cockpit/", "/usr/share/lintian/"))]
    assert shipped == sorted(f"/usr/share/cockpit/pmemd/{p.name}" for p in page)
    version = built_deb.field("Version")
    assert package_names(built_cockpit_deb.field("Depends")) == ["cockpit-bridge", "pmemd"]
    assert f"pmemd (= {version})" in built_cockpit_deb.field("Depends")
    installed_root.install(built_cockpit_deb.deb)
    listed = installed_root.run("cockpit-bridge", "--packages").stdout.splitlines()
    [line] = [entry for entry in listed if entry.split()[0] == "pmemd"]
    assert line.split()[-1] == "/usr/share/cockpit/pmemd"
    for source in page:
        assert installed_root.file(f"/usr/share/cockpit/pmemd/{source.name}").read_bytes() \
            == source.read_bytes()


def test_unit_directory_is_one_systemd_reads(installed_root: Root) -> None:
    unitdir = pkgconfig_variable(installed_root, "systemd.pc", "systemdsystemunitdir")
    paths = installed_root.run("systemd-analyze", "--system", "unit-paths").stdout.split()
    assert unitdir in paths


def test_journal_knows_the_catalog_after_dpkg_install(installed_root: Root) -> None:
    """No maintainer script: systemd's dpkg trigger on its catalog directory runs
    journalctl --update-catalog, so journalctl -x explains pmemd's events."""
    listed = installed_root.run("journalctl", "--list-catalog").stdout
    for message_id in MessageId:
        assert f"{message_id.value} pmemd: " in listed, (message_id.name, listed)


def test_config_is_a_conffile_that_declares_no_region(installed_root: Root) -> None:
    conffiles = installed_root.run("dpkg-query", "--showformat=${Conffiles}\n",
                                   "--show", "pmemd").stdout
    assert re.search(r"^ /etc/pmemd\.yaml [0-9a-f]{32}$", conffiles, re.M), conffiles
    # On the reference 16 GiB machine, the installed config asks for nothing to change.
    machine = installed_root.file("/srv/machine")
    run(["cp", "-a", MACHINES / "server-16g", machine])
    done = installed_root.run("pmemd", "plan", "--root", "/srv/machine", "--json",
                              "--config", "/etc/pmemd.yaml",
                              check=False)
    assert done.returncode == Exit.OK, done.stdout + done.stderr
    assert '"state": "converged"' in done.stdout


@pytest.mark.parametrize("source", MAN_SOURCES, ids=lambda p: p.stem)
def test_man_page_is_found_by_man(installed_root: Root, source: Path) -> None:
    name, section = source.stem.rsplit(".", 1)
    found = installed_root.run("man", "--where", section, name).stdout.strip()
    assert found == f"/usr/share/man/man{section}/{name}.{section}.gz"
    with gzip.open(installed_root.file(found), "rt") as page:
        assert f'.TH "{name.upper()}" {section} ' in page.read()


def test_shells_find_the_completions_where_the_package_puts_them(installed_root: Root
                                                               ) -> None:
    """bash-completion's loader, by the command's name; zsh's compinit, by the #compdef
    line of each file on its $fpath."""
    for program in ("pmemd", "pmemctl"):
        done = installed_root.run(
            "bash", "--norc", "-c", 'source /usr/share/bash-completion/bash_completion && '
            '__load_completion "$0" && complete -p "$0"', program)
        assert done.stdout.strip() == f"complete -F _{program} {program}"
    done = installed_root.run("zsh", "-f", "-c", "autoload -Uz compinit && compinit -u -D && "
                              "print -r -- $_comps[pmemd] $_comps[pmemctl]")
    assert done.stdout.split() == ["_pmemd", "_pmemctl"]


def test_pmemd_and_pmemctl_run_in_the_root(installed_root: Root) -> None:
    assert installed_root.run("pmemd", "--version").stdout.strip() == f"pmemd {__version__}"
    assert installed_root.run("pmemctl", "--version").stdout.strip() == \
        f"pmemctl {__version__}"
    for program in ("/usr/bin/pmemd", "/usr/bin/pmemctl"):
        first = installed_root.file(program).read_text().splitlines()[0]
        assert first == "#!/usr/bin/python3", (program, first)


@pytest.mark.parametrize("unit", SHIPPED_UNITS or [pytest.param(
    "none", marks=pytest.mark.skip(reason="systemd/ holds no unit yet"))])
def test_installed_unit_passes_systemd_analyze_verify(installed_root: Root, unit: str) -> None:
    unitdir = pkgconfig_variable(installed_root, "systemd.pc", "systemdsystemunitdir")
    done = installed_root.run("systemd-analyze", "verify", f"{unitdir}/{unit}", check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("unit", SHIPPED_UNITS or [pytest.param(
    "none", marks=pytest.mark.skip(reason="systemd/ holds no unit yet"))])
def test_units_with_an_install_section_are_enabled(installed_root: Root, unit: str) -> None:
    text = (REPO / "systemd" / unit).read_text()
    state = installed_root.run("systemctl", "is-enabled", unit, check=False).stdout.strip()
    assert state == ("enabled" if re.search(r"^\[Install\]", text, re.M) else "static")


def test_boot_time_oneshot_is_never_started_by_apt(built_deb: BuiltDeb, tmp_path: Path) -> None:
    """pmemd-reconcile.service and pmemd-trial.service may reboot the machine: dpkg must
    not start or restart them."""
    run(["dpkg-deb", "--control", built_deb.deb, tmp_path])
    scripts = "".join((tmp_path / s).read_text() for s in ("postinst", "prerm", "postrm")
                      if (tmp_path / s).exists())
    starts = [line for line in scripts.splitlines()
              if re.search(r"deb-systemd-invoke (?!stop)", line)]  # start, restart, $action
    assert not any("pmemd-reconcile.service" in line or "pmemd-trial.service" in line
                   for line in starts), starts
    if "pmemd.service" in SHIPPED_UNITS:
        assert any("pmemd.service" in line for line in starts), scripts


# --- upgrade, removal, purge -----------------------------------------------------------

def test_upgrade_keeps_everything_and_purge_removes_everything(built_deb: BuiltDeb,
                                                               fresh_root: Root) -> None:
    root = fresh_root
    root.install(built_deb.deb)
    config = root.file("/etc/pmemd.yaml")
    edited = config.read_text().replace("reboot: never", "reboot: auto")
    config.write_text(edited)
    state = root.file("/var/lib/pmemd/owned")
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("memmap=4G!12G\n")

    # Reinstalling is dpkg's upgrade path: prerm upgrade, postinst configure.
    upgrade = root.install(built_deb.deb)
    assert "pmemd:" not in upgrade.stdout + upgrade.stderr  # nothing removed or warned
    assert config.read_text() == edited and state.is_file()

    can_remove = "--remove-all" in root.run("pmemd", "reconcile", "--help", check=False).stdout
    removal = root.run("dpkg", "--remove", "pmemd")
    said = removal.stdout + removal.stderr
    assert "pmemd: removing pmemd's memmap= options from the boot configuration" in said
    if can_remove:  # pmemd reconcile --remove-all exists: it must have worked
        assert "warning" not in said, said
    assert not root.file("/usr/bin/pmemd").exists()
    assert config.read_text() == edited  # removal keeps the admin's configuration

    root.run("dpkg", "--purge", "pmemd")
    assert not config.exists() and not root.file("/var/lib/pmemd").exists()
    leftovers = [str(p.relative_to(root.path)) for p in root.path.rglob("*pmemd*")
                 if not str(p).startswith(str(root.file("/tmp")))]
    assert leftovers == []


def test_dbus_activation_starts_a_unit_the_package_ships(installed_root: Root) -> None:
    """D-Bus activation through systemd: each activation file names a unit that is
    installed, and the bus name it owns is the one the unit waits for."""
    services = sorted(installed_root.file("/usr/share/dbus-1/system-services").glob("io.pmemd1*"))
    assert services, "no D-Bus activation file installed"
    unitdir = pkgconfig_variable(installed_root, "systemd.pc", "systemdsystemunitdir")
    for service in services:
        fields = dict(re.findall(r"^(\w+)=(.*)$", service.read_text(), re.M))
        unit = installed_root.file(f"{unitdir}/{fields['SystemdService']}")
        assert unit.is_file(), f"{service.name}: SystemdService={fields['SystemdService']} " \
                               "is not installed"
        assert re.search(rf"^BusName={re.escape(fields['Name'])}$", unit.read_text(), re.M)
