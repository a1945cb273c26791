"""Smoke test of benchmarks/batch_size.py (--quick) and the files it writes."""

import json

import jax
import numpy as np

from benchmarks import batch_size


def test_batch_size_quick(tmp_path):
    before = jax.config.jax_enable_x64
    metrics = batch_size.main(["--quick", "--out", str(tmp_path)])
    assert jax.config.jax_enable_x64 == before
    for name in ("config.json", "metrics.json", "batch_size.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    steps = np.asarray(saved["steps"])
    # more examples per step never costs more steps, and the tuned rate never
    # exceeds the stability limit 2 / h_max = 2
    assert np.all(np.diff(steps) <= 0)
    assert np.all(np.asarray(saved["tuned_lr"]) < 2.0)
    assert metrics["critical_batch_fit"] > 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["args"]["quick"] is True
