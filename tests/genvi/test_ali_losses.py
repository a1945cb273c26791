"""ALI losses: the optimal pair discriminator in closed form, both variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import optimize, special, stats
from scipy.stats import qmc

import genvi
from tests import tolerances as tol

# Encoder side p: x ~ N(0, 1), z = A x + SE eps. Generator side q: z ~ N(0, 1),
# x = C z + SD eps. Both joints are zero-mean bivariate Gaussians (order (x, z)).
A, SE, C, SD = 0.8, 0.6, 0.5, 0.8
COV_P = np.array([[1.0, A], [A, A**2 + SE**2]])
COV_Q = np.array([[C**2 + SD**2, C], [C, 1.0]])


def _features(x, z):
    return jnp.stack([jnp.ones_like(x), x, z, x * x, x * z, z * z], axis=-1)


def test_learned_pair_discriminator_is_the_log_density_ratio(x64):
    # Low-discrepancy Gaussian pairs (scrambled Sobol through the normal quantile)
    # so that the fit error is far below the 1e-2 being tested.
    eps = special.ndtri(qmc.Sobol(d=2, scramble=True, seed=0).random_base2(16))
    x_p = eps[:, 0]
    z_p = A * x_p + SE * eps[:, 1]
    z_q = eps[:, 0]
    x_q = C * z_q + SD * eps[:, 1]
    f_p = _features(jnp.asarray(x_p), jnp.asarray(z_p))
    f_q = _features(jnp.asarray(x_q), jnp.asarray(z_q))

    def loss(w):
        return genvi.ali_discriminator_loss(f_p @ w, f_q @ w).loss

    vg = jax.jit(jax.value_and_grad(loss))
    res = optimize.minimize(
        lambda w: [np.asarray(v) for v in vg(jnp.asarray(w))],
        np.zeros(6),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-10},
    )
    g = np.linspace(-2.0, 2.0, 21)
    gx, gz = [a.ravel() for a in np.meshgrid(g, g)]
    pts = np.stack([gx, gz], axis=1)
    log_ratio = stats.multivariate_normal(cov=COV_P).logpdf(
        pts
    ) - stats.multivariate_normal(cov=COV_Q).logpdf(pts)
    learned = special.expit(
        np.asarray(_features(jnp.asarray(gx), jnp.asarray(gz))) @ res.x
    )
    np.testing.assert_allclose(
        learned, special.expit(log_ratio), rtol=0, atol=tol.OPTIMAL_DISCRIMINATOR_ATOL
    )


def test_losses_match_torch_bce():
    rng = np.random.default_rng(1)
    enc, gen = rng.normal(size=9), rng.normal(size=9)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    te, tg = torch.tensor(enc), torch.tensor(gen)
    ones, zeros = torch.ones(9, dtype=te.dtype), torch.zeros(9, dtype=te.dtype)
    d_loss = bce(te, ones) + bce(tg, zeros)
    derived = bce(te, ones) + bce(tg, ones)  # Su: both sides labelled y = 1
    swapped = bce(te, zeros) + bce(tg, ones)  # each side labelled as the other
    e, g = jnp.asarray(enc), jnp.asarray(gen)
    np.testing.assert_allclose(
        float(genvi.ali_discriminator_loss(e, g).loss), float(d_loss), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(genvi.ali_generator_loss(e, g).loss), float(derived), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(genvi.ali_generator_loss(e, g, variant="swapped").loss),
        float(swapped),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        float(genvi.ali_generator_loss(e, g, variant="minimax").loss),
        -float(d_loss),
        rtol=1e-5,
    )


def test_variants_gradient_signs():
    # Every variant pushes the generator-side logit up. On the encoder side the
    # minimax and swapped forms push the logit down, Su's derived loss (eq. (41)
    # of his post, -E_p log D - E_q log D) pushes it up: the "counter-intuitive"
    # version he derives.
    e, g = jnp.array([0.3, -1.2]), jnp.array([-0.5, 2.0])
    for variant, encoder_sign in (("derived", -1), ("minimax", 1), ("swapped", 1)):
        ge, gg = jax.grad(
            lambda a, b, v=variant: genvi.ali_generator_loss(a, b, variant=v).loss,
            argnums=(0, 1),
        )(e, g)
        assert bool(jnp.all(encoder_sign * ge > 0)) and bool(jnp.all(gg < 0))


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: genvi.ali_generator_loss(jnp.zeros(2), jnp.zeros(2), variant="x"),
            r"ali_generator_loss: `variant` must be one of "
            r"\('derived', 'minimax', 'swapped'\), "
            r"got 'x'",
        ),
        (
            lambda: genvi.ali_discriminator_loss(jnp.zeros(2), jnp.zeros(3)),
            r"ali_discriminator_loss: `encoder_logits` and `generator_logits` must "
            r"have the same shape, got \(2,\) and \(3,\)",
        ),
        (
            lambda: genvi.ali_generator_loss(jnp.zeros((2, 2)), jnp.zeros((2, 2))),
            r"ali_generator_loss: `encoder_logits` must have shape \(batch,\) or "
            r"\(batch, 1\), got \(2, 2\)",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
