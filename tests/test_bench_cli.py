"""fastpid-bench option handling: bad options give one line on stderr and exit 2."""
from __future__ import annotations

import subprocess
import sys

import pytest

from fastpid_bench.cli import main


def _run(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--methods", "nope", "gates"], "unknown method 'nope'"),
        (["--methods", "exact,fastpd", "gates"], "unknown method 'fastpd'"),
        (["gates", "--methods", "cvx"], "unknown method 'cvx'"),
        (["scaling", "--sizes", "0"], "positive integer"),
        (["scaling", "--sizes", "4,-8"], "positive integer"),
        (["scaling", "--batch", "0"], "positive integer"),
        (["scaling", "--batch-shape", "4,4"], "three positive integers"),
        (["scaling", "--label-shapes", "20x20"], "N1xN2xNY"),
        (["scaling", "--label-shapes", "2x2x0"], "positive integer"),
        (["scaling", "--label-shapes", ","], "N1xN2xNY"),
        (["gaussian", "--dx", "0"], "positive integer"),
        (["gaussian", "--dy", "-1"], "positive integer"),
        (["gaussian", "--dx", "eight"], "positive integer"),
        (["--repeat", "0", "gates"], "positive integer"),
        (["--samples", "-5", "gates"], "positive integer"),
        (["--seed", "-1", "gates"], "seed"),
        (["--max-time", "0", "scaling"], "positive"),
        (["gates", "--gates", "nand"], "unknown gate 'nand'"),
        (["ablation", "warmup"], "unknown ablation 'warmup'"),
        (["--backend", "tensorflow", "gates"], "--backend 'tensorflow'"),
        (["--reference", "fastpid", "gates"], "unknown reference 'fastpid'"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_options_exit_2_with_one_line(argv, needle, capsys):
    rc, out, err = _run(argv, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastpid-bench: error: ")
    assert needle in lines[0]
    assert "Traceback" not in err


def test_unwritable_out_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for out in (blocker, blocker / "sub"):
        rc, _, err = _run(["--quick", "--methods", "analytic", "--out", str(out), "gates"], capsys)
        assert rc == 2
        assert len(err.strip().splitlines()) == 1
        assert "--out" in err and "not a writable directory" in err
    assert blocker.read_text() == "not a directory"


def test_python_dash_m_entry_point():
    ok = subprocess.run([sys.executable, "-m", "fastpid_bench", "--help"], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0
    for word in ("gates", "gaussian", "ablation", "scaling", "--methods", "--quick", "--out", "--seed"):
        assert word in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fastpid_bench", "--methods", "bogus", "gates"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "Traceback" not in bad.stderr


def test_without_matplotlib_plots_are_skipped_with_one_line(tmp_path, capsys, monkeypatch):
    from fastpid_bench import cli

    monkeypatch.setattr(cli, "_have_matplotlib", lambda: False)
    rc, out, err = _run(["--quick", "--methods", "analytic", "--no-progress",
                         "--out", str(tmp_path), "gates", "--gates", "xor"], capsys)
    assert rc == 0, err
    note = [line for line in out.splitlines() if "plots skipped" in line]
    assert len(note) == 1 and "pip install 'fastpid[bench]'" in note[0], out
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["results.csv", "results.json"]
