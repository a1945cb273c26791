"""Gradient noise statistics, scaling rules, exact moments (docs/reference.md R7, R8).

Every closed form is checked against an independent computation: numpy for the
covariance, the SGD / heavy-ball recursions and scipy's Lyapunov and ODE solvers
for the moments, a scipy optimisation for the critical batch size.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.optimize

import dynopt
from tests.tolerances import (
    CLOSED_FORM,
    ORDER_SLOPE,
    REFERENCE_3SIG,
    REFERENCE_4DEC,
    SCIPY_OPTIMIZE,
)

# ----------------------------------------------------------------------------
# Per-example gradients and their covariance.


def _regression():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(64, 3))
    y = a @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=64)
    params = {"w": jnp.asarray([0.3, 0.1, -0.2]), "b": jnp.asarray(0.7)}

    def loss(p, example):
        ai, yi = example
        return 0.5 * (ai @ p["w"] + p["b"] - yi) ** 2

    # numpy reference: the per-example gradient in ravel_pytree order (b, then w)
    w, b = np.asarray(params["w"]), float(params["b"])
    r = a @ w + b - y
    grads = np.concatenate([r[:, None], r[:, None] * a], axis=1)
    return loss, params, (jnp.asarray(a), jnp.asarray(y)), grads


def test_per_example_gradients_match_numpy(x64):
    loss, params, batch, grads = _regression()
    out = dynopt.per_example_gradients(loss, params, batch)
    np.testing.assert_allclose(out["b"], grads[:, 0], **CLOSED_FORM)
    np.testing.assert_allclose(out["w"], grads[:, 1:], **CLOSED_FORM)


@pytest.mark.parametrize("ddof", [0, 1])
def test_gradient_covariance_matches_numpy(x64, ddof):
    loss, params, batch, grads = _regression()
    expected = np.cov(grads, rowvar=False, ddof=ddof)
    full = dynopt.gradient_covariance(loss, params, batch, ddof=ddof)
    np.testing.assert_allclose(full, expected, **CLOSED_FORM)
    diag = dynopt.gradient_covariance(loss, params, batch, kind="diagonal", ddof=ddof)
    np.testing.assert_allclose(diag["b"], expected[0, 0], **CLOSED_FORM)
    np.testing.assert_allclose(diag["w"], np.diag(expected)[1:], **CLOSED_FORM)
    trace = dynopt.gradient_covariance(loss, params, batch, kind="trace", ddof=ddof)
    np.testing.assert_allclose(trace, np.trace(expected), **CLOSED_FORM)


def test_gradient_covariance_is_jittable(x64):
    loss, params, batch, grads = _regression()
    jitted = jax.jit(lambda p, b: dynopt.gradient_covariance(loss, p, b, kind="trace"))
    np.testing.assert_allclose(
        jitted(params, batch), np.trace(np.cov(grads, rowvar=False)), **CLOSED_FORM
    )


def test_gradient_noise_population_and_sample(x64):
    loss, params, batch, grads = _regression()
    n = grads.shape[0]
    mean = grads.mean(0)
    pop = dynopt.gradient_noise(loss, params, batch, sample=False)
    trace0 = np.trace(np.cov(grads, rowvar=False, ddof=0))
    np.testing.assert_allclose(pop.covariance_trace, trace0, **CLOSED_FORM)
    np.testing.assert_allclose(pop.grad_sq_norm, mean @ mean, **CLOSED_FORM)
    np.testing.assert_allclose(
        pop.critical_batch_size, trace0 / (mean @ mean), **CLOSED_FORM
    )
    np.testing.assert_allclose(pop.mean["w"], mean[1:], **CLOSED_FORM)
    est = dynopt.gradient_noise(loss, params, batch)
    trace1 = np.trace(np.cov(grads, rowvar=False, ddof=1))
    np.testing.assert_allclose(
        est.grad_sq_norm, mean @ mean - trace1 / n, **CLOSED_FORM
    )
    assert est.num_examples == n


def test_unbiased_sq_norm_is_unbiased(x64):
    # E|g_bar|^2 = |G|^2 + tr(Sigma)/n: averaged over many batches the corrected
    # estimate recovers |G|^2 = |x - mu|^2 while the plain one overshoots.
    mu, x, n, reps = jnp.array([1.0, -1.0]), jnp.array([2.0, 0.5]), 8, 4000
    z = mu + jax.random.normal(jax.random.key(0), (reps, n, 2))

    def loss(p, zi):
        return 0.5 * jnp.sum((p - zi) ** 2)

    stats = jax.vmap(lambda b: dynopt.gradient_noise(loss, x, b))(z)
    est = np.asarray(stats.grad_sq_norm)
    truth = float(jnp.sum((x - mu) ** 2))  # 1 + 2.25
    se = est.std() / np.sqrt(reps)
    assert abs(est.mean() - truth) < 4 * se
    plain = np.asarray(jnp.sum(stats.mean**2, axis=-1))
    assert plain.mean() - truth > 4 * se  # bias tr(Sigma)/n = 2/8


def test_critical_batch_size_is_where_half_the_gain_is_lost(x64):
    """McCandlish et al. for H = h I: with the best step size, the expected gain
    of one step at batch B is 1 / (1 + B_simple / B) of the noiseless gain, so the
    gain is half of it at B = B_simple. The B is found by scipy from the expected
    loss of a step on the quadratic, independently of the formula."""
    rng = np.random.default_rng(1)
    h, d, n = 2.0, 4, 4096
    x = jnp.asarray(rng.normal(size=d))
    z = jnp.asarray(rng.normal(size=(n, d)) * np.array([3.0, 1.0, 0.5, 2.0]))

    def loss(p, zi):  # per-example gradient h (p - z_i): G = h (p - z_bar)
        return 0.5 * h * jnp.sum((p - zi) ** 2)

    noise = dynopt.gradient_noise(loss, x, z, sample=False)
    g = np.asarray(noise.mean)
    tr = float(noise.covariance_trace)

    def best_gain(batch):  # max over lr of L(x) - E L(x - lr g_hat)
        res = scipy.optimize.minimize_scalar(
            lambda lr: -(lr * g @ g - 0.5 * lr**2 * h * (g @ g + tr / batch)),
            bounds=(0.0, 2.0 / h),
            method="bounded",
            options={"xatol": 1e-12},
        )
        return -res.fun

    half = scipy.optimize.brentq(
        lambda b: best_gain(b) - 0.5 * best_gain(1e12), 1e-3, 1e6, xtol=1e-10
    )
    np.testing.assert_allclose(noise.critical_batch_size, half, **SCIPY_OPTIMIZE)
    np.testing.assert_allclose(
        dynopt.critical_batch_size(tr, g @ g), half, **SCIPY_OPTIMIZE
    )


# ----------------------------------------------------------------------------
# Noise scale and scaling rules.


def test_noise_scale_and_scaling_rules(x64):
    assert float(dynopt.noise_scale(0.1, 1000, 10)) == pytest.approx(10.0)
    # momentum 0.9 is SGD at ten times the rate
    assert float(dynopt.noise_scale(0.1, 1000, 10, beta=0.9)) == pytest.approx(100.0)
    lr = dynopt.linear_scaling_rule(0.1, 128, 1024)
    assert float(lr) == pytest.approx(0.8)
    # the linear rule keeps the noise scale
    np.testing.assert_allclose(
        dynopt.noise_scale(lr, 5000, 1024), dynopt.noise_scale(0.1, 5000, 128)
    )
    hp = dynopt.sqrt_scaling_rule(1e-3, 64, 256, b1=0.9, b2=0.99, eps=1e-8)
    np.testing.assert_allclose(hp, (2e-3, 0.6, 0.96, 5e-9), **CLOSED_FORM)
    # scaling up and back down is the identity
    back = dynopt.sqrt_scaling_rule(*hp[:1], 256, 64, b1=hp.b1, b2=hp.b2, eps=hp.eps)
    np.testing.assert_allclose(back, (1e-3, 0.9, 0.99, 1e-8), **CLOSED_FORM)


# ----------------------------------------------------------------------------
# docs/reference.md R7: the closed forms of the weak errors, against the recursion of
# E[x_k^2] and a scipy integration of the moment ODE, then against the table.

R7_LRS = [0.1, 0.05, 0.025]
R7_SME1 = [1.08e-2, 6.09e-3, 3.22e-3]
R7_SME2 = [3.57e-3, 8.73e-4, 2.16e-4]


def _sgd_moment_recursion(lr, h, s2, x0, k):
    m = x0**2
    for _ in range(k):
        m = (1 - lr * h) ** 2 * m + lr**2 * s2
    return m


def _ou_moment_ode(a, diffusion, x0, t):
    sol = scipy.integrate.solve_ivp(
        lambda _, m: -2 * a * m + diffusion,
        (0.0, t),
        [x0**2],
        rtol=1e-12,
        atol=1e-14,
    )
    return sol.y[0, -1]


@pytest.mark.parametrize("h", [1.0, 3.0])
def test_second_moments_against_recursion_and_ode(x64, h):
    lr, s2, x0 = 0.05, 0.7, 1.3
    for k in [0, 1, 7, 20]:
        np.testing.assert_allclose(
            dynopt.sgd_second_moment(lr, h, s2, x0, k),
            _sgd_moment_recursion(lr, h, s2, x0, k),
            **CLOSED_FORM,
        )
    for order, a in [(1, h), (2, h * (1 + lr * h / 2))]:
        np.testing.assert_allclose(
            dynopt.sme_second_moment(lr, h, s2, x0, 1.0, order=order),
            _ou_moment_ode(a, lr * s2, x0, 1.0),
            rtol=1e-9,
        )


def test_r7_weak_errors_and_slopes(x64):
    err1, err2 = [], []
    for lr in R7_LRS:
        k = round(1 / lr)
        sgd = dynopt.sgd_second_moment(lr, 1.0, 1.0, 1.0, k)
        err1.append(abs(float(sgd - dynopt.sme_second_moment(lr, 1.0, 1.0, 1.0, 1.0))))
        err2.append(
            abs(float(sgd - dynopt.sme_second_moment(lr, 1.0, 1.0, 1.0, 1.0, order=2)))
        )
    np.testing.assert_allclose(err1, R7_SME1, **REFERENCE_3SIG)
    np.testing.assert_allclose(err2, R7_SME2, **REFERENCE_3SIG)
    slope1 = np.polyfit(np.log(R7_LRS), np.log(err1), 1)[0]
    slope2 = np.polyfit(np.log(R7_LRS), np.log(err2), 1)[0]
    assert abs(slope1 - 1) < ORDER_SLOPE
    assert abs(slope2 - 2) < ORDER_SLOPE


def test_r7_stationary_variance(x64):
    exact = dynopt.sgd_stationary_variance(0.1, 1.0, 0.25)
    sme = dynopt.sme_stationary_variance(0.1, 1.0, 0.25)
    np.testing.assert_allclose(exact, 0.013158, **REFERENCE_4DEC)
    np.testing.assert_allclose(sme, 0.0125, **REFERENCE_4DEC)
    # the fixed point of the variance recursion, for another curvature
    lr, h, s2 = 0.3, 2.5, 0.4
    v = dynopt.sgd_stationary_variance(lr, h, s2)
    np.testing.assert_allclose(v, (1 - lr * h) ** 2 * v + lr**2 * s2, **CLOSED_FORM)
    # and the limit of the second moment
    np.testing.assert_allclose(
        dynopt.sgd_second_moment(lr, h, s2, 1.0, 10_000), v, **CLOSED_FORM
    )


@pytest.mark.parametrize(
    "lr, exact, sme", [(0.01, 0.01253, 0.01250), (0.05, 0.06333, 0.06250)]
)
def test_r8_momentum_stationary_variance(x64, lr, exact, sme):
    beta, s2 = 0.9, 0.25
    hb = dynopt.momentum_stationary_variance(lr, beta, 1.0, s2)
    np.testing.assert_allclose(hb, exact, **REFERENCE_3SIG)
    np.testing.assert_allclose(
        dynopt.sme_stationary_variance(lr, 1.0, s2, beta=beta), sme, **REFERENCE_3SIG
    )


@pytest.mark.parametrize("lr, beta, h", [(0.05, 0.9, 1.0), (0.2, 0.5, 3.0)])
def test_momentum_stationary_variance_solves_lyapunov(x64, lr, beta, h):
    # (x_k, m_k) with m <- beta m + h x + xi, x <- x - lr m is linear:
    # z' = A z + b xi, and the stationary covariance solves C = A C A^T + s2 b b^T.
    s2 = 0.3
    a = np.array([[1 - lr * h, -lr * beta], [h, beta]])
    b = np.array([[-lr], [1.0]])
    cov = scipy.linalg.solve_discrete_lyapunov(a, s2 * b @ b.T)
    np.testing.assert_allclose(
        dynopt.momentum_stationary_variance(lr, beta, h, s2), cov[0, 0], **CLOSED_FORM
    )


# ----------------------------------------------------------------------------
# Errors name the function, the argument, the rule and the value.


def _loss(p, z):
    return 0.5 * jnp.sum((p - z) ** 2)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: dynopt.gradient_covariance(
                _loss, jnp.zeros(2), jnp.ones((4, 2)), kind="x"
            ),
            r"gradient_covariance: `kind` must be one of "
            r"\('full', 'diagonal', 'trace'\), got 'x'",
        ),
        (
            lambda: dynopt.gradient_covariance(
                _loss, jnp.zeros(2), jnp.ones((4, 2)), ddof=2
            ),
            r"gradient_covariance: `ddof` must be one of \(0, 1\), got 2",
        ),
        (
            lambda: dynopt.gradient_covariance(_loss, jnp.zeros(2), jnp.ones((1, 2))),
            r"gradient_covariance: `batch` must hold at least 2 examples .* got 1",
        ),
        (
            lambda: dynopt.gradient_noise(
                lambda p, e: _loss(p, e[0]),
                jnp.zeros(2),
                (jnp.ones((4, 2)), jnp.ones(3)),
            ),
            r"gradient_noise: every leaf of `batch` must have the same leading",
        ),
        (
            lambda: dynopt.gradient_noise(
                _loss, jnp.zeros(2), jnp.ones((4, 2)), sample=1
            ),
            r"gradient_noise: `sample` must be a bool, got 1",
        ),
        (
            lambda: dynopt.critical_batch_size(1.0, 0.0),
            r"critical_batch_size: `grad_sq_norm` must be > 0, got 0.0",
        ),
        (
            lambda: dynopt.critical_batch_size(-1.0, 1.0),
            r"critical_batch_size: `covariance_trace` must satisfy "
            r"0 <= covariance_trace",
        ),
        (
            lambda: dynopt.noise_scale(0.1, 1000, 0),
            r"noise_scale: `batch_size` must be > 0, got 0",
        ),
        (
            lambda: dynopt.noise_scale(0.1, 1000, 8, beta=1.0),
            r"noise_scale: `beta` must satisfy 0 <= beta < 1, got 1.0",
        ),
        (
            lambda: dynopt.linear_scaling_rule(-0.1, 8, 16),
            r"linear_scaling_rule: `learning_rate` must be finite and >= 0, got -0.1",
        ),
        (
            lambda: dynopt.sqrt_scaling_rule(0.1, 8, -16),
            r"sqrt_scaling_rule: `new_batch_size` must satisfy 0 <= new_batch_size",
        ),
        (
            lambda: dynopt.sqrt_scaling_rule(0.1, 8, 16, b2=1.5),
            r"sqrt_scaling_rule: `b2` must satisfy 0 <= b2 < 1, got 1.5",
        ),
        (
            lambda: dynopt.sgd_stationary_variance(1.0, 2.5, 1.0),
            r"sgd_stationary_variance: `learning_rate \* curvature` must be in "
            r"\(0, 2\) for a stationary distribution, got 2.5",
        ),
        (
            lambda: dynopt.sgd_stationary_variance(0.1, 0.0, 1.0),
            r"sgd_stationary_variance: `curvature` must be > 0, got 0.0",
        ),
        (
            lambda: dynopt.momentum_stationary_variance(1.0, 0.5, 3.5, 1.0),
            r"momentum_stationary_variance: `learning_rate \* curvature` must be in "
            r"\(0, 3\) for a stationary distribution, got 3.5",
        ),
        (
            lambda: dynopt.sme_stationary_variance(0.1, 1.0, -1.0),
            r"sme_stationary_variance: `noise_variance` must be >= 0, got -1.0",
        ),
        (
            lambda: dynopt.sme_second_moment(0.1, 1.0, 1.0, 1.0, 1.0, order=3),
            r"sme_second_moment: `order` must be one of \(1, 2\), got 3",
        ),
        (
            lambda: dynopt.sgd_second_moment(0.1, -1.0, 1.0, 1.0, 3),
            r"sgd_second_moment: `curvature` must be > 0, got -1.0",
        ),
    ],
)
def test_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_moments_broadcast_over_eigen_directions(x64):
    # A quadratic with Hessian eigenvalues h_i and noise variances s_i: every
    # moment function acts per direction.
    h, s2 = jnp.array([0.5, 1.0, 3.0]), jnp.array([0.2, 0.1, 0.4])
    lr = 0.1
    cases = [
        (dynopt.sgd_second_moment, (lr, h, s2, 1.0, 7)),
        (dynopt.sme_second_moment, (lr, h, s2, 1.0, 0.7)),
        (dynopt.sgd_stationary_variance, (lr, h, s2)),
        (dynopt.momentum_stationary_variance, (lr, 0.9, h, s2)),
    ]
    for fn, args in cases:
        vector = fn(*args)
        for i in range(3):
            scalar_args = [
                float(a[i]) if getattr(a, "shape", ()) == (3,) else a for a in args
            ]
            np.testing.assert_allclose(vector[i], fn(*scalar_args), **CLOSED_FORM)
    with pytest.raises(ValueError, match=r"sgd_stationary_variance: `curvature` "):
        dynopt.sgd_stationary_variance(lr, jnp.array([1.0, -1.0]), 0.1)
    with pytest.raises(
        ValueError,
        match=r"sgd_stationary_variance: `learning_rate \* curvature` must be in "
        r"\(0, 2\) for a stationary distribution, got 3.0",
    ):
        dynopt.sgd_stationary_variance(1.0, jnp.array([1.0, 3.0]), 0.1)
