"""benchmarks/compare_checkouts.py: the alternating timing of two checkouts."""
from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "compare_checkouts.py")


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_this_checkout_against_itself_gives_one_row_per_shape_with_equal_steps():
    out = _run(ROOT, "--shapes", "3x3x2,2x4x3", "--rounds", "1")
    assert out.returncode == 0, out.stderr
    rows = [ln.split() for ln in out.stdout.splitlines() if re.match(r"\s+\dx\dx\d\s", ln)]
    assert [r[0] for r in rows] == ["3x3x2", "2x4x3"]
    for r in rows:
        line = " ".join(r)
        steps = re.findall(r"\[([\d, ]+)\]", line)
        assert len(steps) == 2 and steps[0] == steps[1]  # the same code takes the same Newton steps
        ratio = re.search(r"\s(\d+\.\d+)x\s", line)
        assert ratio is not None and float(ratio.group(1)) > 0


def test_bad_arguments_are_refused_in_one_line():
    out = _run(os.path.join(ROOT, "benchmarks"))  # holds no fastpid/ package
    assert out.returncode == 2 and "holds no fastpid/ package" in out.stderr
    out = _run(ROOT, "--shapes", "3x3")
    assert out.returncode == 2 and "n1xn2xny" in out.stderr
    out = _run(ROOT, "--rounds", "0")
    assert out.returncode == 2 and "--rounds" in out.stderr
