"""The collector's settings for serving processes, applied once per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc
from pytake.kit.gc_tuning import THRESHOLDS, tune_for_serving
before = gc.get_threshold()
assert tune_for_serving(False) is False and gc.get_threshold() == before
assert gc.get_freeze_count() == 0
assert tune_for_serving(True) is True
assert gc.get_threshold() == THRESHOLDS and gc.get_freeze_count() > 1000
assert tune_for_serving(True) is False  # once per process
print("ok")
"""


def test_tuning_freezes_start_up_and_raises_thresholds_once() -> None:
    # A process of its own: the settings are process-wide (and this one's app may have set them).
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
