"""The RPM, built here from packaging/rpm/pmemd.spec with rpmbuild: the same files as the
.deb, the config as %config(noreplace), Fedora's dependency names, and scriptlets that
clean the boot configuration on erase but never on upgrade."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.packaging.conftest import BuiltDeb, Root, run

# Each distribution's own documentation conventions (Debian: changelog.gz and copyright
# under /usr/share/doc/pmemd, lintian's overrides; Fedora: %doc and %license): not
# compared.
DISTRIBUTION_DOCS = ("/usr/share/doc/", "/usr/share/licenses/", "/usr/share/lintian/")
# What the wheel installer records about itself, which each distribution's tooling keeps
# or drops differently; METADATA, entry_points.txt and top_level.txt are compared.
INSTALLER_BOOKKEEPING = ("INSTALLER", "RECORD", "REQUESTED", "direct_url.json")

pytestmark = pytest.mark.packaging


def normalize(path: str) -> str | None:
    """A shipped path as comparable between the two packages, or None when not compared."""
    if path.startswith(DISTRIBUTION_DOCS) or "/__pycache__/" in path:
        return None
    if re.search(r"\.dist-info/([^/]+)$", path) and path.rsplit("/", 1)[1] in \
            INSTALLER_BOOKKEEPING:
        return None
    # The wheel's copy of the license: the RPM keeps it (%license), dh_python3 deletes it
    # (Debian's licence is /usr/share/doc/pmemd/copyright).
    if re.search(r"\.dist-info/(licenses/|license_files/|(LICENSE|COPYING)(\.[^/]*)?$)", path):
        return None
    path = re.sub(r"^/usr/lib/python3(\.\d+)?/(dist|site)-packages/", "{python3_sitelib}/",
                  path)
    # Each distribution's directory for the zsh completions of packages.
    path = re.sub(r"^/usr/share/zsh/(vendor-completions|site-functions)/",
                  "{zsh_completions}/", path)
    # Debian 12 has merged /usr: its /lib/systemd and /lib/udev are /usr/lib's.
    return re.sub(r"^/lib/", "/usr/lib/", path)


def rpm_query(rpm: Path, queryformat: str) -> list[str]:
    return run(["rpm", "--query", "--package", "--queryformat", queryformat, rpm]
               ).stdout.splitlines()


def rpm_files(rpm: Path) -> list[str]:
    """`rpm -qlp`, less the directories the package owns."""
    listed = run(["rpm", "-qlp", rpm]).stdout.split()
    directories = {line.split(" ", 1)[1] for line in
                   rpm_query(rpm, "[%{FILEMODES:perms} %{FILENAMES}\n]") if line[0] == "d"}
    return [path for path in listed if path not in directories]


def test_rpm_lists_the_same_files_as_the_deb(built_rpm: Path, built_deb: BuiltDeb) -> None:
    from_rpm = {n for n in map(normalize, rpm_files(built_rpm)) if n is not None}
    from_deb = {n for n in map(normalize, built_deb.files()) if n is not None}
    assert sorted(from_rpm - from_deb) == [] and sorted(from_deb - from_rpm) == []
    assert "/etc/pmemd.yaml" in from_rpm and "/usr/bin/pmemd" in from_rpm


def test_the_cockpit_subpackage_is_the_cockpit_deb(built_rpm: Path,
                                                  built_cockpit_deb: BuiltDeb) -> None:
    """pmemd-cockpit: the same files in both, and the same relations (pmemd of the same
    version, Cockpit's bridge)."""
    [rpm] = built_rpm.parent.glob("pmemd-cockpit-*.noarch.rpm")
    from_rpm = {n for n in map(normalize, rpm_files(rpm)) if n is not None}
    from_deb = {n for n in map(normalize, built_cockpit_deb.files()) if n is not None}
    assert from_rpm == from_deb
    assert "/usr/share/cockpit/pmemd/manifest.json" in from_rpm
    requires = [r for r in rpm_query(rpm, "[%{REQUIRES}\n]") if not r.startswith("rpmlib(")]
    assert sorted(requires) == ["cockpit-bridge", "pmemd"]
    assert rpm_query(rpm, "[%{REQUIREFLAGS:depflags} %{REQUIREVERSION}\n]")[1] == \
        "= " + rpm_query(built_rpm, "%{VERSION}-%{RELEASE}")[0]
    assert "%dir" not in from_rpm
    directories = [line for line in rpm_query(rpm, "[%{FILEMODES:perms} %{FILENAMES}\n]")
                   if line[0] == "d"]
    assert [d.split(" ", 1)[1] for d in directories] == ["/usr/share/cockpit/pmemd"]


def test_both_packages_ship_every_module_of_the_tree(built_rpm: Path, built_deb: BuiltDeb,
                                                      source_tree: Path) -> None:
    """Both are built from one copy of the tree (see the source_tree fixture): every
    module in it is in each package, none is missing from one of them."""
    modules = {f"{{python3_sitelib}}/{p.relative_to(source_tree).as_posix()}"
               for p in (source_tree / "pmemd").rglob("*.py") if "__pycache__" not in p.parts}
    assert "{python3_sitelib}/pmemd/boot/backends/grubby.py" in modules  # a room in a room
    for files in (rpm_files(built_rpm), built_deb.files()):
        shipped = {n for n in map(normalize, files) if n is not None}
        assert sorted(modules - shipped) == []


def test_rpm_config_is_the_config_and_pmemds_grub_script(built_rpm: Path) -> None:
    flagged = [line.split(" ", 1) for line in
               rpm_query(built_rpm, "[%{FILEFLAGS:fflags} %{FILENAMES}\n]")]
    config = {path: flags for flags, path in flagged if "c" in flags}
    assert sorted(config) == ["/etc/grub.d/42_pmemd_trial", "/etc/pmemd.yaml"]
    assert "n" in config["/etc/pmemd.yaml"]  # the admin's: an edited one is kept
    assert "n" not in config["/etc/grub.d/42_pmemd_trial"]  # pmemd's: upgrades replace it


def test_rpm_depends_on_fedora_python_modules_and_mkfs(built_rpm: Path) -> None:
    requires = set(rpm_query(built_rpm, "[%{REQUIRENAME}\n]"))
    assert {"python3-pyyaml", "python3-dbus-next", "python3-pystemd", "e2fsprogs",
            "xfsprogs"} <= requires
    assert {"ndctl", "polkit"} <= set(rpm_query(built_rpm, "[%{RECOMMENDNAME}\n]"))
    assert rpm_query(built_rpm, "%{ARCH}") == ["noarch"]


def test_rpm_erase_cleans_the_boot_configuration_but_upgrade_does_not(
        built_rpm: Path, installed_root: Root) -> None:
    """The %preun scriptlet, run with rpm's argument as on an upgrade (1) and an erase (0),
    in a root where pmemd is installed."""
    preun = "\n".join(rpm_query(built_rpm, "%{PREUN}"))
    script = installed_root.file("/tmp/preun")
    script.write_text(preun + "\n")
    upgrade = installed_root.run("sh", "/tmp/preun", "1")
    assert upgrade.stdout + upgrade.stderr == ""
    erase = installed_root.run("sh", "/tmp/preun", "0")
    said = erase.stdout + erase.stderr
    assert "pmemd: removing pmemd's memmap= options from the boot configuration" in said
