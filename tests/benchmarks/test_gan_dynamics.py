"""Smoke test of benchmarks/gan_dynamics.py: --quick writes its files."""

import json

import pytest

from benchmarks import gan_dynamics
from tests import tolerances as tol
from tests.benchmarks._smoke import run_quick


@pytest.mark.slow
def test_quick_run_writes_outputs(tmp_path):
    metrics = run_quick(
        gan_dynamics,
        tmp_path,
        "portrait_dirac_gan.png",
        "portrait_dirac_gan_r1.png",
        "portrait_bilinear_game.png",
        "samples.png",
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    rows = [r for r in saved["spectral_radius"] if "measured" in r]
    assert {r["game"] for r in rows} >= {"dirac_gan", "bilinear_game"}
    for r in rows:  # the table's two columns agree
        assert abs(r["measured"] - r["closed_form"]) <= tol.CLOSED_FORM["atol"] + (
            tol.CLOSED_FORM["rtol"] * abs(r["closed_form"])
        )
    assert metrics["su_regulariser"]["damps"] is False
    for key, entry in saved["real"].items():
        assert key.startswith("extragradient/pack1/")
        for d in ("ring", "grid"):
            assert all(0 <= m <= 25 for m in entry[d]["modes"])
    assert "Predicted" in saved["statement"]
