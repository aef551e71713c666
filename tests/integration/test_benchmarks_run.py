"""`make bench` must keep running: the benchmark suite in its quick mode, as a real process, in the test suite.

No figure is judged here (speed targets live in the benchmark's own table, against baselines of the same
run); this asserts that every benchmark ran to the end and produced its rows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.bench  # every row of it runs in `make bench`; each new path has e2e tests of its own
def test_quick_benchmarks_run_to_the_end():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--no-write"], cwd=ROOT,
                          capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    for bench in ("1 intake", "1b admission", "2 packing", "3 fan-out", "4 memory", "5 gateway create",
                  "6 gateway results", "7 fair share", "8 delivery", "9 replicas", "10 large intake",
                  "10b Redis per large request", "11 large create", "12 large end to end",
                  "12b Redis per queued large request", "13 deadlines"):
        assert any(line.startswith(f"| {bench} |") for line in table), f"{bench} produced no row"
    assert any("(b) ÷ (c)" in line for line in table), "the S3 row has no baseline ratio"
