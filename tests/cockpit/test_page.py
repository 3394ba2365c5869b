"""pmemd's Cockpit page in a real browser: headless Chromium against the real cockpit-ws
(local session) whose bridge talks to ``pmemd serve`` on the tests' private system bus,
over the D-Bus tests' machine tree (region data booted and mounted with DAX at /pmem,
fast-log declared but not on the command line yet; systemd-boot as the bootloader)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.cockpit.browser import Browser, open_in_shell, wait_for_regions
from tests.cockpit.harness import Cockpit, cockpit_ws
from tests.service.conftest import (
    CONFIG,
    CONVERGED,
    KERNEL,
    MACHINE_ID,
    make_machine,
    record_failed_trial,
)
from tests.service.harness import (
    NOBODY,
    PrivateBus,
    Running,
    call,
    serving,
    start_polkitd,
)
from tests.service.loops import Loop, put_device

MANAGER = ("/io/pmemd1", "io.pmemd1.Manager")
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
# Scripts run in the page to measure it.
PROBES = Path(__file__).resolve().parent / "probes"


@pytest.fixture
def root(workdir: Path) -> Path:
    """The D-Bus tests' machine (data booted and mounted, fast-log not yet on the command
    line) with systemd-boot, so that Apply has a bootloader to write."""
    return make_machine(workdir, systemd_boot=True)


@pytest.fixture
def cockpit(bus: PrivateBus, workdir: Path, service: Running) -> Iterator[Cockpit]:
    with cockpit_ws(bus, workdir) as ws:
        yield ws


def manager_call(bus: PrivateBus, member: str, signature: str = "",
                 body: list[object] | None = None) -> list[object]:
    return call(bus.address, *MANAGER, member, signature, body or []).ok()


def pmemctl(bus: PrivateBus, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pmemd.cli.ctl", *args],
                          env={**os.environ, **bus.env}, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout


def boot_entry(root: Path) -> str:
    return (root / f"boot/loader/entries/{MACHINE_ID}-{KERNEL}.conf").read_text()


def manifests(cockpit: Cockpit) -> dict[str, object]:
    url = f"http://127.0.0.1:{cockpit.port}/cockpit/@localhost/manifests.json"
    with urllib.request.urlopen(url, timeout=30) as reply:
        found: dict[str, object] = json.load(reply)
        return found


# -- the package ---------------------------------------------------------------------------


def bridge_version() -> int:
    done = subprocess.run(["cockpit-bridge", "--version"], capture_output=True, text=True,
                          check=True)
    [version] = [line.split()[1] for line in done.stdout.splitlines()
                 if line.startswith("Version:")]
    return int(version.split(".")[0])


# Manifest "conditions" came with the Python bridge (Cockpit 300); Debian 12's 287 ignores
# them, and there pmemd-cockpit's "Depends: pmemd" is what keeps the page to machines with
# pmemd.
CONDITIONS_SINCE = 300


def test_the_page_is_offered_only_where_pmemd_is_installed(
        bus: PrivateBus, workdir: Path, service: Running) -> None:
    """The manifest's condition, judged by the real bridge: with pmemd's D-Bus activation
    file in /usr/share/dbus-1/system-services the menu has "Persistent memory"; without it
    the package is not offered (by a bridge that knows conditions)."""
    with cockpit_ws(bus, workdir / "with", installed=True) as ws:
        menu = manifests(ws)["pmemd"]
        assert isinstance(menu, dict)
        assert menu["menu"]["index"]["label"] == "Persistent memory"
        assert menu["conditions"] == [
            {"path-exists": "/usr/share/dbus-1/system-services/io.pmemd1.service"}]
    if bridge_version() < CONDITIONS_SINCE:
        pytest.skip(f"cockpit-bridge {bridge_version()} ignores manifest conditions")
    with cockpit_ws(bus, workdir / "without", installed=False) as ws:
        assert "pmemd" not in manifests(ws)


def test_the_shell_lists_the_page_and_shows_it_in_its_frame(
        cockpit: Cockpit, browser: Browser, screenshots: Path) -> None:
    """Cockpit's own shell (cockpit-system) has "Persistent memory" in its menu and runs the
    page in its frame, as an admin reaches it."""
    base = cockpit.url.split("/cockpit/")[0]
    open_in_shell(browser, base)
    wait_for_regions(browser, ["data", "fast-log"])
    browser.driver.switch_to.default_content()
    browser.driver.save_screenshot(str(screenshots / "in-the-shell.png"))


# -- what it shows -------------------------------------------------------------------------


def test_the_banner_and_the_regions_table_say_what_the_service_says(
        bus: PrivateBus, cockpit: Cockpit, browser: Browser, screenshots: Path) -> None:
    browser.open(cockpit.url)
    state = manager_call(bus, "GetPlan")
    assert browser.js("return document.getElementById('banner').dataset.state") == \
        json.loads(str(state[0]))["state"] == "changes-pending"
    assert browser.text("banner-title") == "Changes pending"
    regions = json.loads(pmemctl(bus, "regions", "--json"))
    rows = browser.find_all("#regions tbody tr")
    assert [r.get_attribute("data-region") for r in rows] == [r["Name"] for r in regions]
    for row, region in zip(rows, regions, strict=True):
        cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
        assert cells[0] == region["Name"]
        assert cells[2] == hex(region["Offset"])
        assert cells[3].splitlines() == [region["Device"] or "—", region["Mode"]]
        assert region["Mode"] == "raw"
        assert cells[4] == (region["FilesystemType"] or "—")
        assert cells[5] == (region["Mountpoint"] or "—")
        assert cells[6] == ("on" if region["Dax"] else "off")
        assert cells[7].splitlines() == [region["State"], region["StateReason"]]
    assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == ["512 MiB", "256 MiB"]
    # The plan: the option the next boot adds, and the service's warnings.
    assert "add memmap=256M!1536M — region 'fast-log'" in browser.text("plan-changes")
    codes = [w.get_attribute("data-code") for w in browser.find_all("#plan-warnings li")]
    warnings = call(bus.address, MANAGER[0], "org.freedesktop.DBus.Properties", "Get", "ss",
                    ["io.pmemd1.Manager", "Warnings"]).ok()[0].value
    assert codes == [w[0] for w in warnings] and "kaslr" in codes
    browser.screenshot(screenshots / "changes-pending.png")


@dataclass(frozen=True)
class Segment:
    """One drawn range of the memory map: its data and its box (pixels from its track's
    left edge)."""

    start: int
    size: int
    type: str
    region: str | None
    label: str
    left: float
    width: float


def segments(browser: Browser, row: str) -> list[Segment]:
    found = browser.js((PROBES / "segments.js").read_text(), f".{row}")
    return [Segment(**s) for s in found]


def test_the_memory_map_is_drawn_to_scale_from_the_machines_map(
        bus: PrivateBus, cockpit: Cockpit, browser: Browser) -> None:
    """Each row's segments are the service's ranges (GetMemoryMap: the firmware's, this
    boot's; the Regions for the next boot), and within the populated address space a
    segment's place and width are proportional to its addresses (the 2 GiB of empty
    address space below 4 GiB is drawn as a break, not to scale)."""
    browser.open(cockpit.url)
    firmware, booted = manager_call(bus, "GetMemoryMap")
    assert isinstance(firmware, list) and isinstance(booted, list)
    drawn = segments(browser, "row-firmware")
    assert [(s.start, s.size, s.type) for s in drawn] == \
        [(start, size, kind) for start, size, kind, _label in firmware]
    assert [(s.start, s.size) for s in segments(browser, "row-boot") if s.type != "kernel"] \
        == [(start, size) for start, size, _kind, _label in booted]
    # The kernel image (code to bss: /proc/iomem's 0b000000-0dbfffff) over this boot's RAM.
    [kernel] = [s for s in segments(browser, "row-boot") if s.type == "kernel"]
    assert (kernel.start, kernel.size) == (0xB000000, 0xDC00000 - 0xB000000)
    assert kernel.label == "kernel image: 0xb000000–0xdbfffff, 44 MiB"
    # The big usable range sets the scale (pixels per byte); everything below 2 GiB is in
    # its span, so each segment's left edge and width follow from its addresses.
    big = max(drawn, key=lambda s: s.size)
    per_byte = big.width / big.size
    rows = drawn + segments(browser, "row-boot") + segments(browser, "row-next")
    low = [s for s in rows if s.start + s.size <= 1 << 31]
    assert len(low) >= 8
    for s in low:
        assert abs(s.left - (big.left + per_byte * (s.start - big.start))) < 1.5, s
        if s.size * per_byte > 3:  # drawn at least 2 pixels wide, however small
            assert abs(s.width - per_byte * s.size) < 1.5, s
    # The next boot's regions, named, with their memmap= option on hover and focus.
    next_regions = {s.region: s for s in segments(browser, "row-next") if s.region}
    assert set(next_regions) == {"data", "fast-log"}
    assert (next_regions["fast-log"].start, next_regions["fast-log"].size) == \
        (1536 << 20, 256 << 20)
    assert next_regions["fast-log"].label == \
        "region fast-log (next boot): 0x60000000–0x6fffffff, 256 MiB, memmap=256M!1536M"
    # This boot's emulated pmem range is named after the region that is there.
    assert [s.region for s in segments(browser, "row-boot") if s.region] == ["data"]
    # The empty address space between 2 GiB and the firmware's ranges below 4 GiB: a break.
    assert len(browser.find_all("#map .row-firmware .map-break")) == 1


# qemu's map of a 2 GiB guest (from tests/vm's guest): RAM below 2 GiB, small reserved
# ranges below 4 GiB, and 12 GiB reserved at 0xfd00000000 for the 64-bit PCI window.
QEMU_MAP = [(0, 0x9FC00, "usable"), (0x9FC00, 0x400, "reserved"),
            (0xF0000, 0x10000, "reserved"), (0x100000, 0x7FEE0000, "usable"),
            (0x7FFE0000, 0x20000, "reserved"), (0xFEFFC000, 0x4000, "reserved"),
            (0xFFFC0000, 0x40000, "reserved"), (0xFD00000000, 0x300000000, "reserved")]


def test_a_huge_reserved_range_does_not_squeeze_the_ram_into_a_corner(
        cockpit: Cockpit, browser: Browser) -> None:
    """The scale the page draws with (layout.js), on a real guest's map: the empty 2 GiB
    above the RAM, the empty terabyte before the PCI window and the window's 12 GiB of
    reserved space each get the fixed width of a break; the RAM takes nearly all the rest,
    to scale."""
    browser.open(cockpit.url)
    drawn = browser.js(
        "const s = pmemdLayout.scale(arguments[0].map(([start, size, type]) =>"
        " ({start, size, type})));"
        " return {breaks: s.breaks.map(b => [b.kind, b.width]),"
        "  ram: s.position(0x80000000) - s.position(0), lowEnd: s.position(0x100000000)};",
        QEMU_MAP)
    width = browser.js("return pmemdLayout.BREAK_WIDTH")
    assert drawn["breaks"] == [["gap", width], ["gap", width], ["reserved", width]]
    assert drawn["ram"] > 100 - 4 * width
    assert abs(drawn["lowEnd"] - (100 - 2 * width)) < 1e-9


def test_keyboard_focus_on_a_range_says_its_exact_addresses(
        cockpit: Cockpit, browser: Browser) -> None:
    browser.open(cockpit.url)
    browser.find(".row-next .map-segment[data-region='data']").click()
    body = browser.find("body")
    # Tab moves to the next range: fast-log, whose option the detail line shows.
    body.send_keys(Keys.TAB)
    assert browser.js("return document.activeElement.dataset.region") == "fast-log"
    assert browser.text("map-detail") == \
        "region fast-log (next boot): 0x60000000–0x6fffffff, 256 MiB, memmap=256M!1536M"


# -- what it does --------------------------------------------------------------------------


def type_config(browser: Browser, text: str) -> None:
    area = browser.find("#config-text")
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    browser.js("const t = document.getElementById('config-text'); t.value = arguments[0];"
               " t.dispatchEvent(new Event('input'));", text)


def test_an_error_in_the_edited_config_is_shown_at_its_line_and_enables_nothing(
        root: Path, cockpit: Cockpit, browser: Browser, screenshots: Path) -> None:
    browser.open(cockpit.url)
    browser.until(lambda: browser.text("config-status") == "Valid for this machine.",
                  "the config file was not validated")
    before = (root / "etc/pmemd.yaml").read_bytes()
    bad = CONFIG.replace("size: 256M", "size: 256Q")
    type_config(browser, bad)
    browser.until(lambda: browser.find_all("#config-problems .problem"),
                  "no problem shown for a bad size")
    [problem] = browser.find_all("#config-problems .problem")
    line = bad.splitlines().index("    size: 256Q") + 1
    assert problem.get_attribute("data-line") == str(line)
    assert problem.text.startswith(f"Line {line}, column 14: regions[1].size: '256Q' is not "
                                   "a size")
    marked = browser.find_all("#config-gutter .line.error")
    assert [m.text for m in marked] == [str(line)]
    assert browser.find("#config-text").get_attribute("aria-invalid") == "true"
    assert not browser.find("#config-review").is_enabled()
    # The problem's link puts the cursor on that line.
    problem.find_element(By.CSS_SELECTOR, "button").click()
    start = browser.js("return document.getElementById('config-text').selectionStart")
    assert bad[:start].count("\n") == line - 1
    browser.screenshot(screenshots / "editing-with-an-error.png")
    assert (root / "etc/pmemd.yaml").read_bytes() == before


def test_apply_shows_the_dry_run_then_changes_the_boot_entry(
        root: Path, cockpit: Cockpit, browser: Browser, screenshots: Path) -> None:
    """Apply: the dry run's report first (nothing written), then the change, and the
    banner follows the service's PropertiesChanged to "reboot required" with no reload."""
    browser.open(cockpit.url)
    browser.js("window.notReloaded = true")
    entry = boot_entry(root)
    browser.find("#apply-dry-run").click()
    browser.until(lambda: browser.find("#apply-report").text, "no dry-run report")
    assert "memmap=256M!1536M" in browser.text("apply-report")
    assert boot_entry(root) == entry
    browser.find("#apply-confirm").click()
    browser.until(lambda: browser.js("return document.getElementById('banner').dataset.state")
                  == "reboot-required", "the banner did not become 'reboot required'")
    assert "memmap=512M!1G memmap=256M!1536M" in boot_entry(root)
    assert browser.js("return window.notReloaded") is True
    assert browser.text("banner-title") == "Reboot required"
    assert browser.find("#reboot").is_displayed()
    browser.screenshot(screenshots / "reboot-required.png")
    # Reboot asks first, with Cancel focused.
    browser.find("#reboot").click()
    browser.until(browser.find("#reboot-dialog").is_displayed, "no confirmation")
    assert browser.js("return document.activeElement.id") == "reboot-cancel"
    browser.find("#reboot-cancel").click()
    assert not browser.find("#reboot-dialog").is_displayed()


