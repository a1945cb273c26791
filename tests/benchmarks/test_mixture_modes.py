"""Smoke test of benchmarks/mixture_modes.py: --quick writes its files."""

import json

import pytest

from benchmarks import mixture_modes


@pytest.mark.slow
def test_quick_run_writes_outputs(tmp_path):
    # Three methods keep the compile time small; every method's trainer has its
    # own tests in tests/genvi/test_adversarial.py.
    metrics = mixture_modes.main(
        ["--quick", "--methods", "gan", "aae", "pacgan4_vi", "--out", str(tmp_path)]
    )
    for name in ("config.json", "metrics.json", "samples.png", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["methods"]) == {
        "GAN",
        "GAN + EMA (same runs, EMA weights)",
        "GAN + VI reg, n_g=1, lambda=10",
        "AAE (decoded prior samples)",
        "PacGAN4 + VI reg, n_d=n_g=5, lambda=0",
        "PacGAN4 + VI reg, n_d=n_g=5, lambda=10",
        "PacGAN4 + VI reg, n_d=n_g=5, lambda=0 + EMA",
        "PacGAN4 + VI reg, n_d=n_g=5, lambda=10 + EMA",
    }
    # The n_g = 1 runs with and without the regulariser are bit-identical.
    assert metrics["ng1_bit_identical"] is True
    for entry in saved["methods"].values():
        for d in ("ring", "grid"):
            assert len(entry[d]["modes"]) == 2  # one value per seed
            assert all(0 <= m <= 25 for m in entry[d]["modes"])


def test_reg_baseline_adds_lambda_zero_to_the_phase_programs():
    import argparse

    from benchmarks.mixture_modes import specs

    def regs(baseline):
        args = argparse.Namespace(
            methods=["gan_vi", "pacgan4_vi"],
            reg_weights=[1.0, 3.0],
            reg_baseline=baseline,
            r1_weight=0.1,
        )
        return {s["name"]: s.get("reg") for s in specs(args)}

    assert regs(True)["pacgan4_vi"] == [0.0, 1.0, 3.0]
    assert regs(True)["gan_vi5"] == [0.0, 1.0, 3.0]
    assert regs(False)["pacgan4_vi"] == [1.0, 3.0]
    assert regs(False)["gan_vi5"] == [1.0, 3.0]
