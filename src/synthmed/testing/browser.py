"""Headless Chromium for tests and checks of the HTML report (Debian's ``chromium`` package)."""

from __future__ import annotations

import shutil
import subprocess

#: The Chromium executable on PATH, or None when none is installed.
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
SKIP_REASON = "chromium is not installed (Debian: apt-get install chromium); the browser test of the report is skipped"


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with ``args`` (``--dump-dom URL``, ``--screenshot=PNG URL``...)."""
    if CHROMIUM is None:
        raise FileNotFoundError(SKIP_REASON)
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars", *args], capture_output=True, text=True,
                          timeout=timeout)

#: chromedriver (Debian's ``chromium-driver``), for tests that drive the browser; None when not installed.
CHROMEDRIVER = shutil.which("chromedriver")
SKIP_REASON_DRIVER = ("chromium and chromium-driver are not both installed (Debian: apt-get install chromium "
                      "chromium-driver); the interactive browser test is skipped")


def selenium_chromium(window: tuple[int, int] = (1280, 900)):
    """A Selenium driver of the system's headless Chromium through the system's chromedriver (nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if CHROMIUM is None or CHROMEDRIVER is None:
        raise FileNotFoundError(SKIP_REASON_DRIVER)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                f"--window-size={window[0]},{window[1]}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
