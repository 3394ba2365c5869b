"""Shell completion of pmemctl and pmemd (shell-completion/), as a user gets it at <Tab>:
real bash with bash-completion loading the script from a completions directory, and real
zsh at a terminal with compinit finding the script on $fpath. The commands, options and
value sets are compared with the programs' own argparse parsers, so that a new option
without a completion fails here. Region names come from the running service (pmemd serve
on the private bus) or, without it, from the config as ``pmemd list-regions`` reads it."""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pmemd.cli import ctl
from pmemd.cli.pmemd import build_parser as pmemd_parser
from tests.conftest import REPO, run_pmemd
from tests.service.conftest import CONFIG, make_machine
from tests.service.harness import (
    BUS_NAME,
    TIMEOUT,
    PrivateBus,
    Running,
    call,
    private_bus,
    serve_argv,
    world_readable_dir,
)

SHELLS = ("bash", "zsh")
PARSERS = {"pmemctl": ctl.build_parser(), "pmemd": pmemd_parser()}
OTHER_CONFIG = """\
version: 1
regions:
  - name: scratch
    size: 1G
    offset: 4G
  - size: 2G
    offset: 6G
    name: logs
    filesystem: {type: ext4, mountpoint: /logs}
"""

# bash: bash-completion's own loader finds the script by the command's name in the
# completions directory (as installed), then the function `complete -p` names runs with
# the line ($1) and its words as bash splits them; COMPREPLY is what <Tab> offers.
BASH_DRIVER = r"""
COMP_LINE=$1 COMP_POINT=${#1}
shift
COMP_WORDS=("$@") COMP_CWORD=$(($# - 1))
source /usr/share/bash-completion/bash_completion
__load_completion "$1" || { echo "no completion loaded for $1" >&2; exit 3; }
spec=$(complete -p "$1") && function=${spec##*-F } && function=${function%% *}
"$function" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_words(words: Sequence[str]) -> list[str]:
    """The words of a line as bash gives them to a completion function: "=" is in
    COMP_WORDBREAKS, so ``--config=FILE`` is three words."""
    split: list[str] = []
    for word in words:
        option, equals, value = word.partition("=")
        if equals and option.startswith("--"):
            split += [option, "=", *([value] if value else [])]
        else:
            split.append(word)
    return split

# zsh: an interactive zsh on a terminal; compadd, which every completion function ends in,
# also writes each match it adds to a file, and the descriptions it shows beside them (-d)
# to another (calls that only test matches pass through).
ZSHRC = r"""
fpath=({directory} $fpath)
autoload -Uz compinit && compinit -u -D
LISTMAX=100000
compadd() {{
    if (( ${{@[(I)-[OAD]*]}} )); then builtin compadd "$@"; return; fi
    local -a matched
    builtin compadd -O matched "$@"
    (( $#matched )) && print -rl -- "${{matched[@]}}" >> {matches}
    local described=${{@[(i)-d]}}
    (( described < $# )) && print -rl -- "${{(@P)@[described + 1]}}" >> {matches}.described
    builtin compadd "$@"
}}
PS1='%%READY%% '
"""
DONE = b"__COMPLETED__"


@dataclass
class Completer:
    """Completes lines in a fresh shell whose PATH has the real pmemd of this tree (or not),
    on the system bus ``bus`` (default: none there), in a directory with one file and one
    directory; ``etc``: run in a mount namespace with that directory as /etc."""

    home: Path
    bus: str = ""
    with_pmemd: bool = True
    etc: Path | None = None
    stderr: str = field(default="", init=False)
    described: Path | None = field(default=None, init=False)  # zsh: what it shows beside
    seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.bin = self.home / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        (self.bin / "pmemd").write_text(
            f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m pmemd "$@"\n')
        (self.bin / "pmemd").chmod(0o755)
        self.cwd = self.home / "cwd"
        (self.cwd / "adir").mkdir(parents=True, exist_ok=True)
        (self.cwd / "a.yaml").write_text("version: 1\n")

    @property
    def env(self) -> dict[str, str]:
        path = f"{self.bin}:/usr/bin:/bin" if self.with_pmemd else "/usr/bin:/bin"
        return {"HOME": str(self.home), "ZDOTDIR": str(self.home), "PATH": path,
                "TERM": "xterm", "LANG": "C.UTF-8",
                "DBUS_SYSTEM_BUS_ADDRESS": self.bus or f"unix:path={self.home}/no-bus",
                "BASH_COMPLETION_USER_DIR": str(self.home / "bash-completion")}

    def wrap(self, argv: list[str]) -> list[str]:
        if self.etc is None:
            return argv
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc && exec "$@"', str(self.etc), *argv]

    def __call__(self, shell: str, words: Sequence[str]) -> list[str]:
        started = time.monotonic()
        try:
            return self.bash(words) if shell == "bash" else self.zsh(" ".join(words))
        finally:
            self.seconds = time.monotonic() - started

    def descriptions(self) -> list[str]:
        """What zsh showed beside the matches of the last line (columns closed up)."""
        assert self.described is not None and self.described.exists()
        return [" ".join(line.split()) for line in self.described.read_text().splitlines()]

    def bash(self, words: Sequence[str]) -> list[str]:
        completions = self.home / "bash-completion" / "completions"
        if not completions.exists():
            completions.parent.mkdir(parents=True)
            completions.symlink_to(REPO / "shell-completion" / "bash")
        done = subprocess.run(self.wrap(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER,
                                         "bash", " ".join(words), *bash_words(words)]),
                              cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr
        self.stderr = done.stderr
        return [line for line in done.stdout.splitlines() if line]

    def zsh(self, line: str) -> list[str]:
        matches = self.home / "matches"
        matches.unlink(missing_ok=True)
        self.described = matches.with_name("matches.described")
        self.described.unlink(missing_ok=True)
        (self.home / ".zshrc").write_text(ZSHRC.format(
            directory=REPO / "shell-completion" / "zsh", matches=matches))
        controller, terminal = pty.openpty()
        process = subprocess.Popen(self.wrap(["zsh", "-i", "-d"]), stdin=terminal,
                                   stdout=terminal, stderr=terminal, cwd=self.cwd,
                                   env=self.env, start_new_session=True)
        os.close(terminal)
        try:
            screen = read_until(controller, b"%READY%")
            # <Tab> on the line, then wipe it (^U) and say so after the completion ran
            os.write(controller, line.encode() + b"\t\x15print -r -- __COMPLE''TED__\n")
            screen = read_until(controller, DONE)
            self.stderr = screen.decode(errors="replace")
            os.write(controller, b"exit\n")
            process.wait(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(controller)
        found = matches.read_text().splitlines() if matches.exists() else []
        return list(dict.fromkeys(found))  # zsh lists a match added twice once


def read_until(controller: int, marker: bytes) -> bytes:
    """What the terminal shows until ``marker`` (not as typed: quoted in the echo)."""
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while marker not in seen.replace(b"''", b""):
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = select.select([controller], [], [], 1)
        if ready:
            seen += os.read(controller, 65536)
    return seen


@pytest.fixture
def complete(tmp_path: Path) -> Completer:
    return Completer(tmp_path / "home")


# --- the parsers' surface -----------------------------------------------------------------


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def value_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options that take a value (the next word), with their metavar."""
    return [a for a in parser._actions if a.option_strings and a.nargs is None
            and not isinstance(a, argparse._VersionAction)]


# (program, command or "" for the words before one)
COMMANDS = [(program, command) for program, parser in PARSERS.items()
            for command in ["", *subparsers(parser)]]
VALUE_OPTIONS = [(program, command, action.option_strings[-1], action.metavar)
                 for program, command in COMMANDS
                 for action in value_options(PARSERS[program] if not command
                                             else subparsers(PARSERS[program])[command])]


def parser_of(program: str, command: str) -> argparse.ArgumentParser:
    return subparsers(PARSERS[program])[command] if command else PARSERS[program]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("program", PARSERS)
def test_every_command_of_the_parser_is_offered(complete: Completer, shell: str,
                                                program: str) -> None:
    assert sorted(complete(shell, [program, ""])) == sorted(subparsers(PARSERS[program]))


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("program", "command"), COMMANDS, ids=lambda v: v or "-")
def test_every_option_of_each_command_is_offered(complete: Completer, shell: str,
                                                 program: str, command: str) -> None:
    words = [program, *([command] if command else []), "-"]
    assert sorted(complete(shell, words)) == sorted(options(parser_of(program, command)))


@pytest.mark.parametrize("shell", SHELLS)
def test_a_positional_with_choices_offers_them(complete: Completer, shell: str) -> None:
    choices = [(program, command, action.choices) for program, command in COMMANDS if command
               for action in parser_of(program, command)._actions
               if not action.option_strings and action.choices]
    assert choices  # pmemctl trial ACTION
    for program, command, values in choices:
        assert sorted(complete(shell, [program, command, ""])) == sorted(values)
        assert complete(shell, [program, command, "r"]) == ["retry"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("program", "command", "option", "metavar"), VALUE_OPTIONS,
                         ids=lambda v: v or "-")
def test_an_options_value_is_completed_as_its_kind(complete: Completer, shell: str,
                                                   program: str, command: str, option: str,
                                                   metavar: str) -> None:
    """A FILE is a file, a DIR a directory; other values (SECONDS, SIZE, ADDRESS) offer
    nothing: never the options or commands, as if the value were the next word."""
    words = [program, *([command] if command else []), option, ""]
    offered = sorted(complete(shell, words))
    expected = {"FILE": ["a.yaml", "adir"], "DIR": ["adir"]}.get(metavar, [])
    assert offered == expected


@pytest.mark.parametrize("shell", SHELLS)
def test_the_word_after_an_options_value_is_a_command_or_option_again(
        complete: Completer, shell: str) -> None:
    assert "status" in complete(shell, ["pmemctl", "--timeout", "5", ""])
    assert "status" in complete(shell, ["pmemctl", "--timeout=5", ""])
    assert "--json" in complete(shell, ["pmemd", "memmap", "--alignment", "2M", "-"])
    assert complete(shell, ["pmemctl", "validate", "a"]) == ["a.yaml", "adir"]


# --- region names -------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_pmemd_offers_the_regions_of_the_config_it_will_read(complete: Completer,
                                                             shell: str, tmp_path: Path) -> None:
    root = make_machine(tmp_path)  # its /etc/pmemd.yaml: data, fast-log
    other = tmp_path / "other.yaml"
    other.write_text(OTHER_CONFIG)
    assert sorted(complete(shell, ["pmemd", "verify-dax", "--root", str(root), ""])) == \
        ["data", "fast-log"]
    assert sorted(complete(shell, ["pmemd", "make-filesystem", "--root", str(root),
                                   "--config", str(other), ""])) == ["logs", "scratch"]
    assert complete(shell, ["pmemd", "make-filesystem", "-v", f"--config={other}", "s"]) == \
        ["scratch"]
    spaced = tmp_path / "my configs" / "pmemd.yaml"
    spaced.parent.mkdir()
    spaced.write_text(OTHER_CONFIG)
    for typed in (f'"{spaced}"', f"'{spaced}'", str(spaced).replace(" ", "\\ ")):
        assert sorted(complete(shell, ["pmemd", "verify-dax", "--config", typed, ""])) == \
            ["logs", "scratch"], typed
    # the region is the only positional (zsh offers the options instead)
    after = complete(shell, ["pmemd", "verify-dax", "--root", str(root), "data", ""])
    assert [word for word in after if not word.startswith("-")] == []


@pytest.mark.parametrize("shell", SHELLS)
def test_pmemctl_offers_the_regions_of_the_running_service(
        tmp_path: Path, shell: str, bus: PrivateBus, service: Running) -> None:
    # no pmemd on PATH (and no /etc/pmemd.yaml on this host): only the service knows them
    complete = Completer(tmp_path / "home", bus=bus.address, with_pmemd=False)
    for command in ("mount", "umount", "format"):
        assert sorted(complete(shell, ["pmemctl", command, ""])) == ["data", "fast-log"]
    assert complete(shell, ["pmemctl", "--no-ask-password", "format", "--force", "f"]) == \
        ["fast-log"]
    if shell == "zsh":  # beside each name: its mountpoint and state, as the service says
        complete(shell, ["pmemctl", "mount", ""])
        assert complete.descriptions() == ["data -- /pmem (ready)",
                                           "fast-log -- /pmem-log (missing)"]
    after = complete(shell, ["pmemctl", "mount", "data", ""])
    assert [word for word in after if not word.startswith("-")] == []


@pytest.mark.parametrize("shell", SHELLS)
def test_without_the_service_pmemctl_offers_the_regions_of_etc_pmemd_yaml(
        tmp_path: Path, shell: str, etc: Path) -> None:
    complete = Completer(tmp_path / "home", etc=etc)  # no bus at all
    assert sorted(complete(shell, ["pmemctl", "umount", ""])) == ["logs", "scratch"]
    assert complete.stderr.count("rror") == 0
    if shell == "zsh":
        assert complete.descriptions() == ["scratch -- no filesystem", "logs -- /logs"]


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """An /etc whose pmemd.yaml declares other regions than the service's."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "pmemd.yaml").write_text(OTHER_CONFIG)
    return tmp_path / "etc"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_tab_never_starts_the_service(tmp_path: Path, shell: str, etc: Path) -> None:
    """The service is bus-activatable but not running: the config answers, at once, and
    the service is still not running after the <Tab>."""
    workdir = world_readable_dir("pmemd-completion-")
    try:
        with private_bus(workdir, activation=serve_argv(make_machine(workdir))) as bus:
            complete = Completer(tmp_path / "home", bus=bus.address, etc=etc)
            assert sorted(complete(shell, ["pmemctl", "mount", ""])) == ["logs", "scratch"]
            owned = call(bus.address, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "NameHasOwner", "s", [BUS_NAME],
                         destination="org.freedesktop.DBus").ok()
            assert owned == [False]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_service_that_never_answers_costs_seconds_and_prints_nothing(
        tmp_path: Path, shell: str, etc: Path, bus: PrivateBus, service: Running) -> None:
    """The service owns its name but is stopped (SIGSTOP): busctl's timeout ends the wait,
    the config is the answer, and nothing is written to the terminal."""
    complete = Completer(tmp_path / "home", bus=bus.address, etc=etc)
    service.process.send_signal(signal.SIGSTOP)
    try:
        assert sorted(complete(shell, ["pmemctl", "mount", ""])) == ["logs", "scratch"]
    finally:
        service.process.send_signal(signal.SIGCONT)
    # busctl's own default would be 25 s; the margin is for a loaded machine
    assert 2 <= complete.seconds < 15
    if shell == "bash":
        assert complete.stderr == ""
    else:
        assert "busctl" not in complete.stderr and "pmemd" not in complete.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_no_service_and_no_config_offer_nothing_and_print_nothing(complete: Completer,
                                                                  shell: str) -> None:
    complete.with_pmemd = False
    assert complete(shell, ["pmemctl", "format", ""]) == []
    assert complete(shell, ["pmemd", "verify-dax", "--root", "/nonexistent", ""]) == []
    if shell == "bash":
        assert complete.stderr == ""


# --- pmemd list-regions, what the completions read ----------------------------------------


def test_list_regions_prints_names_and_mountpoints(tmp_path: Path) -> None:
    config = tmp_path / "pmemd.yaml"
    config.write_text(OTHER_CONFIG)
    done = run_pmemd("list-regions", "--config", str(config))
    assert (done.returncode, done.stdout, done.stderr) == (0, "scratch\t\nlogs\t/logs\n", "")
    root = make_machine(tmp_path)
    assert run_pmemd("list-regions", "--root", str(root)).stdout == \
        "data\t/pmem\nfast-log\t/pmem-log\n"
    assert CONFIG.count("- name:") == 2


def test_list_regions_of_a_config_with_a_bad_region_lists_the_others(tmp_path: Path) -> None:
    config = tmp_path / "pmemd.yaml"
    config.write_text(OTHER_CONFIG + "  - name: Bad_Name\n    size: 1G\n    offset: 8G\n")
    done = run_pmemd("list-regions", "--config", str(config))
    assert done.returncode == 3
    assert done.stdout == "scratch\t\nlogs\t/logs\n"
    assert "1 problem(s) in the config" in done.stderr
    missing = run_pmemd("list-regions", "--config", str(tmp_path / "none.yaml"))
    assert (missing.returncode, missing.stdout) == (3, "")
