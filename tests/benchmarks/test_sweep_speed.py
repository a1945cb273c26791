"""Smoke test of benchmarks/sweep_speed.py."""

import json

import pytest

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
    # the size ladder: one quick size, 8 points x 2 hidden units = 13 parameters
    (rung,) = metrics["ladder"]
    assert (rung["points"], rung["hidden"], rung["params"]) == (8, 2, 13)
    lo, hi = rung["ci95"]
    assert rung["sweep_per_config_s"] > 0 and lo <= rung["speedup"] <= hi


@pytest.mark.parametrize("bad", ["8", "8x", "0x4", "axb"])
def test_bad_ladder_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="sweep_speed: `--ladder`"):
        sweep_speed.main(["--quick", "--ladder", bad, "--out", str(tmp_path)])