def test_an_edited_config_is_reviewed_as_a_diff_then_saved_and_applied(
        root: Path, cockpit: Cockpit, browser: Browser) -> None:
    browser.open(cockpit.url)
    browser.until(lambda: browser.text("config-status") == "Valid for this machine.",
                  "the config file was not validated")
    edited = CONFIG.replace("size: 256M", "size: 128M")
    type_config(browser, edited)
    browser.until(lambda: browser.find("#config-review").is_enabled(),
                  "a valid edit did not enable the review")
    browser.find("#config-review").click()
    browser.until(lambda: browser.find("#config-diff").text, "no diff shown")
    assert [line.text for line in browser.find_all("#config-diff .diff-removed")] == \
        ["-     size: 256M"]
    assert [line.text for line in browser.find_all("#config-diff .diff-added")] == \
        ["+     size: 128M"]
    assert "add memmap=128M!1536M" in browser.text("config-diff-plan")
    assert (root / "etc/pmemd.yaml").read_text() == CONFIG  # nothing written yet
    browser.find("#config-apply").click()
    browser.until(lambda: browser.js("return document.getElementById('banner').dataset.state")
                  == "reboot-required", "saving and applying did not reach the boot entry")
    assert (root / "etc/pmemd.yaml").read_text() == edited
    assert "memmap=512M!1G memmap=128M!1536M" in boot_entry(root)
    browser.until(lambda: browser.js(
        "return document.querySelector('#regions tr[data-region=\"fast-log\"] td').textContent")
        == "128 MiB", "the regions table did not follow the new config")


