"""The guest's own Cockpit, seen from the host's Chromium: the guest's network comes up on
qemu's user network (reachable only through 127.0.0.1's forwarded port), cockpit.socket
starts, and a user made for the test logs in through Cockpit's real login page (PAM), as an
admin would; then the shell's "Persistent memory" page (open_in_shell), which is
pmemd-cockpit's."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.cockpit.browser import Browser
from tests.vm.e2e import Journey
from tests.vm.network import GUEST_NETWORK

USER = "pmemd-admin"
# The host reaches the guest as 10.0.2.2, not localhost: Cockpit would send the browser to
# https with a self-signed certificate; plain http on this private forward is enough here.
OPEN_COCKPIT = GUEST_NETWORK + """\
install -d /etc/cockpit
printf '[WebService]\\nAllowUnencrypted = true\\n' >/etc/cockpit/cockpit.conf
id {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
echo '{user}:{password}' | chpasswd
systemctl enable --now --quiet systemd-networkd.service cockpit.socket
dpkg-query -W -f='${{Version}}\\n' cockpit-ws pmemd-cockpit
"""


@dataclass(frozen=True)
class WebConsole:
    port: int
    password: str
    versions: list[str]  # cockpit-ws's and pmemd-cockpit's, as dpkg says

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def open_cockpit(journey: Journey, port: int) -> WebConsole:
    password = secrets.token_urlsafe(12)
    step = journey.check(OPEN_COCKPIT.format(user=USER, password=password), "open-cockpit")
    return WebConsole(port, password, step.stdout.split())


def log_in(browser: Browser, console: WebConsole) -> None:
    """Cockpit's login page, filled in and sent; returns once the shell is there."""
    browser.driver.get(console.base + "/")
    browser.until(lambda: any(e.is_displayed() for e in browser.find_all("#login-user-input")),
                  "no Cockpit login page")
    browser.find("#login-user-input").send_keys(USER)
    browser.find("#login-password-input").send_keys(console.password)
    browser.find("#login-button").click()

    def logged_in() -> bool:
        refused = [e.text for e in browser.find_all("#login-error-message") if e.is_displayed()]
        assert not any(refused), f"Cockpit refused the login: {refused}"
        form = [e for e in browser.find_all("#login-user-input") if e.is_displayed()]
        return not form and bool(browser.find_all("iframe"))

    browser.until(logged_in, "the login did not reach Cockpit's shell")
    # The login page's first request is answered 401 by design (no session yet): the
    # console's record of it is not the page's error.
    browser.errors()


def region_cells(browser: Browser, name: str) -> list[str]:
    row = browser.find(f"#regions tr[data-region='{name}']")
    return [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]


def shell_screenshot(browser: Browser, path: Path) -> None:
    """The whole shell (menu and page), as the admin sees it."""
    browser.driver.switch_to.default_content()
    browser.resize(1400, 1100)
    browser.driver.save_screenshot(str(path))
