#!/usr/bin/python3
"""Run inside the end-to-end guest (by tests/vm/e2e.py): what a user would look at, read
the way a user reads it, printed as one JSON document.

It uses no pmemd code to read the machine (the point is to check pmemd, not to agree with
it): the kernel command line, the /dev/pmem devices from sysfs with their physical start
address, the /dev/disk/by-pmem-address links, the pmem mounts from mountinfo, systemd's view
(is-system-running, failed units, pmemd's generated units), and what pmemd itself says
(pmemctl status, pmemd plan, the io.pmemd1 properties through busctl).

    e2e_guest.py snapshot [--wait]    --wait: let systemd finish starting up first
    e2e_guest.py roundtrip DIR TOKEN  write TOKEN to DIR/e2e-token (O_SYNC), drop caches,
                                      read it back; say whether the file is DAX (statx)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

MANAGER = ["io.pmemd1", "/io/pmemd1", "io.pmemd1.Manager"]
BY_ADDRESS = Path("/dev/disk/by-pmem-address")
PMEM = re.compile(r"pmem[0-9]+")
STATX_ATTR_DAX = 0x00200000
TOKEN_FILE = "e2e-token"


def run(*argv: str, timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return {"status": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def devices() -> dict[str, dict[str, Any]]:
    found = {}
    for block in sorted(Path("/sys/block").iterdir()):
        if not PMEM.fullmatch(block.name):
            continue
        namespace = block / "device"
        found[block.name] = {
            "namespace": namespace.resolve().name,
            "resource": read(namespace / "resource"),
            "size": int(read(block / "size") or 0) * 512,
            "dax": read(block / "queue" / "dax"),
            "node": Path("/dev", block.name).exists(),
        }
    return found


def links() -> dict[str, str]:
    if not BY_ADDRESS.is_dir():
        return {}
    return {link.name: link.resolve().name for link in sorted(BY_ADDRESS.iterdir())}


def unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def pmem_mounts() -> list[dict[str, Any]]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        dash = fields.index("-", 6)
        source = unescape(fields[dash + 2])
        if not source.startswith("/dev/pmem"):
            continue
        mounts.append({"target": unescape(fields[4]), "source": source,
                       "fstype": fields[dash + 1],
                       "options": sorted({*fields[5].split(","), *fields[dash + 3].split(",")})})
    return mounts


def json_of(result: dict[str, Any]) -> Any:
    try:
        return json.loads(result["stdout"])
    except ValueError:
        return None


def snapshot(wait: bool) -> dict[str, Any]:
    state = run("systemctl", "is-system-running", *(["--wait"] if wait else []))
    status = run("pmemctl", "status")
    status_json = run("pmemctl", "status", "--json")
    plan = run("pmemd", "plan")
    plan_json = run("pmemd", "plan", "--json")
    regions_json = run("pmemctl", "regions", "--json")
    return {
        "boot_id": read(Path("/proc/sys/kernel/random/boot_id")),
        "cmdline": Path("/proc/cmdline").read_text().split(),
        "mem_total_kib": int(re.search(r"MemTotal:\s+(\d+)",
                                       Path("/proc/meminfo").read_text())[1]),  # type: ignore[index]
        "devices": devices(),
        "links": links(),
        "mounts": pmem_mounts(),
        "system_state": state["stdout"].strip(),
        "failed_units": run("systemctl", "list-units", "--failed", "--plain", "--no-legend",
                            "--no-pager")["stdout"].split("\n"),
        "pmemd_units": run("systemctl", "list-units", "--all", "--plain", "--no-legend",
                           "--no-pager", "pmemd-*", "*.mount")["stdout"],
        "reboot_required": run("busctl", "get-property", *MANAGER, "RebootRequired")["stdout"],
        "state": run("busctl", "get-property", *MANAGER, "State")["stdout"],
        "pmemctl_status": status,
        "pmemctl_status_json": json_of(status_json),
        "pmemctl_regions_json": json_of(regions_json),
        "pmemd_plan": plan,
        "pmemd_plan_json": json_of(plan_json),
        "run_markers": {name: read(Path(name)) for name in
                        ("/run/reboot-required", "/run/pmemd/reboot-required",
                         "/run/pmemd/degraded")},
    }


def roundtrip(directory: str, token: str) -> dict[str, Any]:
    path = Path(directory, TOKEN_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_SYNC, 0o644)
    try:
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    statx = run("xfs_io", "-r", "-c", "statx -r", str(path))
    match = re.search(r"^stat\.attributes = (0x[0-9a-f]+)$", statx["stdout"], re.MULTILINE)
    attributes = int(match[1], 16) if match else None
    return {"read": path.read_text(), "statx_attributes": attributes,
            "dax": attributes is not None and bool(attributes & STATX_ATTR_DAX),
            "statx": statx}


def main(argv: list[str]) -> int:
    if argv[:1] == ["snapshot"] and argv[1:] in ([], ["--wait"]):
        document = snapshot(wait=argv[1:] == ["--wait"])
    elif argv[:1] == ["roundtrip"] and len(argv) == 3:
        document = roundtrip(argv[1], argv[2])
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
