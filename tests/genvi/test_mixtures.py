"""2-D mixtures and their mode metrics against docs/reference.md G3 and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genvi
from tests import tolerances as tol

# Probability that a 2-D isotropic Gaussian lands within 3 std (chi, 2 dof).
P_HIGH_QUALITY = 1.0 - math.exp(-4.5)


def test_geometry_g3():
    ring, grid = genvi.mixture("ring"), genvi.mixture("grid")
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 1.0, atol=1e-12)
    angles = np.sort(np.mod(np.arctan2(ring.means[:, 1], ring.means[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    # Eight distinct modes (linspace with its endpoint would give seven).
    gaps = np.linalg.norm(ring.means[:, None] - ring.means[None], axis=-1)
    assert np.min(gaps + np.eye(8) * 9) > 0.7
    assert sorted({tuple(m) for m in grid.means.tolist()}) == [
        (float(a), float(b)) for a in range(-4, 5, 2) for b in range(-4, 5, 2)
    ]
    assert (ring.std, grid.std) == (0.01, 0.05)


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_perfect_sampler(name):
    mix = genvi.mixture(name)
    samples = genvi.sample_mixture(jax.random.PRNGKey(0), mix, 2500)
    out = genvi.mode_metrics(samples, mix)
    assert int(out["modes"]) == len(mix.means)
    se = math.sqrt(P_HIGH_QUALITY * (1 - P_HIGH_QUALITY) / 2500)
    assert abs(float(out["high_quality"]) - P_HIGH_QUALITY) < tol.MC_SIGMAS * se
    # Many samples: the high-quality fraction is 1 - exp(-4.5) = 0.98889.
    n = 200_000
    big = genvi.mode_metrics(genvi.sample_mixture(jax.random.PRNGKey(1), mix, n), mix)
    se = math.sqrt(P_HIGH_QUALITY * (1 - P_HIGH_QUALITY) / n)
    assert abs(float(big["high_quality"]) - P_HIGH_QUALITY) < tol.MC_SIGMAS * se
    # A multinomial histogram's KL to uniform is about (K - 1) / (2 n_hq).
    k = len(mix.means)
    assert float(big["reverse_kl"]) < 5 * (k - 1) / (2 * n)


def test_sampler_missing_modes_is_counted_right():
    grid = genvi.mixture("grid")
    five = genvi.Mixture("five", grid.means[[0, 6, 12, 18, 24]], grid.std)
    good = genvi.sample_mixture(jax.random.PRNGKey(2), five, 2000)
    # 500 low-quality samples halfway between modes: not counted anywhere.
    bad = jnp.tile(jnp.array([[1.0, 1.0]]), (500, 1))
    out = genvi.mode_metrics(jnp.concatenate([good, bad]), grid)
    assert int(out["modes"]) == 5
    assert set(np.flatnonzero(np.asarray(out["counts"]))) == {0, 6, 12, 18, 24}
    se = math.sqrt(P_HIGH_QUALITY * (1 - P_HIGH_QUALITY) / 2000)
    expected_hq = 0.8 * P_HIGH_QUALITY
    assert abs(float(out["high_quality"]) - expected_hq) < 4 * 0.8 * se
    # Uniform over 5 of 25 modes: KL = log 5, plus multinomial noise.
    assert abs(float(out["reverse_kl"]) - math.log(5)) < 0.02


def test_reverse_kl_closed_form():
    ring = genvi.mixture("ring")
    counts = np.array([100, 50, 50, 0, 0, 25, 0, 0])
    samples = jnp.asarray(np.repeat(ring.means, counts, axis=0))
    out = genvi.mode_metrics(samples, ring)
    h = counts / counts.sum()
    nz = h > 0
    expected = float(np.sum(h[nz] * np.log(8 * h[nz])))
    np.testing.assert_allclose(float(out["reverse_kl"]), expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(out["counts"]), counts)
    assert int(out["modes"]) == 4
    # No high-quality sample at all: the worst histogram, log K.
    far = genvi.mode_metrics(jnp.full((10, 2), 5.0), ring)
    assert int(far["modes"]) == 0 and float(far["high_quality"]) == 0.0
    np.testing.assert_allclose(float(far["reverse_kl"]), math.log(8), rtol=1e-6)


def test_metrics_vmap_over_seeds():
    grid = genvi.mixture("grid")
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    samples = jax.vmap(lambda k: genvi.sample_mixture(k, grid, 2500))(keys)
    out = jax.jit(jax.vmap(lambda s: genvi.mode_metrics(s, grid)))(samples)
    assert out["modes"].shape == (3,)
    assert bool(jnp.all(out["modes"] == 25))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: genvi.mixture("spiral"), r"mixture: `name` must be 'ring' or 'grid'"),
        (
            lambda: genvi.sample_mixture(
                jax.random.PRNGKey(0), genvi.mixture("ring"), 0
            ),
            r"sample_mixture: `n` must be an int >= 1, got 0",
        ),
        (
            lambda: genvi.mode_metrics(jnp.zeros((4, 3)), genvi.mixture("ring")),
            r"mode_metrics: `samples` must have shape \(n, 2\), got \(4, 3\)",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
