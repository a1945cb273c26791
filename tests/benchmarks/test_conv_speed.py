"""Smoke test of benchmarks/conv_speed.py."""

from benchmarks import conv_speed
from tests.benchmarks._smoke import run_quick


def test_conv_speed_quick(tmp_path):
    metrics = run_quick(conv_speed, tmp_path)
    layouts = metrics.pop("layouts")
    assert set(metrics) == {"subpixel"}  # --quick times one upsampling
    for entry in metrics.values():
        assert all(entry[w]["steps_per_second"] > 0 for w in ("alone", "scan", "train"))
    # Each convolution of the networks, in both XLA layouts (and PyTorch's).
    assert set(layouts) == {name for name, *_ in conv_speed.LAYERS}
    for entry in layouts.values():
        assert entry["NHWC"] > 0 and entry["NCHW"] > 0 and entry.get("torch", 1) > 0
