"""GAN losses against docs/reference.md G2 (closed forms, quadrature) and torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special, stats

import genvi
from tests import tolerances as tol

# A stratified sample of N(0, 1): the midpoints of N equal-probability bins. The
# empirical mean of a smooth function is then a quadrature of its expectation
# (error below 1e-8 here), so the tests check the losses, not Monte-Carlo noise.
N_QUANTILES = 200_000


def normal_quantiles(n=N_QUANTILES):
    return special.ndtri((np.arange(n) + 0.5) / n)


def test_discriminator_loss_matches_torch_bce():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=7), rng.normal(size=7)
    out = genvi.gan_discriminator_loss(jnp.asarray(real), jnp.asarray(fake))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(torch.tensor(real), torch.ones(7)) + bce(
        torch.tensor(fake), torch.zeros(7)
    )
    np.testing.assert_allclose(float(out.loss), float(expected), **tol.F32_ITERATES)
    np.testing.assert_allclose(
        float(out.aux["real"] + out.aux["fake"]), float(out.loss), **tol.F32_ITERATES
    )


def test_learned_discriminator_is_optimal_g2(x64):
    """Logistic D with logit a + b x, learned on N(0,1) vs N(1,1): sigmoid(0.5 - x)."""
    real = jnp.asarray(normal_quantiles())
    fake = real + 1.0

    def loss(ab):
        ab = jnp.asarray(ab)
        return genvi.gan_discriminator_loss(ab[0] + ab[1] * real, ab[0] + ab[1] * fake)[
            0
        ]

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    res = optimize.minimize(
        lambda ab: [np.asarray(v) for v in value_and_grad(ab)],
        np.zeros(2),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-12},
    )
    grid = np.linspace(-3.0, 4.0, 71)
    learned = special.expit(res.x[0] + res.x[1] * grid)
    np.testing.assert_allclose(
        learned, special.expit(0.5 - grid), rtol=0, atol=tol.OPTIMAL_DISCRIMINATOR_ATOL
    )
    # The minimum of the loss is 2 (log 2 - JSD) = 1.163451.
    np.testing.assert_allclose(res.fun, 1.163451, **tol.REFERENCE_6DEC)


def test_minimum_discriminator_loss_g2(x64):
    def integrand(x):
        return stats.norm.pdf(x) * np.logaddexp(0.0, x - 0.5) + stats.norm.pdf(
            x, 1.0
        ) * np.logaddexp(0.0, 0.5 - x)

    closed, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)
    np.testing.assert_allclose(closed, 1.163451, **tol.REFERENCE_6DEC)
    jsd = np.log(2.0) - closed / 2.0
    np.testing.assert_allclose(jsd, 0.111421, **tol.REFERENCE_6DEC)

    # The loss on a large random sample at D* = sigmoid(0.5 - x).
    n = 1_000_000
    key_r, key_f = jax.random.split(jax.random.PRNGKey(0))
    real = jax.random.normal(key_r, (n,), jnp.float64)
    fake = 1.0 + jax.random.normal(key_f, (n,), jnp.float64)
    out = genvi.gan_discriminator_loss(0.5 - real, 0.5 - fake)
    per_example_var = np.var(np.logaddexp(0, real - 0.5)) + np.var(
        np.logaddexp(0, 0.5 - fake)
    )
    standard_error = np.sqrt(per_example_var / n)
    assert abs(float(out.loss) - closed) < tol.MC_SIGMAS * standard_error


def _shift_family_loss(theta, z, reg_weight):
    """G(z) = z + theta against D* = sigmoid(0.5 - x), G_old(z) = z + 1."""
    fake = (z + theta)[:, None]
    fake_old = (z + 1.0)[:, None]
    return genvi.gan_generator_loss(
        0.5 - fake[:, 0], fake, fake_old, reg_weight=reg_weight
    ).loss


@pytest.mark.parametrize(
    "reg_weight, expected", [(0.5, 0.5), (1.0, 0.726646), (5.0, 0.940977)]
)
def test_regularised_generator_in_shift_family_g2(x64, reg_weight, expected):
    z = jnp.asarray(normal_quantiles())
    grad = jax.jit(jax.grad(_shift_family_loss), static_argnums=2)

    # The loss is convex in theta, so its minimiser is the root of the gradient.
    theta = optimize.brentq(
        lambda t: float(grad(jnp.float64(t), z, reg_weight)), -5, 5, xtol=1e-12
    )
    np.testing.assert_allclose(theta, expected, **tol.REFERENCE_6DEC)

    # An independent check of the same root by scipy quadrature.
    def exact_grad(t):
        e = integrate.quad(
            lambda s: stats.norm.pdf(s) * special.expit(t + s - 0.5),
            -np.inf,
            np.inf,
            epsabs=1e-13,
        )[0]
        return e + 2.0 * reg_weight * (t - 1.0)

    np.testing.assert_allclose(
        optimize.brentq(exact_grad, -5, 5, xtol=1e-12), expected, **tol.REFERENCE_6DEC
    )


def test_unregularised_generator_drifts_to_minus_infinity(x64):
    z = jnp.asarray(normal_quantiles(20_000))
    grad = jax.jit(jax.vmap(jax.grad(_shift_family_loss), (0, None, None)))
    thetas = jnp.linspace(-10.0, 10.0, 81)
    # reg_weight 0: the gradient is E sigmoid(.) > 0 everywhere, no minimiser.
    assert bool(jnp.all(grad(thetas, z, 0.0) > 0))

    def descend(theta, _):
        return theta - 1.0 * jax.grad(_shift_family_loss)(theta, z, 0.0), None

    theta, _ = jax.lax.scan(descend, jnp.float64(1.0), None, length=2000)
    assert float(theta) < -5.0
    # With the regulariser the same descent settles at the G2 minimiser.
    theta_reg, _ = jax.lax.scan(
        lambda t, _: (t - 0.3 * jax.grad(_shift_family_loss)(t, z, 1.0), None),
        jnp.float64(1.0),
        None,
        length=200,
    )
    np.testing.assert_allclose(float(theta_reg), 0.726646, rtol=0, atol=1e-5)


def test_regulariser_gradient_is_exactly_zero_at_g_old():
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {
        "w1": jax.random.normal(keys[0], (3, 16)),
        "w2": jax.random.normal(keys[1], (16, 2)),
    }
    w_d = jax.random.normal(keys[2], (2, 1))
    z = jax.random.normal(keys[3], (32, 3))

    def generator(p):
        return jnp.tanh(z @ p["w1"]) @ p["w2"]

    def discriminator(x):
        return jnp.tanh(x) @ w_d

    old = generator(params)

    def loss(p, reg_weight):
        fake = generator(p)
        return genvi.gan_generator_loss(
            discriminator(fake), fake, old, reg_weight=reg_weight
        )

    def reg_only(p):
        return loss(p, 1.0).aux["regularizer"]

    for leaf in jax.tree.leaves(jax.jit(jax.grad(reg_only))(params)):
        assert bool(jnp.all(leaf == 0.0))
    grad = jax.jit(jax.grad(lambda p, lam: loss(p, lam).loss))
    g0, g10 = grad(params, 0.0), grad(params, 10.0)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g10)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Away from G_old it is 2 lam (G - G_old) dG: check the value of the term.
    out = genvi.gan_generator_loss(
        jnp.zeros(32), old + 0.5, old, reg_weight=jnp.asarray(2.0)
    )
    np.testing.assert_allclose(float(out.aux["regularizer"]), 2 * 0.25, rtol=1e-6)
    np.testing.assert_allclose(
        float(out.loss), np.log(2.0) + 2.0 * 0.5, **tol.F32_ITERATES
    )


def test_r1_penalty_matches_hand_computation():
    # f(x) = w . x^2 / 2 has gradient w * x, so R1 = mean |w * x|^2.
    w = jnp.array([1.0, -2.0, 0.5])
    x = jax.random.normal(jax.random.PRNGKey(3), (6, 3))
    value = genvi.r1_penalty(lambda v: 0.5 * jnp.sum(w * v**2, axis=1), x)
    np.testing.assert_allclose(
        float(value), float(np.mean(np.sum((w * x) ** 2, axis=1))), rtol=1e-6
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: genvi.gan_discriminator_loss(jnp.zeros(4), jnp.zeros(5)),
            r"gan_discriminator_loss: `real_logits` and `fake_logits` must have the "
            r"same shape, got \(4,\) and \(5,\)",
        ),
        (
            lambda: genvi.gan_discriminator_loss(jnp.zeros((4, 2)), jnp.zeros((4, 2))),
            r"gan_discriminator_loss: `real_logits` must have shape \(batch,\) or "
            r"\(batch, 1\), got \(4, 2\)",
        ),
        (
            lambda: genvi.gan_generator_loss(
                jnp.zeros(4), jnp.zeros((4, 2)), jnp.zeros((4, 3)), reg_weight=1.0
            ),
            r"gan_generator_loss: `fake` and `fake_old` must have the same shape, "
            r"got \(4, 2\) and \(4, 3\)",
        ),
        (
            lambda: genvi.gan_generator_loss(
                jnp.zeros(3), jnp.zeros((4, 2)), jnp.zeros((4, 2)), reg_weight=1.0
            ),
            r"gan_generator_loss: `fake` must have a leading batch dimension that is "
            r"a multiple of the number of logits 3, got shape \(4, 2\)",
        ),
        (
            lambda: genvi.gan_generator_loss(
                jnp.zeros((4, 3)), jnp.zeros((4, 2)), jnp.zeros((4, 2)), reg_weight=1.0
            ),
            r"gan_generator_loss: `fake_logits` must have shape \(batch,\) or "
            r"\(batch, 1\), got \(4, 3\)",
        ),
        (
            lambda: genvi.gan_generator_loss(
                jnp.zeros(4), jnp.zeros((4, 2)), jnp.zeros((4, 2)), reg_weight=-1.0
            ),
            r"gan_generator_loss: `reg_weight` must be >= 0, got -1.0",
        ),
    ],
)
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_reg_weight_type_error():
    with pytest.raises(
        TypeError, match=r"gan_generator_loss: `reg_weight` must be a real number, "
    ):
        genvi.gan_generator_loss(
            jnp.zeros(2), jnp.zeros((2, 1)), jnp.zeros((2, 1)), reg_weight="1"
        )
