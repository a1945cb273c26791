"""Smoke test of benchmarks/sweep_speed.py."""

import json

from benchmarks import sweep_speed


def test_quick_run_writes_its_files(tmp_path):
    metrics = sweep_speed.main(["--quick", "--out", str(tmp_path)])
    for name in ("config.json", "metrics.json", "sweep_speed.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["results"]) == {"sweep", "separate_reused", "separate_naive"}
    assert saved["results"]["sweep"]["slowdown_vs_sweep"] == 1.0
    # the batched sweep computes what the separate runs compute (float32)
    assert metrics["max_rel_diff_final_loss_sweep_vs_separate"] < 1e-4
    assert len(metrics["final_loss"]) == metrics["configs"] == 4
