"""A fleet for ``tests/vm/test_fleet.py``: guests whose SSH is forwarded on 127.0.0.1 only,
an inventory that pins their host keys, and ``ansible-playbook`` from the host with a JSON
callback (``tests/ansible/role.py``'s), judged by the play's recap and each task's result.
The collection is the one users install: built with ``ansible-galaxy collection build``
and installed from that tarball.

Each guest keeps its step runner (virtio-serial and the 9p share) beside SSH: the test reads
the files it compares byte for byte through it, never through Ansible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ansible.role import CALLBACK, playbook_document
from tests.vm.e2e import REPO, SYSTEM_PATH, Journey
from tests.vm.network import GUEST_NETWORK
from tests.vm.qemu import Guest

# The role's example playbook, the one the README tells readers to copy.
PLAYBOOK = REPO / "ansible/examples/pmemd.yml"
ANSIBLE_CORE = "2.14.18"
# SSH in the guest: the network, then sshd.
OPEN_SSH = GUEST_NETWORK + """\
install -d -m 0700 /root/.ssh
install -m 0600 {key} /root/.ssh/authorized_keys
systemctl enable --now --quiet systemd-networkd.service ssh.service
cat /etc/ssh/ssh_host_ed25519_key.pub
"""


def install_collection(command: Path, directory: Path) -> Path:
    """The collection as its users get it: ``ansible-galaxy collection build`` from the
    checkout, then ``ansible-galaxy collection install`` of that tarball into
    ``directory``; the path to give ``ANSIBLE_COLLECTIONS_PATH``."""
    galaxy = str(command.with_name("ansible-galaxy"))
    source = REPO / "ansible/ansible_collections/pmemd/pmemd"
    built = directory / "built"
    env = {"PATH": f"{command.parent}:{SYSTEM_PATH}", "HOME": str(directory),
           "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1"}
    def run(*argv: str) -> None:
        done = subprocess.run([galaxy, "collection", *argv], capture_output=True, text=True,
                              timeout=300, check=False, env=env)
        if done.returncode != 0:
            raise AssertionError(f"ansible-galaxy collection {' '.join(argv)} exited "
                                 f"{done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    run("build", "--force", "--output-path", str(built), str(source))
    [tarball] = built.glob("pmemd-pmemd-*.tar.gz")
    run("install", "--force", "-p", str(directory / "installed"), str(tarball))
    return directory / "installed"


def ansible_playbook() -> Path:
    """``ansible-playbook`` of the pinned ansible-core venv (``ansible/run-ansible-test venv``
    makes it once, under build/; ``make ansible-test`` uses the same)."""
    done = subprocess.run([str(REPO / "ansible/run-ansible-test"), "venv"], capture_output=True,
                          text=True, timeout=900, check=False,
                          env={**os.environ, "ANSIBLE_CORE": ANSIBLE_CORE})
    if done.returncode != 0:
        raise AssertionError(f"ansible/run-ansible-test venv exited {done.returncode}:\n"
                             f"{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1]) / "bin/ansible-playbook"


@dataclass
class Host:
    """One guest of the fleet, by its inventory name."""

    name: str
    journey: Journey
    port: int
    host_key: str = ""

    @property
    def guest(self) -> Guest:
        return self.journey.guest

    def open_ssh(self, public_key: str) -> None:
        """Let root in with ``public_key``; remember the guest's host key."""
        path = self.guest.put("authorized_keys", public_key)
        step = self.journey.check(OPEN_SSH.format(key=path), "open-ssh")
        self.host_key = step.stdout.split()[0] + " " + step.stdout.split()[1]


@dataclass
class Outcome:
    """One ansible-playbook run: its exit status and the callback's document."""

    what: str
    status: int
    document: dict[str, Any]
    stderr: str

    def stats(self, host: str) -> dict[str, int]:
        """The recap's line of ``host`` (all zeros when the play never reached it)."""
        found: dict[str, int] = self.document["stats"].get(host, {})
        return found or {"ok": 0, "changed": 0, "failures": 0, "unreachable": 0,
                         "skipped": 0, "rescued": 0, "ignored": 0}

    def results(self, host: str) -> list[tuple[str, dict[str, Any]]]:
        """(task name, result) of every task run on ``host``, in order."""
        return [(task["task"]["name"], task["hosts"][host])
                for play in self.document["plays"] for task in play["tasks"]
                if host in task["hosts"]]

    def result(self, host: str, task: str) -> dict[str, Any]:
        """``host``'s result of the last task named ``task``."""
        found = [result for name, result in self.results(host) if name == task]
        assert found, f"{self.what}: no task {task!r} on {host}: " \
                      f"{[name for name, _ in self.results(host)]}"
        return found[-1]

    def failed(self, host: str) -> list[tuple[str, dict[str, Any]]]:
        return [(name, result) for name, result in self.results(host)
                if result.get("failed") or result.get("unreachable")]


