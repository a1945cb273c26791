"""Smoke test: `benchmarks.momentum --quick` runs and writes its files."""

from benchmarks import momentum

from ._smoke import run_quick


def test_quick_run_writes_its_outputs(tmp_path):
    metrics = run_quick(momentum, tmp_path, "momentum.png")
    assert abs(metrics["rates"]["heavy_ball"]["spectral_radius"] - 0.8182) < 5e-5
    assert abs(metrics["order"]["half_step"]["order"] - 2) < 0.2
