"""Su-Boyd-Candes, high-resolution and modified flows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import j1

import dynopt
from tests import tolerances as tol
from tests.dynopt.lab_problems import R2_CURVATURES, r2_quadratic, r6_quadratic, wavy


def test_su_boyd_candes_matches_the_bessel_closed_form(x64):
    """X(t) = 2 J1(sqrt(lam) t) / (sqrt(lam) t) x0 per eigen-direction."""
    times = np.linspace(0.0, 300.0, 61)
    traj = dynopt.continuous_trajectory(
        dynopt.nag_c(0.25), r2_quadratic, jnp.ones(2), times
    )
    z = np.sqrt(np.asarray(R2_CURVATURES))[None, :] * times[:, None]
    safe = np.where(z > 0, z, 1.0)
    expected = np.where(z > 0, 2 * j1(safe) / safe, 1.0)
    np.testing.assert_allclose(traj.params, expected, **tol.ODE_SOLVE_F64)


def test_su_boyd_candes_series_start(x64):
    flow = dynopt.SuBoydCandesFlow(start_time=0.01)
    x, v = flow.series_start(r2_quadratic, jnp.ones(2))
    t, lam = 0.01, np.asarray(R2_CURVATURES)
    z = np.sqrt(lam) * t
    np.testing.assert_allclose(x, 2 * j1(z) / z, rtol=0, atol=1e-12)
    # d/dt [2 J1(a t)/(a t)] = -2 a J2(a t) / (a t)
    from scipy.special import jv

    np.testing.assert_allclose(v, -2 * np.sqrt(lam) * jv(2, z) / z, atol=1e-10)


def _field_at(flow, loss, x, v):
    return flow.vector_field(loss)(1.0, (x, v), None)


@pytest.mark.parametrize("make", ["nesterov", "high_resolution"])
def test_hessian_damping_exact_and_by_gradient_differences_agree(x64, make):
    x = jnp.array([0.3, -1.2, 2.0])
    v = jnp.array([0.5, 0.1, -0.7])
    if make == "nesterov":
        exact = dynopt.nesterov(0.05, 0.9).dynamics.flow()
        fd = dynopt.nesterov(0.05, 0.9, hessian="finite_difference").dynamics.flow()
        assert fd.hessian == "finite_difference"
    else:
        exact = dynopt.high_resolution_flow("nesterov", 0.05, 0.5)
        fd = dynopt.high_resolution_flow(
            "nesterov", 0.05, 0.5, hessian="finite_difference"
        )
    a, b = _field_at(exact, wavy, x, v), _field_at(fd, wavy, x, v)
    np.testing.assert_allclose(a[1], b[1], **tol.HESSIAN_FINITE_DIFFERENCE)
    # The damping term is non-trivial here: it changes the field.
    plain = _field_at(dynopt.HeavyBallFlow(exact.friction), wavy, x, v)
    assert np.max(np.abs(np.asarray(a[1]) - np.asarray(plain[1]))) > 1e-2


def test_gradient_difference_step_scales_with_the_dtype():
    """float32 (x64 off): the default step ~ cbrt(eps) keeps the central
    difference within 1e-3 of the exact product at random points, where a fixed
    step of 1e-6 was 5% off (median) and up to 50% off."""
    assert not jax.config.jax_enable_x64
    g = jax.grad(wavy)
    for k in range(20):
        kx, kv = jax.random.split(jax.random.PRNGKey(k))
        x = jax.random.normal(kx, (5,))
        v = jax.random.normal(kv, (5,))
        exact = np.asarray(dynopt.hessian_vector_product(g, x, v, "hvp"))
        fd = dynopt.hessian_vector_product(g, x, v, "finite_difference")
        assert fd.dtype == jnp.float32
        scale = np.max(np.abs(exact))
        np.testing.assert_allclose(
            fd, exact, rtol=0, atol=tol.HESSIAN_FINITE_DIFFERENCE_F32 * scale
        )
    # The same through the flow that uses it (Nesterov's Hessian damping).
    x, v = jnp.array([0.3, -1.2, 2.0]), jnp.array([0.5, 0.1, -0.7])
    fd_flow = dynopt.nesterov(0.05, 0.9, hessian="finite_difference").dynamics.flow()
    exact_flow = dynopt.nesterov(0.05, 0.9).dynamics.flow()
    a, b = _field_at(exact_flow, wavy, x, v)[1], _field_at(fd_flow, wavy, x, v)[1]
    damping = exact_flow.hessian_damping * dynopt.hessian_vector_product(g, x, v)
    np.testing.assert_allclose(
        b, a, rtol=0, atol=tol.HESSIAN_FINITE_DIFFERENCE_F32 * np.max(np.abs(damping))
    )
    # v = 0 (a flow at rest): the product is exactly 0, not 0/0.
    zero = dynopt.hessian_vector_product(g, x, jnp.zeros(3), "finite_difference")
    np.testing.assert_array_equal(zero, jnp.zeros(3))


def test_high_resolution_field_is_the_formula(x64):
    """On f = x^T H x / 2: v' = -(2 sqrt(mu) + sqrt(s) H) v - (1 + sqrt(mu s)) H x."""
    s, mu = 0.04, 0.25
    h = jnp.array([0.25, 3.0])
    x, v = jnp.array([1.0, -2.0]), jnp.array([0.3, 0.4])

    def loss(y):
        return 0.5 * jnp.sum(h * y**2)

    for method, c in (("heavy_ball", 0.0), ("nesterov", np.sqrt(s))):
        flow = dynopt.high_resolution_flow(method, s, mu)
        dx, dv = _field_at(flow, loss, x, v)
        expected = -(2 * np.sqrt(mu) + c * h) * v - (1 + np.sqrt(mu * s)) * h * x
        np.testing.assert_allclose(dx, v, rtol=1e-15)
        np.testing.assert_allclose(dv, expected, rtol=1e-12)


