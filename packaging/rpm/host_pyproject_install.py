#!/usr/bin/python3
"""Install a wheel into an RPM buildroot the way Fedora's ``%pyproject_install`` lays it out
(``/usr/lib/pythonX.Y/site-packages``, scripts in ``/usr/bin``), on a host whose rpm lacks
pyproject-rpm-macros. Used only through ``debian-host.macros``; a Fedora build uses the real
macro.

    host_pyproject_install.py WHEEL_DIR BUILDROOT
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    wheel_dir, buildroot = Path(argv[0]), Path(argv[1])
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        print(f"expected one wheel in {wheel_dir}, found {len(wheels)}", file=sys.stderr)
        return 1
    paths = sysconfig.get_paths(scheme="posix_prefix", vars={"base": "/usr", "platbase": "/usr"})
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data", "headers")
              if key in paths}
    scheme.setdefault("headers", paths["include"])
    destination = SchemeDictionaryDestination(
        scheme, interpreter=sys.executable, script_kind="posix", destdir=str(buildroot),
        bytecode_optimization_levels=())
    with WheelFile.open(wheels[0]) as source:
        install(source, destination, {"INSTALLER": b"rpm\n"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
