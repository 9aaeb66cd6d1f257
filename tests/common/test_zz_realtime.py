"""No test leaves the runner on a real-time scheduling policy (see tests/conftest.py)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import _drop_realtime_priority


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can take a real-time policy")
def test_a_real_time_policy_is_dropped_again() -> None:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # what libsvtav1 does as root
    try:
        assert os.sched_getscheduler(0) == os.SCHED_FIFO
    finally:
        _drop_realtime_priority()
    policies = {os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")}
    assert policies == {os.SCHED_OTHER}
