"""Stability limits (closed form vs spectral radius) and sharpness."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import dynopt
from tests import tolerances as tol


@pytest.mark.parametrize(
    "method, beta, make",
    [
        ("sgd", 0.0, lambda lr: dynopt.sgd(lr)),
        ("momentum", 0.5, lambda lr: dynopt.momentum(lr, 0.5)),
        ("momentum", 0.9, lambda lr: dynopt.momentum(lr, 0.9)),
        ("nesterov", 0.5, lambda lr: dynopt.nesterov(lr, 0.5)),
        ("nesterov", 0.9, lambda lr: dynopt.nesterov(lr, 0.9)),
    ],
)
def test_closed_form_limits_match_the_one_step_jacobian(x64, method, beta, make):
    closed = dynopt.stability_limit(method, beta)
    numeric = dynopt.numerical_stability_limit(make)
    np.testing.assert_allclose(numeric, closed, **tol.STABILITY_BISECTION)


def test_reference_r4_values():
    assert dynopt.stability_limit("sgd") == 2.0
    assert dynopt.stability_limit("momentum", 0.9) == pytest.approx(3.8)
    assert dynopt.stability_limit("nesterov", 0.9) == pytest.approx(1.357, abs=5e-4)


def test_step_matrix_of_heavy_ball_is_the_companion_matrix(x64):
    """State (x, m) with m <- g + beta m, x <- x - lr m on f = h x^2 / 2."""
    lr, beta, h = 0.1, 0.7, 3.0
    jac = dynopt.step_matrix(
        dynopt.momentum(lr, beta), lambda x: 0.5 * h * jnp.sum(x**2), jnp.ones(1)
    )
    expected = np.array([[1 - lr * h, -lr * beta], [h, beta]])
    np.testing.assert_allclose(jac, expected, rtol=1e-14)


def _mlp_loss():
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.normal(size=(16, 3)))
    ys = jnp.sin(xs[:, :1])

    def loss(p):
        h = jnp.tanh(xs @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] - ys) ** 2)

    params = {
        "w1": jnp.asarray(rng.normal(size=(3, 4))),
        "b1": jnp.zeros(4),
        "w2": jnp.asarray(rng.normal(size=(4, 1))),
    }
    return loss, params


def _top_eig(loss, params):
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    hess = jax.jit(jax.hessian(lambda z: loss(unravel(z))))(flat)
    eig = np.linalg.eigvalsh(np.asarray(hess))
    return eig[np.argmax(np.abs(eig))]


def test_sharpness_matches_the_full_hessian(x64):
    loss, params = _mlp_loss()
    est = dynopt.sharpness(loss, params, num_iters=500)
    np.testing.assert_allclose(est, _top_eig(loss, params), **tol.POWER_ITERATION)


def test_sharpness_along_a_trajectory(x64):
    loss, params = _mlp_loss()
    traj = dynopt.discrete_trajectory(
        dynopt.sgd(0.2), loss, params, 20, save_every=5, progress=False
    )
    along = dynopt.sharpness_along(loss, traj, num_iters=400)
    expected = [
        _top_eig(loss, jax.tree_util.tree_map(lambda a, i=i: a[i], traj.params))
        for i in range(traj.times.shape[0])
    ]
    np.testing.assert_allclose(along, expected, **tol.POWER_ITERATION)


def test_errors():
    with pytest.raises(ValueError, match=r"stability_limit: `method` must be one of"):
        dynopt.stability_limit("adam")
    with pytest.raises(
        ValueError, match=r"stability_limit: `beta` must satisfy 0 <= beta < 1, got 1.0"
    ):
        dynopt.stability_limit("momentum", 1.0)
    with pytest.raises(
        ValueError, match=r"sharpness: `num_iters` must be an int >= 1, got 0"
    ):
        dynopt.sharpness(lambda x: jnp.sum(x**2), jnp.ones(2), num_iters=0)
    with pytest.raises(ValueError, match=r"sharpness: `loss_fn` must return a scalar"):
        dynopt.sharpness(lambda x: x**2, jnp.ones(2))
    with pytest.raises(
        ValueError, match=r"numerical_stability_limit: `high` must be an unstable"
    ):
        dynopt.numerical_stability_limit(lambda lr: dynopt.sgd(lr), high=1.5)
    with pytest.raises(
        ValueError, match=r"numerical_stability_limit: `low` must be a stable"
    ):
        dynopt.numerical_stability_limit(lambda lr: dynopt.sgd(lr), low=2.5, high=3.0)
