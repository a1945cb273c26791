"""Smoke test of benchmarks/conv_speed.py."""

from benchmarks import conv_speed
from tests.benchmarks._smoke import run_quick


def test_conv_speed_quick(tmp_path):
    metrics = run_quick(conv_speed, tmp_path)
    assert set(metrics) == {"subpixel"}  # --quick times one upsampling
    for entry in metrics.values():
        assert all(entry[w]["steps_per_second"] > 0 for w in ("alone", "scan", "train"))
