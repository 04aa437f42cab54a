"""A real browser for the dashboard test: Debian's chromium, driven by Playwright.

Playwright's own browser download is not available here, so the browser is Debian's package,
installed on first use when missing (the README's test command needs nothing else). A machine
that cannot install it fails the test with the reason: the browser test never skips itself.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Chromium without the background services this closed network refuses (they slow every start).
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _install_chromium() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(f"{CHROMIUM} is missing and there is no apt-get: install Debian's chromium package")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    for step in (["apt-get", "update", "-q"], install):
        done = subprocess.run([*sudo, *step], capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"installing chromium failed at `{' '.join(step)}` (exit {done.returncode}): "
                        f"{(done.stderr or done.stdout)[-800:]}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        _install_chromium()
    assert CHROMIUM.exists(), f"{CHROMIUM} is still missing after installing the chromium package"
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
