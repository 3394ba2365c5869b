"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) through Selenium, and
the waits the page's tests need: for a condition in the page, bounded, never a sleep."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.cockpit.harness import CHROMEDRIVER, CHROMIUM

WAIT = 30.0  # bound on every wait; reached only when something is broken
REPO = Path(__file__).resolve().parent.parent.parent
# Screenshots of the page: kept as the test run's artifacts (under build/).
SCREENSHOTS = Path(os.environ.get("PMEMD_SCREENSHOTS", REPO / "build/cockpit-screenshots"))
T = TypeVar("T")


@dataclass
class Browser:
    driver: webdriver.Chrome

    def open(self, url: str) -> None:
        """Load the page and wait until it has rendered the service's state."""
        self.driver.get(url)
        self.until(lambda: self.js("return document.body.dataset.rendered") is not None
                   and self.js("return document.getElementById('banner').dataset.state")
                   is not None and self.js("return document.querySelectorAll("
                                           "'#regions tbody tr').length") > 0,
                   "the page did not render the service's state")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)  # type: ignore[no-untyped-call]

    def until(self, condition: Callable[[], T], message: str) -> T:
        try:
            found: T = WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(
                lambda _driver: condition(), message)
            return found
        except TimeoutException as error:
            shown = self.driver.find_element(By.TAG_NAME, "body").text
            raise AssertionError(f"{message}\n{shown}") from error

    def find(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def resize(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def screenshot(self, path: Path) -> None:
        """The whole page, however long."""
        height = int(self.js("return document.documentElement.scrollHeight"))
        width = int(self.js("return window.innerWidth"))
        self.driver.set_window_size(width, max(height + 100, 600))
        self.driver.save_screenshot(str(path))

    def errors(self) -> list[str]:
        """The page's uncaught errors and console errors since the last call."""
        log = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [str(entry["message"]) for entry in log
                if entry["level"] == "SEVERE"]

    def quit(self) -> None:
        self.driver.quit()


def open_in_shell(browser: Browser, base: str) -> None:
    """Cockpit's shell at BASE/pmemd, as an admin gets there: the menu's "Persistent
    memory", then the page in its frame (the browser stays in it), once it shows a region."""
    browser.driver.get(base + "/pmemd")
    browser.until(lambda: [a for a in browser.find_all("a")
                           if a.text.strip() == "Persistent memory"],
                  "the shell's menu has no 'Persistent memory'")
    frame = browser.until(lambda: browser.find_all("iframe[name='cockpit1:localhost/pmemd']"),
                          "the shell did not load pmemd's page")[0]
    browser.driver.switch_to.frame(frame)
    browser.until(lambda: browser.find_all("#regions tbody tr"), "the page shows no region")


def region_rows(browser: Browser) -> list[str]:
    """The regions table's rows, by region name."""
    return [row.get_attribute("data-region") or "" for row in browser.find_all("#regions tbody tr")]


def wait_for_regions(browser: Browser, names: list[str]) -> None:
    browser.until(lambda: region_rows(browser) == names,
                  f"the regions table does not show {names}")


def start_browser(profile: Path) -> Browser:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                     "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(argument)  # type: ignore[no-untyped-call]
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return Browser(webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options))
