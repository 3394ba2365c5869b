"""The role pmemd.pmemd.pmemd through ansible-playbook, on this machine, against the real
pmemd service on a private bus: the README's example playbook (ansible/examples/pmemd.yml)
with this machine as its one host, over a copy of examples/machines/qemu-2g-pmem with
systemd-boot (region ``data`` booted and mounted with DAX).

    .venv/bin/python -m tests.ansible.role [ANSIBLE_PLAYBOOK]

Nothing reboots: ``pmemd_reboot_ok`` is forced false (an extra variable), and every change
lands in the machine tree (the service runs with ``--root``; ``pmemd`` on the play's PATH is
a wrapper adding ``--root``). The runs, each judged by the play's recap and results:
check mode with a second region (changed, nothing written), the real run (changed, reboot
required, verified), the same again (changed=0), an invalid region (fails with pmemd's
located error), then ``pmemd_state: absent`` twice (options taken off, then nothing to do).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.ansible.capture import DATA, FAST_LOG, ONE_REGION, TWO_REGIONS
from tests.service.conftest import make_machine
from tests.service.harness import REPO, PrivateBus, serving, world_readable_dir

PLAYBOOK = REPO / "ansible/examples/pmemd.yml"
DEFAULT_PLAYBOOK_COMMAND = REPO / "build/ansible-venv-2.14.18/bin/ansible-playbook"
# ansible-core has no JSON stdout callback of its own (community.general has): this one
# prints every task's result and the recap as one document.
CALLBACK = """
import json
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'pmemd_test_json'

    def __init__(self):
        super().__init__()
        self.tasks = []

    def _record(self, result, **flags):
        found = dict(result._result, **flags)
        self.tasks.append({'task': {'name': result._task.name},
                           'hosts': {result._host.get_name(): found}})

    def v2_runner_on_ok(self, result, **_):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        document = {'plays': [{'tasks': self.tasks}],
                    'stats': {h: stats.summarize(h) for h in sorted(stats.processed)}}
        self._display.display(json.dumps(document, default=str))
"""
WRAPPER = """#!/bin/sh
# pmemd on the test's machine tree: every command gets --root
command=$1
shift
PYTHONPATH={repo} exec {python} -m pmemd "$command" --root {root} "$@"
"""


class Play:
    def __init__(self, command: Path, workdir: Path, bus: PrivateBus, root: Path) -> None:
        self.command = command
        self.root = root
        bindir = workdir / "bin"
        bindir.mkdir()
        wrapper = bindir / "pmemd"
        wrapper.write_text(WRAPPER.format(repo=REPO, python=sys.executable, root=root))
        wrapper.chmod(0o755)
        callbacks = workdir / "callbacks"
        callbacks.mkdir()
        (callbacks / "pmemd_test_json.py").write_text(CALLBACK)
        self.inventory = workdir / "inventory.ini"
        self.inventory.write_text("[pmem]\nlocalhost ansible_connection=local "
                                  "ansible_python_interpreter=/usr/bin/python3\n")
        self.env = {**bus.env, "PATH": f"{bindir}:{os.environ['PATH']}",
                    "ANSIBLE_COLLECTIONS_PATH": str(REPO / "ansible"),
                    "ANSIBLE_STDOUT_CALLBACK": "pmemd_test_json",
                    "ANSIBLE_CALLBACK_PLUGINS": str(callbacks),
                    "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
                    "ANSIBLE_REMOTE_TEMP": str(workdir / "tmp"), "ANSIBLE_NOCOLOR": "1"}

    def run(self, what: str, *options: str, **variables: Any) -> dict[str, Any]:
        """One ansible-playbook run of the example playbook; its JSON document."""
        extra = {"pmemd_package": "", "pmemd_reboot_ok": False, "ansible_become": False,
                 **variables}
        argv = [str(self.command), "-i", str(self.inventory), str(PLAYBOOK), "-e",
                json.dumps(extra), *options]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)
        document = playbook_document(what, done)
        stats = document["stats"]["localhost"]
        print(f"{what}: exit {done.returncode}, changed={stats['changed']}, "
              f"failures={stats['failures']}", file=sys.stderr)
        return document

    def config(self) -> str:
        return (self.root / "etc/pmemd.yaml").read_text()


def playbook_document(what: str, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON document the callback printed for one ansible-playbook run."""
    try:
        document: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"{what}: no JSON from ansible-playbook (exit "
                             f"{done.returncode}): {done.stdout[-3000:]}"
                             f"{done.stderr[-3000:]}") from None
    return document


