"""Smoke test of benchmarks/optimizer_speed.py."""

import json

import numpy as np

from benchmarks import optimizer_speed


def test_quick_run_writes_its_files(tmp_path):
    metrics = optimizer_speed.main(
        ["--quick", "--optimizers", "momentum", "--out", str(tmp_path)]
    )
    for name in ("config.json", "metrics.json", "optimizer_speed.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        saved["bytes_per_param"]["momentum"]["optax"]
        == metrics["bytes_per_param"]["momentum"]["optax"]
    )
    cases = {(r["case"], r["step"]) for r in metrics["results"]}
    assert cases == {
        ("leaf", "update"),
        ("tree100", "update"),
        ("tree2000", "update"),
        ("train", "train"),
    }
    for r in metrics["results"]:
        for c in r["contenders"].values():
            lo, hi = c["speedup_ci95"]
            assert c["median_s"] > 0 and lo <= c["speedup_vs_optax"] <= hi
            assert np.isfinite(c["GBps"]) and c["GBps"] > 0
        assert r["contenders"]["optax"]["speedup_vs_optax"] == 1.0


def test_ratio_interval_contains_the_ratio_of_medians():
    rng = np.random.default_rng(0)
    base = np.array([2.0, 2.1, 1.9, 2.0, 2.2])
    point, lo, hi = optimizer_speed.ratio_ci(base, base / 4, rng)
    assert point == 4.0 and lo == hi == 4.0
    point, lo, hi = optimizer_speed.ratio_ci(
        base, np.array([1.0, 1.5, 0.9, 1.1, 1.2]), rng
    )
    assert lo <= point <= hi and point == 2.0 / 1.1


def test_bytes_only_tables(tmp_path):
    metrics = optimizer_speed.main(["--quick", "--bytes-only", "--out", str(tmp_path)])
    row = metrics["bytes_per_param"]["momentum"]
    assert row["dynopt"] <= row["optax"] and row["dynopt_flat"] <= row["optax"]
    mixed = metrics["mixed_precision_bytes_per_param"]["momentum"]
    # bf16 p, g (2 B each); a float32 buffer costs more, a master copy more still
    assert mixed["bf16 state"] < mixed["fp32 state"] < mixed["fp32 state + master"]
    assert (tmp_path / "metrics.json").exists()
