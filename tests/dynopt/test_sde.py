"""Monte-Carlo tests of the SME integrator and of noisy optimiser paths (x64).

Every Monte-Carlo estimate is compared with an exact value (closed-form moments
of linear SDEs, of their Euler-Maruyama discretisation, of the SGD and heavy-ball
recursions, or scipy's discrete Lyapunov solver) within ``MC_SIGMAS`` standard
errors of the estimate. Seeds are fixed, so the tests are deterministic; the
margins are what makes them meaningful.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import dynopt
from tests.tolerances import MC_SIGMAS


def _within(samples, exact, sigmas=MC_SIGMAS):
    samples = np.asarray(samples)
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    assert abs(samples.mean() - exact) <= sigmas * se, (samples.mean(), exact, se)
    return se


def _half_square(x):
    return 0.5 * jnp.sum(x**2)


# ----------------------------------------------------------------------------
# docs/reference.md R7 by simulation: f_i = (x - xi_i)^2 / 2, Var(xi)/B = 1, x0 = 1,
# T = 1, lr = 0.1. ShARK has weak order 2 for additive noise; with two substeps
# per SGD step its bias on E[X_T^2] (about 1e-5, from a 20,000-path run) is far
# below the standard errors here (about 2e-3 for the marginals).


@pytest.mark.slow
def test_r7_sme_and_sgd_by_simulation(x64):
    lr, steps, paths = 0.1, 10, 2000
    for order in [1, 2]:  # one compilation serves both orders
        out = dynopt.stochastic_modified_equation(
            _half_square,
            jnp.ones(1),
            lr,
            1.0,
            steps,
            key=jax.random.key(order),
            num_paths=paths,
            order=order,
            save_every=5,
            substeps=2,
            solver=diffrax.ShARK(),
            with_sgd=True,
        )
        np.testing.assert_allclose(out.times, [0.0, 0.5, 1.0], rtol=1e-12)
        assert out.sme.shape == out.sgd.shape == (paths, 3, 1)
        sme2 = np.asarray(out.sme[:, -1, 0]) ** 2
        sgd2 = np.asarray(out.sgd[:, -1, 0]) ** 2
        exact_sme = float(dynopt.sme_second_moment(lr, 1.0, 1.0, 1.0, 1.0, order))
        exact_sgd = float(dynopt.sgd_second_moment(lr, 1.0, 1.0, 1.0, steps))
        _within(sme2, exact_sme)
        _within(sgd2, exact_sgd)
        # The coupled estimate of the weak error (SGD's noise is the SME's
        # Brownian increment) has a far smaller standard error than either
        # marginal.
        se = _within(sgd2 - sme2, exact_sgd - exact_sme)
        assert se < abs(exact_sgd - exact_sme) / 10
        # The halfway point too: E[x_5^2] of SGD.
        _within(
            np.asarray(out.sgd[:, 1, 0]) ** 2,
            float(dynopt.sgd_second_moment(lr, 1.0, 1.0, 1.0, 5)),
        )


def test_multiplicative_noise_euler_maruyama_moments(x64):
    """State-dependent full-matrix noise on a pytree, Euler-Maruyama, unsafe path.

    Sigma(x) = c^2 diag(x^2) makes each coordinate a geometric Brownian motion
    dX = -X dt + sqrt(lr) c |X| dW. One Euler-Maruyama step of size dt maps
    E[X^2] to ((1 - dt)^2 + lr c^2 dt) E[X^2], exactly.
    """
    lr, c2, steps, substeps, paths = 0.1, 5.0, 10, 5, 2000
    params = {"u": jnp.asarray(1.0), "v": jnp.asarray([2.0])}

    def loss(p):
        return 0.5 * (p["u"] ** 2 + jnp.sum(p["v"] ** 2))

    def noise(p):
        flat = jnp.concatenate([p["u"][None], p["v"]])
        return c2 * jnp.diag(flat**2)

    out = dynopt.stochastic_modified_equation(
        loss,
        params,
        lr,
        noise,
        steps,
        key=jax.random.key(3),
        num_paths=paths,
        substeps=substeps,
        brownian="unsafe",
    )
    assert out.sgd is None
    assert out.sme["u"].shape == (paths, steps + 1)
    assert out.sme["v"].shape == (paths, steps + 1, 1)
    dt = lr / substeps
    factor = ((1 - dt) ** 2 + lr * c2 * dt) ** (steps * substeps)
    _within(np.asarray(out.sme["u"][:, -1]) ** 2, factor * 1.0)
    _within(np.asarray(out.sme["v"][:, -1, 0]) ** 2, factor * 4.0)


# ----------------------------------------------------------------------------
# Stationary variances of the real optimisers with Gaussian gradient noise.


def test_r7_sgd_stationary_variance_by_simulation(x64):
    # 0.81^100: the start is forgotten to 1e-9 after 100 steps.
    lr, s2, paths = 0.1, 0.25, 50_000
    out = dynopt.noisy_paths(
        dynopt.sgd(lr),
        _half_square,
        jnp.ones(1),
        s2,
        100,
        key=jax.random.key(0),
        num_paths=paths,
        save_every=50,
    )
    np.testing.assert_allclose(out.times, [0.0, 5.0, 10.0], rtol=1e-12)
    x2 = np.asarray(out.params[:, -1, 0]) ** 2
    se = _within(x2, float(dynopt.sgd_stationary_variance(lr, 1.0, s2)))
    # ... and the SME's 0.0125 is rejected: SGD is measurably hotter.
    sme = float(dynopt.sme_stationary_variance(lr, 1.0, s2))
    assert x2.mean() - sme > MC_SIGMAS * se


@pytest.mark.parametrize("lr", [0.01, 0.05])
def test_r8_momentum_stationary_variance_by_simulation(x64, lr):
    # |eigenvalue| = sqrt(beta): the start is forgotten to 1e-14 after 300 steps.
    beta, s2, paths, steps = 0.9, 0.25, 40_000, 300
    opt = dynopt.momentum(lr, beta)
    out = dynopt.noisy_paths(
        opt,
        _half_square,
        jnp.ones(1),
        s2,
        steps,
        key=jax.random.key(1),
        num_paths=paths,
        save_every=150,
    )
    gamma = float(opt.dynamics.step_size())
    np.testing.assert_allclose(out.times, gamma * np.array([0, 150, 300]), rtol=1e-9)
    x2 = np.asarray(out.params[:, -1, 0]) ** 2
    _within(x2, float(dynopt.momentum_stationary_variance(lr, beta, 1.0, s2)))


def test_full_covariance_noise_matches_discrete_lyapunov(x64):
    lr, paths = 0.1, 40_000
    hess = np.array([[2.0, 0.5], [0.5, 1.0]])
    sigma = np.array([[0.3, 0.1], [0.1, 0.2]])

    def loss(x):
        return 0.5 * x @ jnp.asarray(hess) @ x

    out = dynopt.noisy_paths(
        dynopt.sgd(lr),
        loss,
        jnp.zeros(2),
        jnp.asarray(sigma),
        100,
        key=jax.random.key(2),
        num_paths=paths,
        save_every=100,
    )
    a = np.eye(2) - lr * hess
    cov = scipy.linalg.solve_discrete_lyapunov(a, lr**2 * sigma)
    x = np.asarray(out.params[:, -1])
    for i, j in [(0, 0), (0, 1), (1, 1)]:
        _within(x[:, i] * x[:, j], cov[i, j])


def test_noisy_paths_with_plain_optax_counts_steps(x64):

    out = dynopt.noisy_paths(
        optax.sgd(0.1),
        _half_square,
        jnp.ones(3),
        jnp.zeros(3),
        6,
        key=jax.random.key(0),
        num_paths=2,
        save_every=3,
    )
    np.testing.assert_allclose(out.times, [0.0, 3.0, 6.0])
    # zero noise: both paths are GD, x_k = 0.9^k
    np.testing.assert_allclose(out.params[:, :, 0], [[1, 0.729, 0.531441]] * 2)


# ----------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(num_steps=10, save_every=3),
            r"stochastic_modified_equation: `num_steps` must be a multiple of "
            r"`save_every` \(3\), got 10",
        ),
        (
            dict(order=3),
            r"stochastic_modified_equation: `order` must be one of \(1, 2\), got 3",
        ),
        (
            dict(brownian="bridge"),
            r"stochastic_modified_equation: `brownian` must be one of "
            r"\('virtual', 'unsafe'\), got 'bridge'",
        ),
        (
            dict(brownian="unsafe", with_sgd=True),
            r"stochastic_modified_equation: `with_sgd=True` needs "
            r"`brownian='virtual'`",
        ),
        (
            dict(noise_covariance=jnp.ones(3)),
            r"stochastic_modified_equation: `noise_covariance` must be a scalar or "
            r"have shape \(2,\) or \(2, 2\) for 2 parameters, got shape \(3,\)",
        ),
        (
            dict(noise_covariance=-1.0),
            r"stochastic_modified_equation: `noise_covariance` must be >= 0, got -1.0",
        ),
        (
            dict(loss_fn=lambda x: x),
            r"stochastic_modified_equation: `loss_fn` must return a scalar, "
            r"got shape \(2,\)",
        ),
        (
            dict(learning_rate=0.0),
            r"stochastic_modified_equation: `learning_rate` must be > 0, got 0.0",
        ),
        (
            dict(num_paths=0),
            r"stochastic_modified_equation: `num_paths` must be >= 1, got 0",
        ),
        (
            dict(num_steps=2.5),
            r"stochastic_modified_equation: `num_steps` must be an int, got 2.5",
        ),
        (
            dict(substeps=0),
            r"stochastic_modified_equation: `substeps` must be >= 1, got 0",
        ),
    ],
)
def test_sme_errors(kwargs, match):
    args = dict(
        loss_fn=_half_square,
        params=jnp.ones(2),
        learning_rate=0.1,
        noise_covariance=1.0,
        num_steps=10,
    )
    args.update(kwargs)
    positional = [args.pop(k) for k in list(args)[:5]]
    with pytest.raises((ValueError, TypeError), match=match):
        dynopt.stochastic_modified_equation(*positional, key=jax.random.key(0), **args)


@pytest.mark.parametrize(
    "optimizer, noise, match",
    [
        (
            "sgd",
            1.0,
            r"noisy_paths: `optimizer` must be an optax GradientTransformation, "
            r"got 'sgd'",
        ),
        (
            None,
            jnp.ones((2, 3)),
            r"noisy_paths: `noise_covariance` must be a scalar or have shape",
        ),
    ],
)
def test_noisy_paths_errors(optimizer, noise, match):
    opt = dynopt.sgd(0.1) if optimizer is None else optimizer
    with pytest.raises((ValueError, TypeError), match=match):
        dynopt.noisy_paths(
            opt, _half_square, jnp.ones(2), noise, 4, key=jax.random.key(0)
        )