def test_high_resolution_flow_errors():
    with pytest.raises(
        ValueError, match=r"high_resolution_flow: `method` must be one of"
    ):
        dynopt.high_resolution_flow("adam", 0.1, 1.0)
    with pytest.raises(
        ValueError, match=r"high_resolution_flow: `step` must be > 0, got 0.0"
    ):
        dynopt.high_resolution_flow("nesterov", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"`hessian` must be one of"):
        dynopt.high_resolution_flow("nesterov", 0.1, 1.0, hessian="exact")


def test_modified_gradient_field(x64):
    """-grad(f + lr/4 |grad f|^2) = -(g + lr/2 H g), checked with jax.hessian."""
    x = jnp.array([0.3, -1.2, 2.0])
    field = dynopt.ModifiedGradientFlow(0.1).vector_field(wavy)(0.0, x, None)
    g, hess = jax.grad(wavy)(x), jax.hessian(wavy)(x)
    np.testing.assert_allclose(field, -(g + 0.05 * hess @ g), rtol=1e-12)


def _field_matrix(flow, loss, d):
    """The matrix A of a flow's field y' = A y on a quadratic loss, y = (x, v),
    read off at the unit vectors."""
    field = flow.vector_field(loss)
    columns = []
    for e in np.eye(2 * d):
        dx, dv = field(0.0, (jnp.asarray(e[:d]), jnp.asarray(e[d:])), None)
        columns.append(np.concatenate([np.asarray(dx), np.asarray(dv)]))
    return np.stack(columns, axis=1)


def _linear_flow_path(a, x0, x1, h, times):
    """Exact path y(t_k) = expm(A t_k) y(0) (scipy) of y' = A y from x(0) = x0,
    with the velocity that reaches x1 at t = h to second order:
    x1 = x0 + h v + h^2 / 2 x''(0)."""
    from scipy.linalg import expm

    d = len(x0)
    v = (x1 - x0) / h
    for _ in range(30):  # a contraction: the h/2 x''(0) correction is O(h)
        acc = (a @ np.concatenate([x0, v]))[d:]
        v = (x1 - x0) / h - 0.5 * h * acc
    y0 = np.concatenate([x0, v])
    return np.array([(expm(a * t) @ y0)[:d] for t in times])


def test_high_resolution_odes_track_their_discrete_methods(x64):
    """Shi, Du, Jordan, Su (arXiv:1810.08907): at step s, NAG-SC and heavy ball
    (lr s, beta = (1 - sqrt(mu s)) / (1 + sqrt(mu s)), clock t_k = k sqrt(s))
    are consistent with their high-resolution ODEs to O(s), but with the
    low-resolution ODE X'' + 2 sqrt(mu) X' + grad f = 0 they share only to
    O(sqrt(s)). Each ODE starts at x_0 with the velocity that reaches x_1 at
    t = sqrt(s) to second order, and is solved exactly (matrix exponential of
    the flow's linear field on this quadratic): the gap
    max_k |x_k - X(t_k)| over t <= 4 shrinks like s for the matching
    high-resolution ODE (order 1) and like sqrt(s) for the low-resolution one
    (order 1/2), and NAG-SC is far from heavy ball's ODE (no Hessian damping)."""
    mu, horizon, steps = 1.0, 4.0, (0.01, 0.0025)
    x0 = jnp.array([1.0, 1.0])
    low = dynopt.HeavyBallFlow(2.0 * np.sqrt(mu))
    gaps = {}
    for s in steps:
        n = int(round(horizon / np.sqrt(s)))
        times = np.arange(n + 1) * np.sqrt(s)
        beta = (1 - np.sqrt(mu * s)) / (1 + np.sqrt(mu * s))
        for method, tx in (
            ("nesterov", dynopt.nesterov(s, beta)),
            ("heavy_ball", dynopt.momentum(s, beta)),
        ):
            traj = dynopt.discrete_trajectory(tx, r6_quadratic, x0, n, progress=False)
            xs = np.asarray(traj.params)
            for name, flow in (
                ("nesterov", dynopt.high_resolution_flow("nesterov", s, mu)),
                ("heavy_ball", dynopt.high_resolution_flow("heavy_ball", s, mu)),
                ("low", low),
            ):
                a = _field_matrix(flow, r6_quadratic, 2)
                path = _linear_flow_path(a, xs[0], xs[1], np.sqrt(s), times)
                gaps[method, name, s] = np.max(np.abs(xs - path))

    def order(method, name):
        return dynopt.empirical_order(steps, [gaps[method, name, s] for s in steps])

    for method in ("nesterov", "heavy_ball"):
        assert abs(order(method, method) - 1.0) < tol.ORDER_SLOPE, gaps
        assert abs(order(method, "low") - 0.5) < tol.ORDER_SLOPE, gaps
        for s in steps:
            assert gaps[method, method, s] < gaps[method, "low", s] / 3, gaps
    for s in steps:
        assert gaps["nesterov", "nesterov", s] < gaps["nesterov", "heavy_ball", s] / 3
