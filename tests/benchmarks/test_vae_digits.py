"""Smoke test of benchmarks/vae_digits.py."""

import json

import numpy as np
import pytest

import genvi

pytestmark = pytest.mark.skipif(
    not hasattr(genvi, "vae_loss"),
    reason="needs genvi.vae_loss and genvi.iwae_log_likelihood (the genvi losses)",
)


@pytest.mark.slow  # about 25 s of CPU: classifier, VAE and IWAE compilations
def test_vae_digits_quick(tmp_path):
    from benchmarks import vae_digits

    out = tmp_path / "run"
    metrics = vae_digits.main(
        ["--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    )
    for name in ("config.json", "metrics.json", "reconstructions.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "samples.png").stat().st_size > 0
    assert (out / "loss.png").stat().st_size > 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["iwae_k"] == 20 and saved["skipped_steps"] == 0
    # Bernoulli log-probabilities of values in [0, 1] are negative; the IWAE
    # bound with k = 20 sits above the ELBO up to Monte-Carlo noise.
    assert saved["test_elbo"] < 0 and saved["test_iwae_log_likelihood"] < 0
    assert saved["test_iwae_log_likelihood"] > saved["test_elbo"] - 1.0
    assert np.isfinite(saved["samples"]["fid"]) and saved["steps_per_second"] > 0
    assert 0 <= metrics["samples"]["recall"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["quick"] is True
