"""Fixtures for the Cockpit page's tests: the D-Bus tests' private bus, work directory and
``pmemd serve`` (tests/service), one headless Chromium for the module (a fresh tab state
per test) and where screenshots go. The machine and cockpit-ws are test_page.py's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cockpit.browser import SCREENSHOTS, Browser, start_browser


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    browser = start_browser(tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.quit()


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The module's Chromium; a test fails when its page logged an error (an uncaught
    exception, a failed load)."""
    chromium.resize(1280, 1000)
    chromium.errors()
    yield chromium
    errors = chromium.errors()
    chromium.driver.get("about:blank")
    assert errors == []


# The D-Bus tests' private bus, work directory and service, over this module's root.
from tests.service.conftest import bus, loops, service, workdir  # noqa: E402, F401
