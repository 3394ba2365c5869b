"""The README's fleet playbook is the one the fleet test runs (ansible/examples/pmemd.yml),
and the collection's role takes every variable the playbook sets."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "ansible/examples"
SPECS = REPO / "ansible/ansible_collections/pmemd/pmemd/roles/pmemd/meta/argument_specs.yml"


def fenced(section: str, language: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text[text.index(section):]
    body = body[:body.index("\n## ", 1)] if "\n## " in body[1:] else body
    return re.findall(rf"^```{language}\n(.*?)^```$", body, flags=re.S | re.M)


def test_the_readme_shows_the_example_playbook_and_inventory_as_they_are() -> None:
    assert fenced("### The fleet playbook", "yaml") == [(EXAMPLES / "pmemd.yml").read_text()]
    assert fenced("### The fleet playbook", "ini") == [(EXAMPLES / "inventory.ini").read_text()]


def test_the_playbook_sets_only_variables_the_role_declares() -> None:
    [play] = yaml.safe_load((EXAMPLES / "pmemd.yml").read_text())
    declared = yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]
    assert set(play["vars"]) <= set(declared), set(play["vars"]) - set(declared)
    assert play["serial"] == 1 and play["max_fail_percentage"] == 0