def test_a_change_on_the_bus_updates_the_page_without_reload(
        bus: PrivateBus, root: Path, cockpit: Cockpit, browser: Browser,
        screenshots: Path) -> None:
    """Changes made elsewhere reach the open page through PropertiesChanged, no reload:
    pmemctl's config (only the region this boot runs) makes it converged, editor included;
    then the DAX mount goes (as if remounted without dax) and the page shows region data
    and the machine degraded, with the reason."""
    browser.open(cockpit.url)
    browser.js("window.notReloaded = true")
    manager_call(bus, "SetConfig", "sb", [CONVERGED, False])
    browser.until(lambda: browser.js("return document.getElementById('banner').dataset.state")
                  == "converged", "the banner did not become 'converged'")
    browser.until(lambda: len(browser.find_all("#regions tbody tr")) == 1,
                  "region fast-log stayed in the table")
    browser.until(lambda: browser.find("#config-text").get_attribute("value") == CONVERGED,
                  "the editor did not show the new config file")
    assert browser.text("banner-title") == "Converged"
    browser.screenshot(screenshots / "converged.png")
    mountinfo = root / "proc/self/mountinfo"
    mountinfo.write_text(mountinfo.read_text().replace("dax=always,", ""))
    manager_call(bus, "Reload")
    browser.until(lambda: browser.js("return document.getElementById('banner').dataset.state")
                  == "degraded", "the banner did not become 'degraded'")
    browser.until(lambda: "not-dax" in browser.find("#regions tr[data-region='data']").text,
                  "region data's row did not say not-dax")
    assert browser.text("banner-detail").startswith(
        "data: /pmem (xfs on pmem0) is mounted without DAX")
    assert browser.js("return window.notReloaded") is True
    browser.screenshot(screenshots / "degraded.png")


