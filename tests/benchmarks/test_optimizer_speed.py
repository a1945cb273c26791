"""Smoke test of benchmarks/optimizer_speed.py."""

import json

import numpy as np
import pytest

from benchmarks import optimizer_speed


def test_quick_run_writes_its_files(tmp_path):
    # two of the four cases: --cases selects what is timed
    metrics = optimizer_speed.main(
        [
            "--quick",
            "--optimizers",
            "momentum",
            "--cases",
            "tree2000,train",
            "--out",
            str(tmp_path),
        ]
    )
    for name in ("config.json", "metrics.json", "optimizer_speed.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        saved["bytes_per_param"]["momentum"]["optax"]
        == metrics["bytes_per_param"]["momentum"]["optax"]
    )
    cases = [(r["case"], r["step"], r["leaves"]) for r in metrics["results"]]
    assert cases == [("tree2000", "update", 20), ("train", "train", 20)]
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


def test_gpu_floor_code_path_runs_on_any_backend():
    """The GPU part (run by main only on a GPU) at a tiny size on this backend:
    every field is measured, and no step moves fewer bytes than its floor."""
    out = optimizer_speed.gpu_floor(12, 2, np.random.default_rng(0))
    assert set(out) == {"momentum", "nesterov", "adam"}
    for name, g in out.items():
        assert g["step_s"] > 0 and g["copy_s"] > 0
        assert np.isfinite(g["fraction_of_copy_bandwidth"])
        assert g["fraction_of_copy_bandwidth"] > 0
        assert g["bytes_per_param"] >= optimizer_speed.FLOOR[name]


def test_unknown_case_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"`--cases` must name .* got 'leaves'"):
        optimizer_speed.main(["--quick", "--cases", "leaves", "--out", str(tmp_path)])
