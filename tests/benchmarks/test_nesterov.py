"""Smoke test: `benchmarks.nesterov --quick` runs and writes its files."""

import json

from benchmarks import nesterov


def test_quick_run_writes_its_outputs(tmp_path):
    metrics = nesterov.main(["--quick", "--out", str(tmp_path)])
    for file in ("config.json", "metrics.json", "nesterov.png"):
        assert (tmp_path / file).stat().st_size > 0, file
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(metrics)
    assert json.loads((tmp_path / "config.json").read_text())["args"]["quick"] is True
    cycle = metrics["cycle"]
    assert cycle["heavy ball (lr 1/9, beta 4/9)"]["in_r5_cycle"]
    assert cycle["nesterov (lr 1/25, beta 2/3)"]["abs_final"] < 1e-3
    assert abs(metrics["bessel"]["max_error"][0] - 0.145) < 1e-3
