"""Su-Boyd-Candes, high-resolution and modified flows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import j1

import dynopt
from tests import tolerances as tol
from tests.dynopt.lab_problems import R2_CURVATURES, r2_quadratic, wavy


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
