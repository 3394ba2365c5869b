"""Capture what busctl prints when it talks to the real pmemd service, for the unit tests
of the Ansible collection (``ansible/ansible_collections/pmemd/pmemd``).

    .venv/bin/python -m tests.ansible.capture      # rewrites tests/unit/fixtures/busctl/

``pmemd serve`` runs on a private bus with the shipped policy (:mod:`tests.service.harness`)
over a copy of the qemu-2g-pmem machine with systemd-boot (``memmap=512M!1G`` booted,
``/dev/pmem0`` mounted with DAX at ``/pmem``). Every call is made with the exact command
line the collection's modules use (built by its ``module_utils/pmemd_bus.py``), configs
are rendered by its ``module_utils/pmemd_render.py``, and each fixture holds that command
line, busctl's exit status, standard output and standard error — with one change: the
machine's directory is cut out of paths, so ``/etc/pmemd.yaml`` reads as on a real host.

The calls walk the states the modules meet: changes pending, reboot required, converged,
degraded, an invalid config, access denied (``nobody``), and no service at all.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.service.conftest import make_machine
from tests.service.harness import REPO, PrivateBus, as_nobody, start_service, world_readable_dir

COLLECTION = REPO / "ansible/ansible_collections/pmemd/pmemd"
FIXTURES = COLLECTION / "tests/unit/fixtures/busctl"
TIMEOUT = 120


def _load(name: str) -> ModuleType:
    path = COLLECTION / "plugins/module_utils" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUS = _load("pmemd_bus")
RENDER = _load("pmemd_render")

DATA = {"name": "data", "size": "512M", "offset": "1G",
        "filesystem": {"type": "xfs", "mountpoint": "/pmem"}}
FAST_LOG = {"name": "fast-log", "size": "256M", "offset": "1536M",
            "filesystem": {"type": "ext4", "mountpoint": "/pmem-log", "options": ["noatime"],
                           "on-boot": "keep"}}
# The configs of the unit tests (rendered as pmemd_config renders its options).
TWO_REGIONS = RENDER.render_config([DATA, FAST_LOG])
ONE_REGION = RENDER.render_config([DATA])
BAD_SIZE = RENDER.render_config([{**DATA, "size": "3X"}])
TOO_BIG = RENDER.render_config([{"name": "big", "size": "4G"}])
# Region data booted and mounted, but declared at another mountpoint: degraded.
MOVED = RENDER.render_config([{**DATA, "filesystem": {"type": "xfs", "mountpoint": "/pmem2"}}])


class Capture:
    def __init__(self, bus: PrivateBus, root: Path) -> None:
        self.bus = bus
        self.root = root
        self.written: list[str] = []

    def clean(self, text: str) -> str:
        return text.replace(str(self.root), "")

    def save(self, name: str, argv: Sequence[str], done: subprocess.CompletedProcess[str],
             note: str) -> None:
        document = {"note": note, "argv": list(argv), "rc": done.returncode,
                    "stdout": self.clean(done.stdout), "stderr": self.clean(done.stderr)}
        (FIXTURES / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")
        self.written.append(name)
        print(f"{name}: rc {done.returncode}", file=sys.stderr)

    def busctl(self, name: str, note: str, path: str, interface: str, member: str,
               signature: str = "", args: Sequence[Any] = (), *, nobody: bool = False,
               timeout: int = BUS.QUERY_TIMEOUT) -> Any:
        """One call, as pmemd_bus.Bus makes it; its reply's values (None on an error)."""
        argv = BUS.busctl_argv("busctl", path, interface, member, signature, args, timeout)
        run = as_nobody(argv) if nobody else argv
        done = subprocess.run(run, env={**self.bus.env, **BUS.DEBUG_ENVIRONMENT},
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        self.save(name, argv, done, note)
        return BUS.parse_reply(done.stdout) if done.returncode == 0 else None

    def manager(self, name: str, note: str, member: str, signature: str = "",
                args: Sequence[Any] = (), **options: Any) -> Any:
        return self.busctl(name, note, BUS.MANAGER_PATH, BUS.MANAGER_INTERFACE, member,
                           signature, args, **options)

    def properties(self, name: str, note: str, path: str = BUS.MANAGER_PATH,
                   interface: str = BUS.MANAGER_INTERFACE) -> Any:
        return self.busctl(name, note, path, BUS.PROPERTIES_INTERFACE, "GetAll", "s",
                           [interface])


def capture_all(bus: PrivateBus, root: Path) -> list[str]:
    c = Capture(bus, root)
    change = BUS.CHANGE_TIMEOUT
    state = "two regions on disk; fast-log not yet on the boot entry"
    c.properties("manager-changes-pending", f"GetAll Manager: {state}")
    c.manager("plan-changes-pending", f"GetPlan: {state}", "GetPlan")
    c.manager("list-regions-changes-pending", f"ListRegions: {state}", "ListRegions")
    c.properties("region-data", f"GetAll region data: {state}", "/io/pmemd1/region/data",
                 BUS.REGION_INTERFACE)
    c.properties("region-fast-log", f"GetAll region fast-log: {state}",
                 "/io/pmemd1/region/fast_2dlog", BUS.REGION_INTERFACE)
    c.manager("validate-two-regions", "Validate the two-region config", "Validate", "s",
              [TWO_REGIONS])
    c.manager("validate-bad-size", "Validate a region of size 3X", "Validate", "s",
              [BAD_SIZE])
    c.manager("validate-too-big", "Validate a 4G region on a 2G machine", "Validate", "s",
              [TOO_BIG])
    c.manager("validate-dashes", "Validate a document starting with ---", "Validate", "s",
              ["---\n" + ONE_REGION])
    c.manager("setconfig-denied", "SetConfig as nobody (no polkit: root only)", "SetConfig",
              "sb", [ONE_REGION, False], nobody=True, timeout=change)
    c.manager("setconfig-bad-size", "SetConfig with a region of size 3X", "SetConfig", "sb",
              [BAD_SIZE, False], timeout=change)
    c.manager("apply-dry-run-changes-pending", f"Apply(dry_run=true): {state}", "Apply", "b",
              [True], timeout=change)
    c.manager("apply-changes-pending", f"Apply(dry_run=false): {state}", "Apply", "b",
              [False], timeout=change)

    state = "two regions on the boot entry; fast-log not on the running kernel"
    c.properties("manager-reboot-required", f"GetAll Manager: {state}")
    c.manager("plan-reboot-required", f"GetPlan: {state}", "GetPlan")
    c.manager("validate-one-region", "Validate the one-region config", "Validate", "s",
              [ONE_REGION])
    c.manager("planconfig-one-region-from-reboot-required",
              f"PlanConfig(one region): {state}", "PlanConfig", "s", [ONE_REGION])
    c.manager("unknown-method", "A member the service does not have (as a pmemd without "
              "PlanConfig answers PlanConfig)", "NoSuchMethod", "s", [ONE_REGION])
    c.manager("setconfig-one-region", f"SetConfig(one region, apply=false): {state}",
              "SetConfig", "sb", [ONE_REGION, False], timeout=change)

    state = "one region on disk; fast-log's option still on the boot entry"
    c.properties("manager-remove-pending", f"GetAll Manager: {state}")
    c.manager("plan-remove-pending", f"GetPlan: {state}", "GetPlan")
    c.manager("apply-remove-pending", f"Apply(dry_run=false): {state}", "Apply", "b", [False],
              timeout=change)

    state = "one region, booted, mounted with DAX"
    c.properties("manager-converged", f"GetAll Manager: {state}")
    c.manager("plan-converged", f"GetPlan: {state}", "GetPlan")
    c.manager("list-regions-converged", f"ListRegions: {state}", "ListRegions")
    c.manager("planconfig-dashes", f"PlanConfig(a document starting with ---): {state}",
              "PlanConfig", "s", ["---\n" + ONE_REGION])
    c.manager("setconfig-moved", "SetConfig(region data at /pmem2, apply=false)", "SetConfig",
              "sb", [MOVED, False], timeout=change)

    state = "region data declared at /pmem2, mounted at /pmem"
    c.properties("manager-degraded", f"GetAll Manager: {state}")
    c.manager("list-regions-degraded", f"ListRegions: {state}", "ListRegions")
    c.properties("region-data-degraded", f"GetAll region data: {state}",
                 "/io/pmemd1/region/data", BUS.REGION_INTERFACE)

    (root / "etc/pmemd.yaml").write_text(BAD_SIZE)  # an admin's edit, not through pmemd
    c.manager("reload", "Reload after /etc/pmemd.yaml was edited", "Reload")
    state = "/etc/pmemd.yaml declares a region of size 3X"
    c.properties("manager-invalid-config", f"GetAll Manager: {state}")
    c.manager("plan-invalid-config", f"GetPlan: {state}", "GetPlan")
    c.manager("list-regions-invalid-config", f"ListRegions: {state}", "ListRegions")
    return c.written


def main() -> int:
    workdir = world_readable_dir("pmemd-ansible-capture-")
    try:
        root = make_machine(workdir, TWO_REGIONS, systemd_boot=True)
        bus = PrivateBus(workdir).start()
        try:
            service = start_service(bus, root)
            try:
                FIXTURES.mkdir(parents=True, exist_ok=True)
                for stale in FIXTURES.glob("*.json"):
                    stale.unlink()
                written = capture_all(bus, root)
            finally:
                status, err = service.stop()
            assert status == 0 and "Traceback" not in err, err
            capture = Capture(bus, root)
            capture.busctl("service-absent", "GetAll Manager with no service on the bus",
                           BUS.MANAGER_PATH, BUS.PROPERTIES_INTERFACE, "GetAll", "s",
                           [BUS.MANAGER_INTERFACE])
            written += capture.written
        finally:
            bus.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(written)} fixtures in {FIXTURES.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
