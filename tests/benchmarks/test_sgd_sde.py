"""Smoke test of benchmarks/sgd_sde.py (--quick) and the files it writes."""

import json

import jax
import numpy as np
import pytest

from benchmarks import sgd_sde
from tests.tolerances import REFERENCE_3SIG, REFERENCE_4DEC


@pytest.mark.slow
def test_sgd_sde_quick(tmp_path):
    before = jax.config.jax_enable_x64
    metrics = sgd_sde.main(["--quick", "--out", str(tmp_path)])
    assert jax.config.jax_enable_x64 == before  # the setting is restored
    for name in ("config.json", "metrics.json", "sgd_sde.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == {"weak_errors", "slopes", "stationary", "escape"}
    (row,) = metrics["weak_errors"]
    # closed forms of R7 (docs/reference.md) at lr = 0.1
    np.testing.assert_allclose(-row["sme1_exact"], 1.08e-2, **REFERENCE_3SIG)
    np.testing.assert_allclose(row["sme2_exact"], 3.57e-3, **REFERENCE_3SIG)
    np.testing.assert_allclose(
        metrics["stationary"][0]["exact"], 0.013158, **REFERENCE_4DEC
    )
    assert metrics["escape"]["GD"]["wide_fraction"][-1] == 0.0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["args"]["quick"] is True