def result(document: dict[str, Any], task: str) -> dict[str, Any]:
    """The result for localhost of the last task named ``task``."""
    found = [t["hosts"]["localhost"] for play in document["plays"] for t in play["tasks"]
             if t["task"]["name"] == task and "localhost" in t["hosts"]]
    assert found, f"no task {task!r}"
    return found[-1]  # type: ignore[no-any-return]


def stats(document: dict[str, Any]) -> dict[str, int]:
    return document["stats"]["localhost"]  # type: ignore[no-any-return]


CONFIGURE = "Configure pmemd (/etc/pmemd.yaml, then the boot configuration)"
CHECK = "Check that the host is as declared"
REMOVE = "Take pmemd's options off the boot configuration"


def drive(play: Play) -> None:
    two = {"pmemd_regions": [DATA, FAST_LOG], "pmemd_boot": {}}

    checked = play.run("check mode, a second region", "--check", "--diff", **two)
    configured = result(checked, CONFIGURE)
    assert stats(checked)["failures"] == 0 and configured["changed"], configured
    assert configured["reboot_required"] and configured["memmap"]["after"] == [
        "memmap=512M!1G", "memmap=256M!1536M"], configured["memmap"]
    assert play.config() == ONE_REGION  # nothing written

    first = play.run("a second region", **two)
    configured = result(first, CONFIGURE)
    assert stats(first)["failures"] == 0 and configured["changed"]
    assert configured["state"] == "reboot-required", configured["state"]
    assert play.config() == TWO_REGIONS
    assert result(first, "Note whether the host (still) needs a reboot")["ansible_facts"] == {
        "pmemd_reboot_required": True}
    assert "set pmemd_reboot_ok: true" in result(first, "Say that the host needs a reboot")["msg"]

    again = play.run("the same again", **two)
    assert stats(again)["changed"] == 0 and stats(again)["failures"] == 0, stats(again)

    bad = play.run("an invalid region", pmemd_regions=[{**DATA, "size": "3X"}])
    failed = result(bad, CONFIGURE)
    assert stats(bad)["failures"] == 1 and failed.get("failed"), failed
    assert "/etc/pmemd.yaml:8:12: regions[0].size: '3X' is not a size" in failed["msg"], \
        failed["msg"]
    assert play.config() == TWO_REGIONS

    typo = play.run("a misspelt key", pmemd_regions=[{**DATA, "on_boot": "keep"}])
    [refused] = [t["hosts"]["localhost"] for t in typo["plays"][0]["tasks"]
                 if t["hosts"]["localhost"].get("failed")]
    assert "on_boot" in refused["msg"] and stats(typo)["failures"] == 1, refused
    assert play.config() == TWO_REGIONS  # refused by the role's argument spec

    removed = play.run("pmemd_state: absent", pmemd_state="absent")
    removal = result(removed, REMOVE)
    assert removal["rc"] == 5 and removal["changed"], removal
    assert stats(removed)["failures"] == 0
    gone = play.run("pmemd_state: absent again", pmemd_state="absent")
    assert result(gone, REMOVE)["rc"] == 0 and stats(gone)["changed"] == 0, stats(gone)


def main() -> int:
    command = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PLAYBOOK_COMMAND
    workdir = world_readable_dir("pmemd-ansible-role-")
    try:
        root = make_machine(workdir, ONE_REGION, systemd_boot=True)
        bus = PrivateBus(workdir).start()
        try:
            with serving(bus, root):
                drive(Play(command, workdir, bus, root))
        finally:
            bus.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("the role: every run as expected", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
