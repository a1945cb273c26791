"""AAE losses: the optimal latent discriminator in closed form, the loss terms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

import genvi
from tests import tolerances as tol


def test_learned_latent_discriminator_is_the_log_density_ratio(x64):
    """Prior N(0, 1) vs codes N(m, 1): logit D* = log q/p = -m z + m^2 / 2."""
    m, n = 0.7, 100_000
    prior = jnp.asarray(special.ndtri((np.arange(n) + 0.5) / n))  # stratified
    codes = prior + m

    def loss(ab):
        ab = jnp.asarray(ab)
        return genvi.aae_discriminator_loss(
            ab[0] + ab[1] * prior, ab[0] + ab[1] * codes
        ).loss

    vg = jax.jit(jax.value_and_grad(loss))
    res = optimize.minimize(
        lambda ab: [np.asarray(v) for v in vg(ab)], np.zeros(2), jac=True
    )
    grid = np.linspace(-3.0, 3.0, 61)
    expected = special.expit(stats.norm.logpdf(grid) - stats.norm.logpdf(grid, loc=m))
    np.testing.assert_allclose(
        special.expit(res.x[0] + res.x[1] * grid),
        expected,
        rtol=0,
        atol=tol.OPTIMAL_DISCRIMINATOR_ATOL,
    )


def test_autoencoder_loss_terms_and_gradient_split():
    kx, kd, ke = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (16, 3))
    params = {
        "enc": jax.random.normal(ke, (3, 2)),
        "dec": jax.random.normal(kd, (2, 3)),
    }
    w_disc = jnp.array([0.3, -0.8])

    def terms(p, weight):
        codes = x @ p["enc"]
        recon = codes @ p["dec"]
        return genvi.aae_autoencoder_loss(
            x, recon, codes @ w_disc, reconstruction_weight=weight
        )

    out = terms(params, 0.25)
    codes = x @ params["enc"]
    recon = np.mean(np.sum((x - codes @ params["dec"]) ** 2, axis=1))
    adv = np.mean(np.logaddexp(0.0, -(codes @ w_disc)))
    np.testing.assert_allclose(float(out.aux["reconstruction"]), recon, rtol=1e-5)
    np.testing.assert_allclose(float(out.aux["adversarial"]), adv, rtol=1e-5)
    np.testing.assert_allclose(float(out.loss), 0.25 * recon + adv, rtol=1e-5)
    # The decoder's gradient is that of the reconstruction term alone.
    g_all = jax.jit(jax.grad(lambda p: terms(p, 0.25).loss))(params)
    g_rec = jax.jit(jax.grad(lambda p: 0.25 * terms(p, 0.25).aux["reconstruction"]))(
        params
    )
    np.testing.assert_allclose(g_all["dec"], g_rec["dec"], **tol.F32_ITERATES)
    assert not np.allclose(g_all["enc"], g_rec["enc"])


def test_proximal_term_has_zero_gradient_at_the_previous_encoder():
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    w = jnp.array([[1.0, 0.5], [-0.3, 2.0]])

    def reg(w_):
        codes = x @ w_
        return genvi.aae_autoencoder_loss(
            x, x, jnp.zeros(8), codes=codes, codes_old=x @ w, reg_weight=3.0
        ).aux["regularizer"]

    assert bool(jnp.all(jax.grad(reg)(w) == 0.0))
    # Shifting every weight by 1 moves each code by x @ ones: |.|^2 averaged.
    shift = np.asarray(x) @ np.ones((2, 2))
    np.testing.assert_allclose(
        float(reg(w + 1.0)), np.mean(np.sum(shift**2, axis=1)), rtol=1e-5
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: genvi.aae_discriminator_loss(jnp.zeros(3), jnp.zeros((3, 1))),
            r"aae_discriminator_loss: `prior_logits` and `code_logits` must have the "
            r"same shape, got \(3,\) and \(3, 1\)",
        ),
        (
            lambda: genvi.aae_autoencoder_loss(
                jnp.zeros((3, 2)), jnp.zeros((3, 4)), jnp.zeros(3)
            ),
            r"aae_autoencoder_loss: `x` and `reconstruction` must have the same "
            r"shape, got \(3, 2\) and \(3, 4\)",
        ),
        (
            lambda: genvi.aae_autoencoder_loss(
                jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(5)
            ),
            r"aae_autoencoder_loss: `code_logits` must have one logit per example of "
            r"`x`, got shapes \(5,\) and \(3, 2\)",
        ),
        (
            lambda: genvi.aae_autoencoder_loss(
                jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(3), codes=jnp.zeros(3)
            ),
            r"aae_autoencoder_loss: pass both `codes` and `codes_old` or neither",
        ),
        (
            lambda: genvi.aae_autoencoder_loss(
                jnp.zeros((3, 2)),
                jnp.zeros((3, 2)),
                jnp.zeros(3),
                reconstruction_weight=-2,
            ),
            r"aae_autoencoder_loss: `reconstruction_weight` must be >= 0, got -2",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