def test_when_the_service_goes_and_comes_back_the_page_follows(
        bus: PrivateBus, root: Path, workdir: Path, browser: Browser) -> None:
    """pmemd's service leaves the bus while the page is open (as after its idle minute):
    the page asks for it again (bus activation); on this bus nothing can start it, so the
    banner says pmemd is not running and why, and offers nothing. When it runs again, the
    page reads the new instance's state without a reload."""
    with cockpit_ws(bus, workdir) as ws:
        with serving(bus, root):
            browser.open(ws.url)
            browser.js("window.notReloaded = true")
        browser.until(lambda: browser.text("banner-title") == "pmemd is not running",
                      "the page did not notice the service going")
        assert "It could not be started: " in browser.text("banner-detail")
        assert browser.find_all("#banner-actions button") == []
        (root / "etc/pmemd.yaml").write_text(CONVERGED)
        with serving(bus, root):
            browser.until(lambda: browser.js(
                "return document.getElementById('banner').dataset.state") == "converged",
                "the page did not read the service's new instance")
            browser.until(lambda: len(browser.find_all("#regions tbody tr")) == 1,
                          "the regions table is not the new instance's")
        assert browser.js("return window.notReloaded") is True


def test_a_failed_trial_boot_is_in_the_banner_with_its_reason_and_a_retry(
        bus: PrivateBus, root: Path, cockpit: Cockpit, browser: Browser,
        screenshots: Path) -> None:
    """pmemd's state says the last trial boot failed (as pmemd-trial.service records it):
    the banner says so with the reason, and offers the retry (RetryTrial)."""
    browser.open(cockpit.url)
    record_failed_trial(root, "the trial boot did not come up", "kernel-install")
    manager_call(bus, "Reload")
    browser.until(lambda: browser.js("return document.getElementById('banner').dataset.trial")
                  == "failed", "the banner did not show the failed trial")
    assert "The last trial boot failed; the machine came back on its previous options. " \
        "(the trial boot did not come up)" in browser.text("banner-detail")
    assert [b.text for b in browser.find_all("#banner-actions button")] == \
        ["Retry the trial boot"]
    browser.screenshot(screenshots / "trial-failed.png")