class Fleet:
    """The hosts and how to run a playbook on them (files under ``workdir``)."""

    def __init__(self, hosts: list[Host], workdir: Path, command: Path) -> None:
        self.hosts = hosts
        self.workdir = workdir
        self.command = command
        self.key = workdir / "id_ed25519"
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pmemd-fleet",
                            "-f", str(self.key)], check=True, env={"PATH": SYSTEM_PATH})
        callbacks = workdir / "callbacks"
        callbacks.mkdir(exist_ok=True)
        (callbacks / "pmemd_test_json.py").write_text(CALLBACK)
        self.inventory = workdir / "inventory.ini"
        self.runs = 0
        self.known_hosts = workdir / "known_hosts"
        # ssh's control sockets want a short path (AF_UNIX: 108 bytes)
        self.control = Path(tempfile.mkdtemp(prefix="pmemd-ssh-"))
        self.env = {"PATH": f"{command.parent}:{SYSTEM_PATH}", "HOME": str(workdir),
                    "LC_ALL": "C.UTF-8",
                    "ANSIBLE_COLLECTIONS_PATH": str(install_collection(command, workdir)),
                    "ANSIBLE_STDOUT_CALLBACK": "pmemd_test_json",
                    "ANSIBLE_CALLBACK_PLUGINS": str(callbacks),
                    "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
                    "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control),
                    "ANSIBLE_PIPELINING": "1", "ANSIBLE_TIMEOUT": "60",
                    "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}

    def public_key(self) -> str:
        return self.key.with_suffix(".pub").read_text()

    def write_inventory(self) -> None:
        """Hosts on 127.0.0.1 by port, host keys pinned (ssh checks them strictly)."""
        self.known_hosts.write_text("".join(f"[127.0.0.1]:{host.port} {host.host_key}\n"
                                            for host in self.hosts))
        lines = ["# pmemd's fleet test: guests under qemu, SSH forwarded on 127.0.0.1 only",
                 "[pmem]"]
        lines += [f"{host.name} ansible_port={host.port}" for host in self.hosts]
        ssh_args = (f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
                    "-o IdentitiesOnly=yes")
        lines += ["", "[pmem:vars]", "ansible_host=127.0.0.1", "ansible_user=root",
                  # root logs in: the playbook's become has nothing to do (no sudo in the guest)
                  "ansible_become=false",
                  "ansible_python_interpreter=/usr/bin/python3",
                  f"ansible_ssh_private_key_file={self.key}",
                  f"ansible_ssh_common_args='{ssh_args}'", ""]
        self.inventory.write_text("\n".join(lines))

    def run(self, what: str, *options: str, timeout: float = 1800.0,
            **variables: Any) -> Outcome:
        """``ansible-playbook -i INVENTORY ansible/examples/pmemd.yml -e VARIABLES OPTIONS``."""
        argv = [str(self.command), "-i", str(self.inventory), str(PLAYBOOK),
                "-e", json.dumps(variables), *options]
        self.runs += 1
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        # every run's command, JSON document and stderr stay with the test's artifacts
        (self.workdir / f"run-{self.runs:02d}.argv").write_text(" ".join(argv) + "\n")
        (self.workdir / f"run-{self.runs:02d}.json").write_text(done.stdout)
        (self.workdir / f"run-{self.runs:02d}.stderr").write_text(done.stderr)
        outcome = Outcome(what, done.returncode, playbook_document(what, done), done.stderr)
        print(f"{what}: exit {done.returncode}, " + ", ".join(
            f"{host.name} changed={outcome.stats(host.name)['changed']} "
            f"failures={outcome.stats(host.name)['failures']}" for host in self.hosts),
            file=sys.stderr)
        return outcome

    def close(self) -> None:
        shutil.rmtree(self.control, ignore_errors=True)
