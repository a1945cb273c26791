"""Smoke test: `benchmarks.nesterov --quick` runs and writes its files."""

from benchmarks import nesterov

from ._smoke import run_quick


def test_quick_run_writes_its_outputs(tmp_path):
    metrics = run_quick(nesterov, tmp_path, "nesterov.png")
    cycle = metrics["cycle"]
    assert cycle["heavy ball (lr 1/9, beta 4/9)"]["in_r5_cycle"]
    assert cycle["nesterov (lr 1/25, beta 2/3)"]["abs_final"] < 1e-3
    assert abs(metrics["bessel"]["max_error"][0] - 0.145) < 1e-3
