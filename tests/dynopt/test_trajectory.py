"""discrete_trajectory / continuous_trajectory: behaviour, errors, R1.

R1 is the reference result of docs/reference.md.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynopt
from tests import tolerances as tol
from tests.dynopt.lab_problems import R6_CURVATURES, quadratic, r6_quadratic


def test_times_come_from_the_clock_and_save_every_thins(x64):
    lr, beta = 0.05, 0.8
    opt = dynopt.momentum(lr, beta)
    traj = dynopt.discrete_trajectory(
        opt, quadratic, jnp.ones(3), 12, save_every=3, progress=False
    )
    gamma = float(dynopt.momentum_to_ode(lr, beta)[0])
    np.testing.assert_allclose(traj.times, gamma * np.arange(0, 13, 3), rtol=1e-12)
    assert traj.params.shape == (5, 3)
    assert traj.loss.shape == (5,)
    full = dynopt.discrete_trajectory(opt, quadratic, jnp.ones(3), 12, progress=False)
    np.testing.assert_array_equal(full.params[::3], traj.params)
    np.testing.assert_array_equal(full.loss[::3], traj.loss)


def test_same_iterates_as_a_plain_optax_loop(x64):
    """Chunked scans (steps_per_call) give the iterates of a Python optax loop."""
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}

    def loss(p):
        return jnp.sum(jnp.cos(p["a"]) * p["a"] ** 2) + p["b"] ** 4

    opt = dynopt.nesterov(0.05, 0.9)
    traj = dynopt.discrete_trajectory(
        opt, loss, params, 20, save_every=2, steps_per_call=6, progress=False
    )

    @jax.jit
    def step(p, state):
        u, state = opt.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, u), state

    state, p = opt.init(params), params
    kept = [p]
    for k in range(20):
        p, state = step(p, state)
        if (k + 1) % 2 == 0:
            kept.append(p)
    for name in params:
        np.testing.assert_allclose(
            traj.params[name], np.stack([q[name] for q in kept]), **tol.F64_ITERATES
        )
    np.testing.assert_allclose(traj.loss, [loss(q) for q in kept], **tol.F64_ITERATES)
    np.testing.assert_allclose(float(traj.times[-1]), float(state.time), rtol=1e-12)


def test_plain_optax_transform_gets_step_counts(x64):
    traj = dynopt.discrete_trajectory(
        optax.adam(0.1), quadratic, jnp.ones(2), 4, progress=False
    )
    np.testing.assert_array_equal(traj.times, [0, 1, 2, 3, 4])


def test_continuous_gradient_flow_is_exponential(x64):
    times = jnp.linspace(0.0, 3.0, 7)
    traj = dynopt.continuous_trajectory(dynopt.sgd(0.1), quadratic, jnp.ones(1), times)
    expected = np.exp(-np.asarray(times))[:, None]
    np.testing.assert_allclose(traj.params, expected, **tol.ODE_SOLVE_F64)
    np.testing.assert_allclose(
        traj.loss, 0.5 * np.exp(-2 * np.asarray(times)), **tol.ODE_SOLVE_F64
    )


def test_continuous_trajectory_is_float64_without_global_x64():
    """x64 off globally: the solve still runs in float64 (results as NumPy)."""
    assert not jax.config.jax_enable_x64
    times = np.linspace(0.0, 5.0, 11)
    expected = np.exp(-times)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no float64-truncation warnings
        traj = dynopt.continuous_trajectory(
            dynopt.sgd(0.1), quadratic, jnp.ones(2), times, rtol=1e-12, atol=1e-12
        )
    assert not jax.config.jax_enable_x64  # the context did not leak
    for a in (traj.times, traj.params, traj.loss):
        assert a.dtype == np.float64
    np.testing.assert_allclose(
        traj.params, np.hstack([expected] * 2), **tol.ODE_SOLVE_F64_SHORT
    )
    np.testing.assert_allclose(traj.loss, np.exp(-2 * times), **tol.ODE_SOLVE_F64_SHORT)
    # Opting out solves in float32, which cannot get near that.
    f32 = dynopt.continuous_trajectory(
        dynopt.sgd(0.1), quadratic, jnp.ones(2), times, rtol=1e-6, atol=1e-6, x64=False
    )
    assert f32.params.dtype == jnp.float32
    assert np.max(np.abs(np.asarray(f32.params, np.float64) - expected)) > 1e-9


def test_continuous_saves_are_step_ends_not_interpolated(x64):
    """At the default rtol = atol = 1e-10 the saved points are as accurate as the
    steps (Dopri8's dense interpolant alone is ~3e-9 off on exp(-t))."""
    times = np.linspace(0.0, 5.0, 11)
    traj = dynopt.continuous_trajectory(dynopt.sgd(0.1), quadratic, jnp.ones(1), times)
    np.testing.assert_allclose(traj.params[:, 0], np.exp(-times), rtol=0, atol=1e-10)


def test_continuous_heavy_ball_matches_expm(x64):
    from scipy.linalg import expm

    opt = dynopt.momentum(0.02, 0.9)
    lam = float(opt.dynamics.ode_constants()["friction"])
    times = np.linspace(0.0, 5.0, 11)
    traj = dynopt.continuous_trajectory(opt, r6_quadratic, jnp.ones(2), times)
    for i, h in enumerate(np.asarray(R6_CURVATURES)):
        a = np.array([[0.0, 1.0], [-h, -lam]])
        expected = [expm(a * t)[0, 0] for t in times]
        np.testing.assert_allclose(traj.params[:, i], expected, **tol.ODE_SOLVE_F64)


@pytest.mark.parametrize(
    "flow, errors, slope",
    [
        (None, [1.92e-2, 9.39e-3, 4.65e-3], 1.0),
        (dynopt.modified_equation, [1.26e-3, 3.11e-4, 7.71e-5], 2.0),
    ],
)
def test_reference_r1_gd_vs_gradient_and_modified_flow(x64, flow, errors, slope):
    study = dynopt.order_study(
        dynopt.sgd,
        quadratic,
        jnp.ones(1),
        [0.1, 0.05, 0.025],
        1.0,
        flow=flow,
        reduce="final",
    )
    np.testing.assert_allclose(study.errors, errors, **tol.REFERENCE_3SIG)
    assert abs(study.order - slope) < tol.ORDER_SLOPE


def test_modified_flow_usable_directly(x64):
    """On x^2/2 the modified flow is x' = -(1 + lr/2) x."""
    times = np.linspace(0, 2, 5)
    traj = dynopt.continuous_trajectory(
        dynopt.ModifiedGradientFlow(0.1), quadratic, jnp.ones(1), times
    )
    np.testing.assert_allclose(traj.params[:, 0], np.exp(-1.05 * times), atol=1e-9)


def test_errors_name_the_argument():
    opt = dynopt.sgd(0.1)
    with pytest.raises(
        ValueError, match=r"continuous_trajectory: `times` must be strictly increasing"
    ):
        dynopt.continuous_trajectory(opt, quadratic, jnp.ones(1), [0.0, 1.0, 1.0])
    with pytest.raises(
        ValueError, match=r"continuous_trajectory: `times` must be finite and >= 0"
    ):
        dynopt.continuous_trajectory(opt, quadratic, jnp.ones(1), [-1.0, 1.0])
    with pytest.raises(ValueError, match=r"`times` must be a non-empty 1-D array"):
        dynopt.continuous_trajectory(opt, quadratic, jnp.ones(1), [[0.0, 1.0]])
    with pytest.raises(
        ValueError, match=r"discrete_trajectory: `params` must be finite"
    ):
        dynopt.discrete_trajectory(opt, quadratic, jnp.array([1.0, jnp.nan]), 2)
    with pytest.raises(
        ValueError, match=r"continuous_trajectory: `params` must be finite"
    ):
        dynopt.continuous_trajectory(opt, quadratic, jnp.array([jnp.inf]), [0.0, 1.0])
    with pytest.raises(TypeError, match=r"`params` leaves must be floating point"):
        dynopt.discrete_trajectory(opt, quadratic, jnp.array([1, 2]), 2)
    with pytest.raises(
        ValueError, match=r"`loss_fn` must return a scalar, got output of shape \(2,\)"
    ):
        dynopt.discrete_trajectory(opt, lambda x: x**2, jnp.ones(2), 2)
    with pytest.raises(
        ValueError, match=r"`num_steps` must be a multiple of `save_every` = 3"
    ):
        dynopt.discrete_trajectory(opt, quadratic, jnp.ones(2), 10, save_every=3)
    with pytest.raises(ValueError, match=r"`steps_per_call` must be a multiple"):
        dynopt.discrete_trajectory(
            opt, quadratic, jnp.ones(2), 12, save_every=3, steps_per_call=4
        )
    with pytest.raises(ValueError, match=r"`num_steps` must be >= 1, got 0"):
        dynopt.discrete_trajectory(opt, quadratic, jnp.ones(2), 0)
    with pytest.raises(TypeError, match=r"`num_steps` must be an int, got 2.5"):
        dynopt.discrete_trajectory(opt, quadratic, jnp.ones(2), 2.5)
    with pytest.raises(TypeError, match=r"`optimizer` must be a dynopt optimiser"):
        dynopt.continuous_trajectory(
            optax.adam(0.1), quadratic, jnp.ones(1), [0.0, 1.0]
        )
    with pytest.raises(TypeError, match=r"`optimizer` must be an optax"):
        dynopt.discrete_trajectory("sgd", quadratic, jnp.ones(1), 1)