def test_format_asks_first_naming_the_device_and_the_data_it_destroys(
        cockpit: Cockpit, browser: Browser) -> None:
    browser.open(cockpit.url)
    browser.find("#regions tr[data-region='data'] button[aria-label='Format data']").click()
    dialog = browser.find("#format-dialog")
    browser.until(dialog.is_displayed, "no confirmation")
    assert browser.text("format-title") == "Format /dev/pmem0?"
    assert browser.text("format-text") == (
        "A new xfs filesystem is made on /dev/pmem0 (region data, 512 MiB at 0x40000000), "
        "mounted at /pmem. Everything stored on it is destroyed and cannot be recovered.")
    # Cancel has the focus: Enter does not destroy anything.
    assert browser.js("return document.activeElement.id") == "format-cancel"
    browser.find("#format-cancel").click()
    assert not dialog.is_displayed()


def test_format_confirmed_makes_a_fresh_filesystem_on_the_regions_device(
        bus: PrivateBus, root: Path, workdir: Path, loops: list[Loop], browser: Browser
        ) -> None:
    """Region data's device is a real (loop) block device, not mounted: Format, confirmed
    in the dialog, makes a fresh xfs on it through the service (mkfs.xfs); nothing is
    reported as failed."""
    loops.append(Loop(workdir / "pmem0.img", 512 << 20))
    put_device(root, loops[0], mounted=False)
    with serving(bus, root), cockpit_ws(bus, workdir) as ws:
        browser.open(ws.url)
        browser.until(lambda: "not-mounted" in
                      browser.find("#regions tr[data-region='data']").text,
                      "region data is not shown as not mounted")
        browser.find("#regions tr[data-region='data'] button[aria-label='Format data']").click()
        browser.until(browser.find("#format-dialog").is_displayed, "no confirmation")
        assert loops[0].blkid("TYPE") == ""
        browser.find("#format-confirm").click()
        browser.until(lambda: loops[0].blkid("TYPE") == "xfs", "no xfs on the device")
        browser.until(lambda: browser.find("#toast").is_displayed(), "no word of it")
        assert browser.js("return document.getElementById('toast').dataset.kind") == "notice"
        assert browser.text("toast-text") == "/dev/pmem0 has a new xfs filesystem."


