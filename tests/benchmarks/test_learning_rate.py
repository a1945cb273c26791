"""Smoke test: `benchmarks.learning_rate --quick` runs and writes its files."""

import json

from benchmarks import learning_rate


def test_quick_run_writes_its_outputs(tmp_path):
    metrics = learning_rate.main(["--quick", "--out", str(tmp_path)])
    for file in ("config.json", "metrics.json", "learning_rate.png"):
        assert (tmp_path / file).stat().st_size > 0, file
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(metrics)
    assert json.loads((tmp_path / "config.json").read_text())["args"]["quick"] is True
    limits = metrics["stability_limits"]
    assert all(m["converges_below_and_diverges_above"] for m in limits.values())
    assert abs(limits["heavy_ball (beta 0.9)"]["limit_spectral_radius"] - 3.8) < 1e-5
