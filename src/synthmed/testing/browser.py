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
