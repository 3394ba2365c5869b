"""The man pages, from their one source in docs/man/*.rst: they render with rst2man without
a warning, and they do not drift from the programs. Every subcommand and option the argparse
parsers have is documented (and nothing they lack), every exit status, every config key
and value the parser knows; every config example in pmemd.yaml(5) is a valid config."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from pmemd.cli import ctl
from pmemd.cli.exits import Exit
from pmemd.cli.pmemd import build_parser
from pmemd.core import model
from pmemd.core.config import parse_config
from pmemd.errors import ConfigError
from tests.packaging.conftest import REPO

MAN = REPO / "docs" / "man"
PAGES = sorted(MAN.glob("*.rst"))


def section(page: str, title: str) -> str:
    """The text of a top-level section (a title underlined with '=')."""
    match = re.search(rf"^{re.escape(title)}\n=+\n(.*?)(?=^[^\n]+\n=+\n|\Z)", page, re.M | re.S)
    assert match, f"no {title} section"
    return match[1]


def documented_options(text: str) -> set[str]:
    """Options of the rst option lists in ``text`` (lines that start with '-')."""
    return {option for line in text.splitlines() if line.startswith("-")
            for option in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", line)}


def parser_surface(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """Every subcommand name and every option string of a parser and its subparsers."""
    commands: set[str] = set()
    options: set[str] = set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands.add(name)
                sub_commands, sub_options = parser_surface(sub)
                commands |= sub_commands
                options |= sub_options
    return commands, options


def assert_page_matches_parser(page: str, parser: argparse.ArgumentParser) -> None:
    commands, options = parser_surface(parser)
    documented_commands = set(re.findall(r"^\*\*([a-z][\w-]*)\*\*", section(page, "COMMANDS"),
                                         re.M))
    assert documented_commands == commands
    synopsis = section(page, "SYNOPSIS")
    assert {c for c in commands if f"**{c}**" not in synopsis} == set()
    assert documented_options(section(page, "OPTIONS")) == options


@pytest.mark.parametrize("source", PAGES, ids=lambda p: p.stem)
def test_page_renders_without_warnings(source: Path, tmp_path: Path) -> None:
    name, number = source.stem.rsplit(".", 1)
    out = tmp_path / source.stem
    done = subprocess.run(["rst2man", "--strict", str(source), str(out)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    header = re.search(r'^\.TH "([^"]+)" (\d)', out.read_text(), re.M)
    assert header and (header[1], header[2]) == (name.upper(), number)


def test_pmemd_8_documents_every_command_option_and_exit_status() -> None:
    page = (MAN / "pmemd.8.rst").read_text()
    assert_page_matches_parser(page, build_parser())
    statuses = re.findall(r"^(\d+)$", section(page, "EXIT STATUS"), re.M)
    assert [int(s) for s in statuses] == [int(e) for e in Exit]


def test_pmemctl_1_documents_every_command_and_option() -> None:
    assert_page_matches_parser((MAN / "pmemctl.1.rst").read_text(), ctl.build_parser())


def known_keys(document: str) -> list[str]:
    """The keys the config parser names as known where ``document`` has an unknown one."""
    with pytest.raises(ConfigError) as raised:
        parse_config(document).require()
    found = [re.search(r"known keys: (.*)$", p.message) for p in raised.value.problems]
    keys = [key for match in found if match for key in match[1].split(", ")]
    assert keys, raised.value.render()
    return keys


# One document per mapping of the config, each with an unknown key in that mapping.
PROBES = (
    "version: 1\nzz-probe: 1\n",
    "version: 1\nboot: {zz-probe: 1}\n",
    "version: 1\nmemory: {zz-probe: 1}\n",
    "version: 1\nregions: [{name: a, size: 1G, zz-probe: 1}]\n",
    "version: 1\nregions: [{name: a, size: 1G, filesystem: {type: ext4, mountpoint: /a,"
    " zz-probe: 1}}]\n",
)


def test_pmemd_yaml_5_documents_every_key_and_value() -> None:
    keys_section = section((MAN / "pmemd.yaml.5.rst").read_text(), "KEYS")
    documented = set(re.findall(r"^ *([a-z][\w-]*)\n {4}", keys_section, re.M))
    known = {key for probe in PROBES for key in known_keys(probe)}
    assert known - documented == set()
    for enum in (model.BootloaderChoice, model.RebootPolicy, model.KaslrPolicy,
                 model.FsType, model.OnBoot):
        assert {v.value for v in enum if f"``{v.value}``" not in keys_section} == set()


def test_pmemd_yaml_5_examples_are_valid_configs() -> None:
    examples = re.findall(r"::\n\n((?: {4}.*\n|\n)+)",
                          section((MAN / "pmemd.yaml.5.rst").read_text(), "EXAMPLES"))
    configs = [re.sub(r"^ {4}", "", block, flags=re.M) for block in examples]
    assert len(configs) >= 4
    for text in configs:
        parse_config(text, "pmemd.yaml(5) example").require()
    assert parse_config(configs[0]).require().regions == ()  # the installed file: no region
    installed = parse_config((REPO / "etc" / "pmemd.yaml").read_bytes(),
                             "etc/pmemd.yaml").require()
    assert installed.regions == () and installed.boot == parse_config(configs[0]).require().boot
