"""dynopt's momentum family gives the same iterates as optax.sgd.

Both are run on the same 10,000-dimensional random quadratic for 1,000 steps
inside one jitted ``lax.scan`` each. In float32 and float64 the iterates are
compared bitwise: the two implement the same arithmetic (``m <- g + beta m``,
``u = -lr m``) in the same order, so any difference is a bug.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynopt

DIM, STEPS, RANK = 10_000, 1_000, 8


def _problem(dtype):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    h = jax.random.uniform(k1, (DIM,), minval=0.01, maxval=1.0).astype(dtype)
    u = (jax.random.normal(k2, (DIM, RANK)) / np.sqrt(DIM)).astype(dtype)
    b = jax.random.normal(k3, (DIM,)).astype(dtype)

    def grad(x):  # gradient of 0.5 x^T (diag(h) + U U^T) x - b^T x
        return h * x + u @ (u.T @ x) - b

    return grad, jnp.ones(DIM, dtype)


def _run(opt, grad, x0):
    @jax.jit
    def run(x0):
        def step(carry, _):
            x, s = carry
            upd, s = opt.update(grad(x), s, x)
            return (optax.apply_updates(x, upd), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=STEPS)
        return x

    return np.asarray(run(x0))


SCHEDULE = optax.warmup_cosine_decay_schedule(0.0, 0.5, 50, STEPS, 0.01)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("lr", [0.1, SCHEDULE], ids=["constant", "schedule"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_equal_to_optax_sgd(request, dtype, lr, nesterov):
    if dtype == "float64":
        request.getfixturevalue("x64")
    grad, x0 = _problem(jnp.dtype(dtype))
    ours = _run(dynopt.momentum(lr, 0.9, nesterov=nesterov), grad, x0)
    theirs = _run(optax.sgd(lr, momentum=0.9, nesterov=nesterov), grad, x0)
    assert ours.dtype == theirs.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(ours))
    # The run moved far from the start, so equality is not trivial.
    assert np.max(np.abs(ours - np.asarray(x0))) > 1.0
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("lr", [0.1, SCHEDULE], ids=["constant", "schedule"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_bitwise_equal_to_optax_sgd(request, dtype, lr):
    if dtype == "float64":
        request.getfixturevalue("x64")
    grad, x0 = _problem(jnp.dtype(dtype))
    ours = _run(dynopt.sgd(lr), grad, x0)
    theirs = _run(optax.sgd(lr), grad, x0)
    assert ours.dtype == theirs.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(ours))
    assert np.max(np.abs(ours - np.asarray(x0))) > 1.0  # the run moved
    np.testing.assert_array_equal(ours, theirs)


def test_nesterov_factory_is_momentum_with_nesterov():
    grad, x0 = _problem(jnp.float32)
    np.testing.assert_array_equal(
        _run(dynopt.nesterov(0.1, 0.8), grad, x0),
        _run(dynopt.momentum(0.1, 0.8, nesterov=True), grad, x0),
    )
