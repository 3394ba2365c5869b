"""Fixtures for the end-to-end tests: the cached image, guests booted from it, timings.

Artifacts (each guest's serial console, its share with every step's script and output,
``timings.json``) go to ``tests/vm/artifacts/<test>/``. If qemu or the image build cannot
run here, the tests fail and say what is missing; they are never skipped.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm.e2e import ConsoleSlices, DebError, Journey, build_pmemd_deb, cockpit_deb
from tests.vm.image import BIOS, UEFI, Family, Image, ImageError, ensure_base, ensure_with_debs
from tests.vm.network import free_port, network_args
from tests.vm.qemu import Guest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
collect_ignore = ["artifacts", "cache"]

# (test, what, seconds) for the summary at the end of the run
_TIMINGS: list[tuple[str, str, float]] = []


@pytest.fixture(scope="session")
def vm_image() -> Image:
    """The base image (packages, GRUB, step runner), built once and cached."""
    started = time.monotonic()
    try:
        image = ensure_base()
    except ImageError as err:
        pytest.fail(f"the end-to-end test image cannot be built: {err}", pytrace=False)
    if image.build_seconds is None:
        _TIMINGS.append(("session", f"image from the cache {image.path.name}",
                         time.monotonic() - started))
    else:
        _TIMINGS.append(("session", "image build", image.build_seconds))
    return image


@pytest.fixture
def vm_artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's artifact directory, emptied."""
    directory = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def vm_timing(request: pytest.FixtureRequest, vm_artifacts: Path) -> Callable[[str, float], None]:
    """Record a measured duration: printed at the end of the run and kept in timings.json."""
    measured: dict[str, float] = {}

    def record(what: str, seconds: float) -> None:
        measured[what] = round(seconds, 1)
        _TIMINGS.append((request.node.name, what, seconds))
        (vm_artifacts / "timings.json").write_text(json.dumps(measured, indent=2) + "\n")

    return record


@pytest.fixture
def boot_guest(vm_artifacts: Path) -> Iterator[Callable[..., Guest]]:
    """Start guests (``boot_guest(image_path, **Guest options)``); all stopped at the end."""
    guests: list[Guest] = []

    def boot(image: Path, **options: Any) -> Guest:
        guest = Guest(image, vm_artifacts / f"guest{len(guests) + 1}", **options)
        guests.append(guest)
        return guest.start()

    yield boot
    for guest in guests:
        guest.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TIMINGS:
        return
    terminalreporter.section("end-to-end timings (tests/vm)")
    for test, what, seconds in _TIMINGS:
        terminalreporter.write_line(f"{seconds:7.1f} s  {what}  [{test}]")


# --- a guest shared by the scenarios of one module ----------------------------------------


@dataclasses.dataclass
class Trip:
    """The shared guest and what each scenario leaves for the next."""

    journey: Journey
    console: ConsoleSlices
    prepared: float  # seconds to build the .deb and the image with it installed
    web_port: int | None = None  # 127.0.0.1's port forwarded to the guest's Cockpit (9090)
    done: set[int] = dataclasses.field(default_factory=set)
    seen: dict[str, Any] = dataclasses.field(default_factory=dict)

    def require(self, scenario: int) -> None:
        if scenario not in self.done:
            pytest.fail(f"scenario {scenario} did not complete, and this one starts from the "
                        "machine it leaves (see its failure)", pytrace=False)


def guest_trip(tmp_path_factory: pytest.TempPathFactory, name: str, *, max_boots: int,
               timeout: float, family: Family = BIOS, cockpit: bool = False,
               memory: str = "2G") -> Iterator[Trip]:
    """For a module's ``trip`` fixture: one guest booted from the ``family`` image with
    pmemd's .deb from this checkout; its console and steps in ``artifacts/NAME``.
    ``cockpit``: pmemd-cockpit's .deb installed too, and the guest's Cockpit (port 9090)
    reachable from 127.0.0.1 only (``Trip.web_port``)."""
    started = time.monotonic()
    try:
        deb = build_pmemd_deb(tmp_path_factory.mktemp("deb"))
        debs = [deb, cockpit_deb(deb)] if cockpit else [deb]
        image = ensure_with_debs(debs, family=family)
    except (DebError, ImageError) as err:
        pytest.fail(f"the guest {name} cannot be prepared: {err}", pytrace=False)
    web_port = free_port() if cockpit else None
    guest = Guest(image.path, ARTIFACTS / name, max_boots=max_boots, timeout=timeout,
                  uefi=family is UEFI, memory=memory,
                  extra_args=network_args(web_port, 9090) if web_port else ())
    console = ConsoleSlices(guest.console_log)
    guest.start()
    try:
        yield Trip(Journey(guest), console, time.monotonic() - started, web_port=web_port)
    finally:
        guest.close()


@pytest.fixture
def scenario(trip: Trip, vm_artifacts: Path,
             vm_timing: Callable[[str, float], None]) -> Iterator[Trip]:
    """One scenario of a module's shared guest (its ``trip`` fixture): its part of the
    serial console is kept in its artifact directory."""
    trip.console.mark()
    started = time.monotonic()
    try:
        yield trip
    finally:
        trip.console.save(vm_artifacts / "console.log")
        vm_timing("scenario", time.monotonic() - started)
