"""Headless Chromium for tests, launched so it can never take real-time scheduling priority.

Run as root, Chromium gives some threads SCHED_RR/FIFO priority (audio, the fake capture
device, the zygote). On this 2-core VM that starved a kernel path (``shrink_dcache_parent``
while the zygote reaped a child) and wedged the whole machine at 100 % CPU, unkillable. So
every test launches Chromium through :func:`chromium_path`: a wrapper that drops
``CAP_SYS_NICE`` from the bounding set (util-linux ``setpriv``), after which the kernel refuses
real-time priority (RLIMIT_RTPRIO is 0) and Chromium falls back to normal threads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: Flags every test uses (headless is Playwright's default).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str:
    """The executable to hand Playwright (``executable_path=``): Chromium without CAP_SYS_NICE."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not os.path.exists(CHROMIUM):
        return CHROMIUM
    wrapper = Path(tempfile.gettempdir()) / f"camhub-chromium-{os.getuid()}"
    chrt = shutil.which("chrt")
    normal = f"{chrt} --other 0 " if chrt else ""  # also leave any inherited real-time policy
    script = f'#!/bin/sh\nCAMHUB_NO_RT=1 exec {normal}{setpriv} --bounding-set -sys_nice {CHROMIUM} "$@"\n'
    if not wrapper.exists() or wrapper.read_text() != script:
        tmp = wrapper.with_suffix(f".{os.getpid()}")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    return str(wrapper)
