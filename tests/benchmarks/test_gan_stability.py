"""Smoke test of benchmarks/gan_stability.py: --quick writes its files."""

import json
import math

import pytest

from benchmarks import gan_stability


def _in(x, lo, hi):
    return math.isfinite(x) and lo <= x <= hi


@pytest.mark.slow
def test_quick_run_writes_outputs(tmp_path):
    out = gan_stability.main(["--quick", "--out", str(tmp_path)])
    for name in (
        "config.json",
        "metrics.json",
        "stability.png",
        "stability_digits.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["cells"]) == 2  # lambda 0 and lambda > 0, one lr, one schedule
    assert {c["reg_weight"] for c in saved["cells"]} == {0.0, 10.0}
    assert "n_d=1, n_g=5" in out["verdict"]

    part = saved["digits"]
    assert len(part["cells"]) == 2
    assert {c["reg_weight"] for c in part["cells"]} == {0.0, 10.0}
    assert "digits, schedule n_d=1, n_g=5" in part["verdict"]
    assert part["verdict"] == out["digits"]["verdict"]
    assert _in(part["collapse_recall"], 0, 1)
    assert _in(part["classifier_test_accuracy"], 0.9, 1)
    for name in ("recall", "precision", "coverage"):
        assert _in(part["real_train_vs_test"][name], 0.5, 1)
    log10 = math.log(10)
    for c in part["cells"]:
        assert (c["n_d"], c["n_g"]) == (1, 5)
        assert _in(c["collapsed_fraction"], 0, 1)
        assert _in(c["classes_dropped_fraction"], 0, 1)
        assert len(c["eval_g_steps"]) == 2 and c["eval_g_steps"][-1] > 0
        for key in (
            "min_recall_second_half",
            "min_coverage_second_half",
            "final_recall",
            "final_precision",
            "final_coverage",
        ):
            assert len(c[key]) == 2  # seeds
            assert all(_in(v, 0, 1) for v in c[key]), key
        for key in ("final_class_kl", "max_class_kl_second_half"):
            assert all(_in(v, 0, log10 + 1e-9) for v in c[key]), key
        assert all(_in(v, 0, 1) for curve in c["recall_curve"] for v in curve)
        assert c["collapsed_fraction"] == pytest.approx(
            sum(v < part["collapse_recall"] for v in c["min_recall_second_half"]) / 2
        )
