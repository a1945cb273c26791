"""Smoke test: `benchmarks.learning_rate --quick` runs and writes its files."""

from benchmarks import learning_rate

from ._smoke import run_quick


def test_quick_run_writes_its_outputs(tmp_path):
    metrics = run_quick(learning_rate, tmp_path, "learning_rate.png")
    limits = metrics["stability_limits"]
    assert all(m["converges_below_and_diverges_above"] for m in limits.values())
    assert abs(limits["momentum (beta 0.9)"]["limit_spectral_radius"] - 3.8) < 1e-5
