"""NAG-C and Heun as optimisers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynopt
from tests import tolerances as tol
from tests.dynopt.lab_problems import R2_CURVATURES, quadratic, r2_quadratic


def _nag_c_numpy(lam, x0, s, steps):
    """NAG-C written from its definition (Su, Boyd, Candes 2016, eq. (1))."""
    x_prev, y = x0.copy(), x0.copy()
    xs, ys = [x0.copy()], [y.copy()]
    for k in range(1, steps + 1):
        x = y - s * lam * y
        y = x + (k - 1) / (k + 2) * (x - x_prev)
        x_prev = x
        xs.append(x)
        ys.append(y)
    return np.array(xs), np.array(ys)


def test_nag_c_iterates_and_clock(x64):
    s, steps = 0.5, 40
    lam = np.asarray(R2_CURVATURES) * 20
    xs, ys = _nag_c_numpy(lam, np.ones(2), s, steps)

    def loss(x):
        return 0.5 * jnp.sum(jnp.asarray(lam) * x**2)

    traj = dynopt.discrete_trajectory(dynopt.nag_c(s), loss, jnp.ones(2), steps)
    np.testing.assert_allclose(traj.params, xs, **tol.F64_ITERATES)
    np.testing.assert_allclose(
        traj.times, np.sqrt(s) * np.arange(steps + 1), rtol=1e-12
    )
    # The parameters an optax loop holds are the look-ahead points y_k.
    ys_traj = dynopt.discrete_trajectory(
        dynopt.nag_c(s), loss, jnp.ones(2), steps, position=lambda p, st: p
    )
    np.testing.assert_allclose(ys_traj.params, ys, **tol.F64_ITERATES)


def test_nag_c_in_an_optax_chain(x64):
    opt = optax.chain(optax.identity(), dynopt.nag_c(0.1))
    p, state = jnp.ones(2), opt.init(jnp.ones(2))
    for _ in range(3):
        u, state = opt.update(jax.grad(r2_quadratic)(p), state, p)
        p = optax.apply_updates(p, u)
    xs, ys = _nag_c_numpy(np.asarray(R2_CURVATURES), np.ones(2), 0.1, 3)
    np.testing.assert_allclose(p, ys[-1], **tol.F64_ITERATES)
    # nag_c_position finds the NAG-C state inside the chain and recovers x_k.
    np.testing.assert_allclose(
        dynopt.nag_c_position(p, state), xs[-1], **tol.F64_ITERATES
    )


def test_heun_steps_are_the_trapezoid_rule(x64):
    """On x^2/2 one Heun step multiplies x by 1 - lr + lr^2 / 2."""
    lr = 0.3
    traj = dynopt.discrete_trajectory(dynopt.heun(lr), quadratic, jnp.ones(1), 5)
    expected = (1 - lr + lr**2 / 2) ** np.arange(6)
    np.testing.assert_allclose(traj.params[:, 0], expected, **tol.F64_ITERATES)
    np.testing.assert_allclose(traj.times, lr * np.arange(6), rtol=1e-12)


def test_heun_grad_fn_bound_or_passed(x64):
    x = jnp.array([0.5, -1.0])

    def loss(y):
        return jnp.sum(jnp.cos(y) + y**2)

    g = jax.grad(loss)
    bound = dynopt.heun(0.1, grad_fn=g)
    u1, _ = bound.update(g(x), bound.init(x), x)
    free = dynopt.heun(0.1)
    u2, _ = free.update(g(x), free.init(x), x, grad_fn=g)
    expected = -0.05 * (g(x) + g(x - 0.1 * g(x)))
    np.testing.assert_allclose(u1, expected, rtol=1e-14)
    np.testing.assert_allclose(u2, expected, rtol=1e-14)


def test_errors():
    x = jnp.ones(2)
    opt = dynopt.heun(0.1)
    with pytest.raises(ValueError, match=r"heun: a gradient function is needed"):
        opt.update(x, opt.init(x), x)
    with pytest.raises(ValueError, match=r"heun: `params` must be given to update\(\)"):
        opt.update(x, opt.init(x), grad_fn=jax.grad(quadratic))
    with pytest.raises(TypeError, match=r"heun: `grad_fn` must be callable or None"):
        dynopt.heun(0.1, grad_fn=3)
    with pytest.raises(
        ValueError, match=r"nag_c: `learning_rate` must be finite and >= 0"
    ):
        dynopt.nag_c(-1.0)
    with pytest.raises(
        ValueError, match=r"nag_c_position: `state` must hold a NagCState"
    ):
        dynopt.nag_c_position(x, dynopt.sgd(0.1).init(x))
