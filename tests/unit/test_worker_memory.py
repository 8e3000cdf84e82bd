"""The worker fixes glibc's malloc thresholds so freed generation buffers go back to the kernel."""

import platform

import pytest

from worker.memory import hand_back_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_thresholds_are_fixed_on_glibc() -> None:
    assert hand_back_freed_memory() is True
