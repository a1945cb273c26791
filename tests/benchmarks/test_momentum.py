"""Smoke test: `benchmarks.momentum --quick` runs and writes its files."""

import json

from benchmarks import momentum


def test_quick_run_writes_its_outputs(tmp_path):
    metrics = momentum.main(["--quick", "--out", str(tmp_path)])
    for file in ("config.json", "metrics.json", "momentum.png"):
        assert (tmp_path / file).stat().st_size > 0, file
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(metrics)
    assert json.loads((tmp_path / "config.json").read_text())["args"]["quick"] is True
    assert abs(metrics["rates"]["heavy_ball"]["spectral_radius"] - 0.8182) < 5e-5
    assert abs(metrics["order"]["half_step"]["order"] - 2) < 0.2
