"""packaging/install_data.py, the one map of where non-Python files go (debian/rules and
the RPM spec both call it): every file is placed, an unknown file stops the build, and the
RPM file list marks the config and lets rpmbuild compress man pages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.packaging.conftest import PACKAGING

FEDORA_DIRS = {
    "unitdir": "/usr/lib/systemd/system",
    "generatordir": "/usr/lib/systemd/system-generators",
    "udevrulesdir": "/usr/lib/udev/rules.d",
    "sysconfdir": "/etc",
    "grubddir": "/etc/grub.d",
    "dbussystemdir": "/usr/share/dbus-1/system.d",
    "dbusservicedir": "/usr/share/dbus-1/system-services",
    "dbusinterfacedir": "/usr/share/dbus-1/interfaces",
    "polkitactiondir": "/usr/share/polkit-1/actions",
    "cockpitdir": "/usr/share/cockpit",
    "bashcompletiondir": "/usr/share/bash-completion/completions",
    "zshcompletiondir": "/usr/share/zsh/site-functions",
    "catalogdir": "/usr/lib/systemd/catalog",
    "mandir": "/usr/share/man",
}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_data",
                                                  PACKAGING / "install_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["install_data"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


install_data = load()


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


SOURCE = {
    "systemd/pmemd.service": "[Unit]\n",
    "systemd/pmemd-reconcile.service": "[Unit]\n",
    "systemd/pmemd-generator": "#!/usr/bin/python3\n",
    "systemd/60-pmemd.rules": "# udev\n",
    "etc/pmemd.yaml": "version: 1\n",
    "etc/grub.d/42_pmemd_trial": "#! /bin/sh\n",
    "etc/io.pmemd1.conf": "<busconfig/>\n",
    "etc/io.pmemd1.service": "[D-BUS Service]\n",
    "etc/io.pmemd1.policy": "<policyconfig/>\n",
    "etc/io.pmemd1.Manager.xml": "<node/>\n",
    "shell-completion/bash/pmemctl": "complete -F _pmemctl pmemctl\n",
    "shell-completion/zsh/_pmemctl": "#compdef pmemctl\n",
    "catalog/pmemd.catalog": "-- 00000000000000000000000000000000\n",
    "man/pmemd.8": ".TH PMEMD 8\n",
    "man/pmemd.yaml.5": ".TH PMEMD.YAML 5\n",
}


def test_every_file_goes_where_its_kind_belongs(tmp_path: Path) -> None:
    source = tree(tmp_path / "src", SOURCE)
    placed = install_data.plan_placements(source, FEDORA_DIRS, source / "man")
    targets = {str(p.target): (p.source.relative_to(source).as_posix(), p.mode)
               for p in placed}
    assert targets == {
        "/usr/lib/systemd/system/pmemd.service": ("systemd/pmemd.service", 0o644),
        "/usr/lib/systemd/system/pmemd-reconcile.service":
            ("systemd/pmemd-reconcile.service", 0o644),
        "/usr/lib/systemd/system-generators/pmemd-generator":
            ("systemd/pmemd-generator", 0o755),
        "/usr/lib/udev/rules.d/60-pmemd.rules": ("systemd/60-pmemd.rules", 0o644),
        "/etc/pmemd.yaml": ("etc/pmemd.yaml", 0o644),
        "/etc/grub.d/42_pmemd_trial": ("etc/grub.d/42_pmemd_trial", 0o755),
        "/usr/share/dbus-1/system.d/io.pmemd1.conf": ("etc/io.pmemd1.conf", 0o644),
        "/usr/share/dbus-1/system-services/io.pmemd1.service":
            ("etc/io.pmemd1.service", 0o644),
        "/usr/share/polkit-1/actions/io.pmemd1.policy": ("etc/io.pmemd1.policy", 0o644),
        "/usr/share/dbus-1/interfaces/io.pmemd1.Manager.xml":
            ("etc/io.pmemd1.Manager.xml", 0o644),
        "/usr/share/bash-completion/completions/pmemctl":
            ("shell-completion/bash/pmemctl", 0o644),
        "/usr/share/zsh/site-functions/_pmemctl": ("shell-completion/zsh/_pmemctl", 0o644),
        "/usr/lib/systemd/catalog/pmemd.catalog": ("catalog/pmemd.catalog", 0o644),
        "/usr/share/man/man8/pmemd.8": ("man/pmemd.8", 0o644),
        "/usr/share/man/man5/pmemd.yaml.5": ("man/pmemd.yaml.5", 0o644),
    }


def test_installing_copies_with_modes_and_writes_the_rpm_file_list(tmp_path: Path) -> None:
    source = tree(tmp_path / "src", SOURCE)
    dest, listing = tmp_path / "dest", tmp_path / "files"
    options = [f"--{name}={value}" for name, value in FEDORA_DIRS.items()]
    done = subprocess.run([sys.executable, str(PACKAGING / "install_data.py"),
                           f"--destdir={dest}", f"--source={source}",
                           f"--man-pages={source / 'man'}", f"--file-list={listing}",
                           *options], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    generator = dest / "usr/lib/systemd/system-generators/pmemd-generator"
    assert generator.read_text() == SOURCE["systemd/pmemd-generator"]
    assert generator.stat().st_mode & 0o777 == 0o755
    lines = listing.read_text().splitlines()
    assert "%config(noreplace) /etc/pmemd.yaml" in lines
    # pmemd's own script under /etc: an upgrade replaces it (it reads what pmemd writes)
    assert "%config /etc/grub.d/42_pmemd_trial" in lines
    script = dest / "etc/grub.d/42_pmemd_trial"
    assert script.stat().st_mode & 0o777 == 0o755
    assert "/usr/share/man/man8/pmemd.8*" in lines
    assert "/usr/lib/systemd/system/pmemd.service" in lines
    assert len(lines) == len(SOURCE)


@pytest.mark.parametrize("stray", ["etc/pmemd.conf.example", "systemd/pmemd.conf",
                                   "etc/dbus/README.txt", "shell-completion/zsh/pmemctl",
                                   "shell-completion/fish/pmemctl.fish",
                                   "cockpit/images/map.svg", "catalog/pmemd.de.txt"])
def test_a_file_no_rule_places_stops_the_build(tmp_path: Path, stray: str) -> None:
    source = tree(tmp_path / "src", {**SOURCE, stray: "x\n"})
    with pytest.raises(install_data.LayoutError, match=stray.replace(".", r"\.")):
        install_data.plan_placements(source, FEDORA_DIRS, None)


COCKPIT = {"cockpit/manifest.json": "{}\n", "cockpit/index.html": "<!DOCTYPE html>\n",
           "cockpit/pmemd.js": "'use strict';\n"}


def test_the_cockpit_page_is_a_binary_package_of_its_own(tmp_path: Path) -> None:
    """pmemd-cockpit's files go to Cockpit's package directory, and only into that
    package: pmemd's placements (and its RPM file list) do not have them."""
    source = tree(tmp_path / "src", {**SOURCE, **COCKPIT})
    cockpit = install_data.plan_placements(source, FEDORA_DIRS, None, "pmemd-cockpit")
    assert {str(p.target): p.source.relative_to(source).as_posix() for p in cockpit} == {
        "/usr/share/cockpit/pmemd/manifest.json": "cockpit/manifest.json",
        "/usr/share/cockpit/pmemd/index.html": "cockpit/index.html",
        "/usr/share/cockpit/pmemd/pmemd.js": "cockpit/pmemd.js",
    }
    pmemd = install_data.plan_placements(source, FEDORA_DIRS, None)
    assert not [p for p in pmemd if p.source.parent.name == "cockpit"]
    assert install_data.PACKAGES == ("pmemd", "pmemd-cockpit")


def test_two_files_for_one_target_stop_the_build(tmp_path: Path) -> None:
    source = tree(tmp_path / "src", {**SOURCE, "etc/sub/io.pmemd1.conf": "<busconfig/>\n"})
    with pytest.raises(install_data.LayoutError, match=r"io\.pmemd1\.conf"):
        install_data.plan_placements(source, FEDORA_DIRS, None)


def test_man_pages_must_have_been_rendered(tmp_path: Path) -> None:
    source = tree(tmp_path / "src", {"etc/pmemd.yaml": "version: 1\n"})
    (source / "empty").mkdir()
    with pytest.raises(install_data.LayoutError, match="make man"):
        install_data.plan_placements(source, FEDORA_DIRS, source / "empty")


def test_pyproject_lists_every_package_of_pmemd() -> None:
    """The package list is written out (automatic discovery would walk the example
    machines' sysfs link loops): a new room must be added to it, or it would be missing
    from the wheel and both packages while every test run from the tree still passed."""
    import tomllib

    from tests.conftest import REPO

    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    found = sorted(".".join(init.parent.relative_to(REPO).parts)
                   for init in (REPO / "pmemd").rglob("__init__.py"))
    assert sorted(listed) == found
