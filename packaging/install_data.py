#!/usr/bin/python3
"""Install pmemd's files that are not Python: units, generator, udev rule, D-Bus and polkit
files, the config, the shell completions, the journal's message catalog and the man pages;
and, for the binary package pmemd-cockpit, the Cockpit page.

This is the one place that says where each file of the source tree goes. ``debian/rules``
and the RPM spec both call it, each with its distribution's directories, so the two packages
cannot ship different sets of files. A file under ``systemd/``, ``etc/``,
``shell-completion/``, ``catalog/`` or ``cockpit/`` that no rule places is an error: a new
file must be given a home here, not silently left out.

    install_data.py --destdir debian/pmemd --unitdir /lib/systemd/system ...
    install_data.py --package pmemd-cockpit --destdir debian/pmemd-cockpit ...
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SOURCE = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Rule:
    """Files matching ``pattern`` (relative to the source tree) go into directory ``dest``
    (and its ``subdir``), in binary package ``package``."""

    pattern: str
    dest: str  # the name of a --DIR option
    mode: int = 0o644
    subdir: str = ""
    package: str = "pmemd"


UNIT_SUFFIXES = ("service", "socket", "timer", "path", "target", "mount")

RULES = (
    # GRUB's configuration scripts (pmemd's trial boot entry): run by update-grub.
    Rule("etc/grub.d/*", "grubddir", 0o755),
    *(Rule(f"systemd/*.{suffix}", "unitdir") for suffix in UNIT_SUFFIXES),
    Rule("systemd/*-generator", "generatordir", 0o755),
    Rule("systemd/*.rules", "udevrulesdir"),
    Rule("etc/pmemd.yaml", "sysconfdir"),
    # D-Bus system bus policy, activation file and introspection data; polkit actions.
    Rule("etc/**/*.conf", "dbussystemdir"),
    Rule("etc/**/*.service", "dbusservicedir"),
    Rule("etc/**/*.xml", "dbusinterfacedir"),
    Rule("etc/**/*.policy", "polkitactiondir"),
    # Shell completions, named as the shells look them up: bash-completion by the command's
    # name when it is first completed, zsh by its #compdef line in a file of $fpath.
    Rule("shell-completion/bash/*", "bashcompletiondir"),
    Rule("shell-completion/zsh/_*", "zshcompletiondir"),
    # The Cockpit page, a package of its own (pmemd-cockpit: it needs cockpit-bridge).
    Rule("cockpit/*", "cockpitdir", subdir="pmemd", package="pmemd-cockpit"),
    # The journal's message catalog for pmemd's events (journalctl -x).
    Rule("catalog/*.catalog", "catalogdir"),
)
PACKAGES = tuple(sorted({rule.package for rule in RULES}))

# Directories whose files are placed by RULES: anything else in them is an error.
PLACED_TREES = ("systemd", "etc", "shell-completion", "catalog", "cockpit")
# Files in those trees that are documentation for the tree, not something to install.
NOT_INSTALLED = ("README", "README.md")

DIRECTORY_OPTIONS = {
    "unitdir": "systemd system units (Debian 12: /lib/systemd/system)",
    "generatordir": "systemd system generators (Debian 12: /lib/systemd/system-generators)",
    "udevrulesdir": "udev rules (Debian 12: /lib/udev/rules.d)",
    "sysconfdir": "configuration (/etc)",
    "grubddir": "GRUB's configuration scripts (/etc/grub.d)",
    "dbussystemdir": "D-Bus system bus policy (/usr/share/dbus-1/system.d)",
    "dbusservicedir": "D-Bus system service activation (/usr/share/dbus-1/system-services)",
    "dbusinterfacedir": "D-Bus introspection data (/usr/share/dbus-1/interfaces)",
    "polkitactiondir": "polkit actions (/usr/share/polkit-1/actions)",
    "bashcompletiondir": "bash completions, bash-completion's completionsdir "
                         "(/usr/share/bash-completion/completions)",
    "zshcompletiondir": "zsh completions (Debian: /usr/share/zsh/vendor-completions; "
                        "Fedora: /usr/share/zsh/site-functions)",
    "cockpitdir": "Cockpit's packages (/usr/share/cockpit)",
    "catalogdir": "journal message catalogs (/usr/lib/systemd/catalog)",
    "mandir": "man pages (/usr/share/man); pages come from --man-pages",
}


@dataclass(frozen=True)
class Placement:
    source: Path
    target: PurePosixPath  # absolute path on the installed system
    mode: int


class LayoutError(Exception):
    pass


def plan_placements(source: Path, dirs: dict[str, str], man_pages: Path | None,
                    package: str = "pmemd") -> list[Placement]:
    """Where every installable file of binary package ``package`` goes; refuses files of
    the tree that no rule of any package places."""
    placements: dict[Path, Placement] = {}
    placed: set[Path] = set()
    for rule in RULES:
        for path in sorted(source.glob(rule.pattern)):
            if not path.is_file() or path in placed:
                continue
            placed.add(path)
            if rule.package == package:
                target = PurePosixPath(dirs[rule.dest]) / rule.subdir / path.name
                placements[path] = Placement(path, target, rule.mode)
    unplaced = [path.relative_to(source) for tree in PLACED_TREES
                for path in sorted((source / tree).rglob("*"))
                if path.is_file() and path not in placed and path.name not in NOT_INSTALLED]
    if unplaced:
        names = ", ".join(str(p) for p in unplaced)
        raise LayoutError(f"no install rule for {names}: add one to {Path(__file__).name}")
    result = list(placements.values())
    if man_pages is not None:
        pages = sorted(man_pages.glob("*.[1-8]"))
        if not pages:
            raise LayoutError(f"no man pages in {man_pages}: run 'make man' first")
        for page in pages:
            section = page.suffix.lstrip(".")
            target = PurePosixPath(dirs["mandir"]) / f"man{section}" / page.name
            result.append(Placement(page, target, 0o644))
    targets = [p.target for p in result]
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clashes:
        raise LayoutError(f"two source files would be installed as {', '.join(clashes)}")
    return sorted(result, key=lambda p: p.target)


def install(placements: list[Placement], destdir: Path) -> None:
    for placement in placements:
        target = destdir / str(placement.target).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(placement.source, target)
        target.chmod(placement.mode)


def render_file_list(placements: list[Placement], sysconfdir: str, mandir: str | None) -> str:
    """An RPM ``%files -f`` list: files under sysconfdir are configuration — the admin's
    (``%config(noreplace)``: an edited one is kept), or pmemd's own scripts there, e.g. the
    GRUB script (``%config``: an upgrade installs the new one, which reads what the new
    pmemd writes, and keeps an edited one as .rpmsave); man pages end in ``*``, since
    rpmbuild compresses them after install."""
    lines = []
    for placement in placements:
        if placement.target.is_relative_to(sysconfdir):
            kind = "%config" if placement.mode & 0o111 else "%config(noreplace)"
            lines.append(f"{kind} {placement.target}")
        elif mandir is not None and placement.target.is_relative_to(mandir):
            lines.append(f"{placement.target}*")
        else:
            lines.append(str(placement.target))
    return "".join(f"{line}\n" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--destdir", required=True, type=Path, help="install under DIR")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the source tree")
    parser.add_argument("--man-pages", type=Path, metavar="DIR",
                        help="rendered man pages (NAME.SECTION) to install under --mandir")
    parser.add_argument("--file-list", type=Path, metavar="FILE",
                        help="also write the installed files as an RPM %%files list")
    parser.add_argument("--package", choices=PACKAGES, default="pmemd",
                        help="the binary package whose files to install (default: pmemd)")
    for name, help_text in DIRECTORY_OPTIONS.items():
        parser.add_argument(f"--{name}", required=name != "mandir", metavar="DIR",
                            help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dirs = {name: getattr(args, name) for name in DIRECTORY_OPTIONS}
    if args.man_pages is not None and dirs["mandir"] is None:
        print(f"{sys.argv[0]}: --man-pages needs --mandir", file=sys.stderr)
        return 2
    try:
        placements = plan_placements(args.source.resolve(), dirs, args.man_pages, args.package)
    except LayoutError as err:
        print(f"{sys.argv[0]}: {err}", file=sys.stderr)
        return 1
    install(placements, args.destdir)
    if args.file_list is not None:
        args.file_list.write_text(render_file_list(placements, dirs["sysconfdir"], dirs["mandir"]),
                                  encoding="utf-8")
    for placement in placements:
        print(f"{placement.source.name} -> {placement.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