# -- a session without authority ------------------------------------------------------------


def test_a_session_without_authority_is_read_only_and_shows_access_denied(
        root: Path, workdir: Path, browser: Browser, screenshots: Path) -> None:
    """cockpit-ws and its bridge as nobody; the real polkitd with pmemd's shipped actions
    (auth_admin, and no agent to answer): every action says it needs an administrator, the
    editor is read-only, and trying one shows polkit's AccessDenied as such; nothing
    changes."""
    (workdir / "polkit-bus").mkdir(mode=0o755)
    bus = PrivateBus(workdir / "polkit-bus", polkit=True).start()
    polkitd = start_polkitd(bus, workdir / "polkit-bus")
    try:
        with serving(bus, root), cockpit_ws(bus, workdir, user=NOBODY) as ws:
            browser.open(ws.url)
            assert browser.js("return document.body.dataset.privileged") == "no"
            assert browser.find("#config-text").get_attribute("readonly") is not None
            mount = browser.find("#regions tr[data-region='fast-log'] button")
            assert mount.text.split() == ["Mount", "(needs", "administrator)"]
            # As wide as Cockpit's frame beside its menu: the table still fits.
            browser.resize(1100, 900)
            assert browser.js("const box = document.querySelector('.table-scroll');"
                              " return box.scrollWidth <= box.clientWidth")
            entry = boot_entry(root)
            browser.find("#apply-dry-run").click()  # a dry run needs no authority
            browser.until(lambda: browser.find("#apply-report").text, "no dry-run report")
            browser.find("#apply-confirm").click()
            browser.until(lambda: browser.find("#toast").is_displayed(), "no error shown")
            assert browser.js("return document.getElementById('toast').dataset.error") == \
                ACCESS_DENIED
            assert browser.text("toast-text").startswith(
                "Applying failed. Access denied: this needs an administrator")
            assert boot_entry(root) == entry
            browser.screenshot(screenshots / "without-authority.png")
    finally:
        polkitd.stop()
        bus.stop()


# -- accessibility and widths -----------------------------------------------------------------


@pytest.mark.parametrize(("width", "name"), [(1366, "laptop"), (390, "phone")])
def test_usable_at_laptop_and_phone_widths(cockpit: Cockpit, browser: Browser,
                                           screenshots: Path, width: int, name: str) -> None:
    """Nothing wider than the window: on a phone the map's rows stack their titles and the
    regions table becomes one block per region, each value after its column's name."""
    browser.resize(width, 900)
    browser.open(cockpit.url)
    wider = browser.js(
        "return [...document.querySelectorAll('main *')].filter(e => e.offsetParent &&"
        " !e.closest('pre, dialog') &&"
        " !(e.closest('thead') && e.closest('thead').getBoundingClientRect().width <= 1) &&"
        " e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className)")
    assert wider == []
    assert browser.js("return document.documentElement.scrollWidth") <= \
        browser.js("return window.innerWidth")
    assert browser.js("const box = document.querySelector('.table-scroll');"
                      " return box.scrollWidth <= box.clientWidth")
    track = browser.find(".row-firmware .map-track").rect["width"]
    assert track > width * 0.6
    browser.screenshot(screenshots / f"width-{name}.png")


def test_every_control_has_a_name_and_text_has_contrast(cockpit: Cockpit,
                                                        browser: Browser) -> None:
    browser.open(cockpit.url)
    unnamed = browser.js(
        "return [...document.querySelectorAll('button, textarea, [tabindex]')]"
        ".filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() ||"
        " (e.labels && e.labels.length))).map(e => e.outerHTML)")
    assert unnamed == []
    # WCAG AA: 4.5:1 for the text of the banner, tables, plan and buttons.
    low = browser.js((PROBES / "contrast.js").read_text())
    assert low == []
