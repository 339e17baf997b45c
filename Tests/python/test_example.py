"""Runs examples/python/relu_vs_fixed_learnt.py on a small subset and checks its outputs."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FASHION

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "relu_vs_fixed_learnt.py"


def test_notebook_example(tmp_path):
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST not found in {FASHION}")
    cmd = [sys.executable, str(EXAMPLE), "--data", str(FASHION), "--train", "4000", "--test", "1000",
           "--epochs", "3", "--width", "64", "--depth", "2", "--kernel-size", "200", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    acc = {m[0]: float(m[1]) for m in re.findall(r"RESULT (\w+)\s+test accuracy ([0-9.]+)", run.stdout)}
    assert set(acc) == {"relu", "fixed_learnt", "fixed_random_ii"}, run.stdout
    assert acc["relu"] > 0.7 and acc["fixed_learnt"] > 0.7 and acc["fixed_random_ii"] > 0.6
    learnt, random = map(float, re.search(r"block contrast: learnt ([0-9.]+), random ([0-9.]+)", run.stdout).groups())
    assert learnt > random  # learnt gates make the NPK more class-structured
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed: skipping the plots" in run.stdout
        pytest.skip("matplotlib is not installed: the example ran, its plots were skipped")
    for name in ("npk_heatmap.png", "accuracy_curves.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


QUICKSTART = EXAMPLE.parent / "quickstart.py"


def test_readme_quickstart_runs_and_learns():
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST not found in {FASHION}")
    run = subprocess.run([sys.executable, str(QUICKSTART)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    relu, learnt = map(float, re.search(r"test accuracy: relu ([0-9.]+), fixed_learnt ([0-9.]+)", run.stdout).groups())
    assert relu > 0.75 and learnt > 0.75, run.stdout
    same, other = map(float, re.search(r"same class ([0-9.]+), other classes ([0-9.]+)", run.stdout).groups())
    assert same > other, run.stdout
