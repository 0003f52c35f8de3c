"""The scripts in examples/ run and print what they claim (skipped where examples/ is absent,
e.g. in an unpacked wheel)."""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="no examples/ directory")


def run_example(name, *args):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def number(pattern, text):
    found = re.search(pattern + r": (-?\d+)", text)
    assert found, f"no line {pattern!r} in:\n{text}"
    return int(found.group(1))


def test_guide_arithmetic():
    out = run_example("guide_arithmetic.py")
    assert "activation map: 28x28 = 784 positions" in out
    assert "multiplications per position: 75" in out
    assert "two 5x5x3 filters: 28x28x2" in out
    assert "one 7x7x3 filter: 26x26x1" in out


def test_curve_detector_responds_on_the_curve_only(tmp_path):
    out = run_example("curve_detector.py", tmp_path)
    assert number(r"response on the curve \(top-left\)", out) == 6600
    assert number(r"response where the image is empty \(top-right\)", out) == 0
    assert 0 < number("largest response on the straight line", out) < 6600
    assert "largest response anywhere: 6600, at row 0, column 0" in out
    assert (tmp_path / "curve_detector.png").exists() == HAVE_MATPLOTLIB


def test_train_digits_learns_and_draws(tmp_path):
    out = run_example("train_digits.py", tmp_path)
    accuracy = float(re.search(r"^test accuracy ([\d.]+)", out, flags=re.M).group(1))
    assert accuracy > 0.9
    pictures = sorted(p.name for p in tmp_path.iterdir())
    assert pictures == (["activations.png", "filters.png"] if HAVE_MATPLOTLIB else [])
