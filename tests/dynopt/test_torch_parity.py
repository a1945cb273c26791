"""dynopt matches torch.optim.SGD, Keras/Sutskever momentum and Polyak's form.

Both sides receive the very same float64 gradient (computed once in NumPy from
the current iterate), so the comparison tests the optimisers and nothing else.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import dynopt
from tests.tolerances import F64_ITERATES

STEPS = 200
RNG = np.random.default_rng(0)
A = RNG.normal(size=(7, 7)) / 3
A = A @ A.T + 0.2 * np.eye(7)
B = RNG.normal(size=7)
X0 = RNG.normal(size=7)


def grad_np(x):
    """Gradient of 0.5 x^T A x - b^T x - 0.1 sum cos(x) (non-quadratic on purpose)."""
    return A @ x - B + 0.1 * np.sin(x)


def lr_at(k, scheduled):
    return 0.05 * (0.99**k) if scheduled else 0.05


def run_torch(momentum, dampening, nesterov, weight_decay, maximize, scheduled):
    p = torch.tensor(X0.copy(), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD(
        [p],
        lr=0.05,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    sign = -1.0 if maximize else 1.0  # maximise -f, so the run still descends f
    for k in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lr_at(k, scheduled)
        p.grad = torch.from_numpy(sign * grad_np(p.detach().numpy().copy()))
        opt.step()
    return p.detach().numpy()


def run_jax(tx, maximize):
    sign = -1.0 if maximize else 1.0
    update = jax.jit(tx.update)
    x = jnp.asarray(X0)
    state = tx.init(x)
    for _ in range(STEPS):
        g = jnp.asarray(sign * grad_np(np.asarray(x)))
        u, state = update(g, state, x)
        x = optax.apply_updates(x, u)
    return np.asarray(x)


def _configs():
    for momentum, dampening, nesterov, wd, maximize, scheduled in itertools.product(
        [0.0, 0.9],
        [0.0, 0.3],
        [False, True],
        [0.0, 0.01],
        [False, True],
        [False, True],
    ):
        if momentum == 0 and (dampening or nesterov):
            continue
        if nesterov and dampening:
            continue
        yield momentum, dampening, nesterov, wd, maximize, scheduled


def _lr(scheduled):
    return (lambda k: 0.05 * 0.99**k) if scheduled else 0.05


@pytest.mark.parametrize(
    "momentum,dampening,nesterov,wd,maximize,scheduled", list(_configs())
)
def test_matches_torch_sgd(x64, momentum, dampening, nesterov, wd, maximize, scheduled):
    expected = run_torch(momentum, dampening, nesterov, wd, maximize, scheduled)
    lr = _lr(scheduled)
    if momentum == 0:
        tx = dynopt.sgd(lr, weight_decay=wd, maximize=maximize)
    else:
        tx = dynopt.momentum(
            lr,
            momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=wd,
            maximize=maximize,
        )
    got = run_jax(tx, maximize)
    assert np.max(np.abs(got - X0)) > 0.1  # the run moved
    np.testing.assert_allclose(got, expected, **F64_ITERATES)


@pytest.mark.parametrize(
    "nesterov,dampening", [(False, 0.0), (False, 0.3), (True, 0.0)]
)
@pytest.mark.parametrize("maximize", [False, True])
def test_weight_decay_via_optax_add_decayed_weights(x64, nesterov, dampening, maximize):
    """PyTorch negates for ``maximize``, then adds ``wd * p``: chain that order."""
    expected = run_torch(0.9, dampening, nesterov, 0.01, maximize, True)
    first = [optax.scale(-1.0)] if maximize else []
    tx = optax.chain(
        *first,
        optax.add_decayed_weights(0.01),
        dynopt.momentum(_lr(True), 0.9, dampening=dampening, nesterov=nesterov),
    )
    # The chain does the negation, so feed the plain gradient of -f.
    got = run_jax(tx, maximize)
    np.testing.assert_allclose(got, expected, **F64_ITERATES)


def test_dampening_first_step_is_not_dampened(x64):
    """PyTorch copies the first gradient into the buffer without (1 - d)."""
    tx = dynopt.momentum(0.1, 0.9, dampening=0.5)
    state = tx.init(jnp.zeros(2))
    g = jnp.array([1.0, -2.0])
    u1, state = tx.update(g, state)
    np.testing.assert_allclose(u1, -0.1 * g, rtol=1e-15)
    u2, _ = tx.update(g, state)
    np.testing.assert_allclose(u2, -0.1 * (0.9 * g + 0.5 * g), rtol=1e-15)


def _keras(lrs, mu, nesterov=False):
    """Keras / Sutskever: v <- mu v - lr g; x <- x + v.

    With ``nesterov=True`` Keras's ``SGD(nesterov=True)`` rule:
    v <- mu v - lr g; x <- x + mu v - lr g.
    """
    x, v, xs = X0.copy(), np.zeros_like(X0), [X0.copy()]
    for lr in lrs:
        g = grad_np(x)
        v = mu * v - lr * g
        x = x + (mu * v - lr * g if nesterov else v)
        xs.append(x.copy())
    return np.array(xs)


def _polyak(lr, beta):
    """Polyak: x_{k+1} = x_k - lr g_k + beta (x_k - x_{k-1}), x_{-1} = x_0."""
    prev, x, xs = X0.copy(), X0.copy(), [X0.copy()]
    for _ in range(STEPS):
        prev, x = x, x - lr * grad_np(x) + beta * (x - prev)
        xs.append(x.copy())
    return np.array(xs)


def _dynopt_path(tx):
    x, state, xs = jnp.asarray(X0), tx.init(jnp.asarray(X0)), [X0.copy()]
    update = jax.jit(tx.update)
    for _ in range(STEPS):
        u, state = update(jnp.asarray(grad_np(np.asarray(x))), state)
        x = optax.apply_updates(x, u)
        xs.append(np.asarray(x))
    return np.array(xs)


def test_equals_keras_and_polyak_at_constant_rate(x64):
    ours = _dynopt_path(dynopt.momentum(0.05, 0.9))
    np.testing.assert_allclose(ours, _keras([0.05] * STEPS, 0.9), **F64_ITERATES)
    np.testing.assert_allclose(ours, _polyak(0.05, 0.9), **F64_ITERATES)


def test_nesterov_equals_keras_nesterov_at_constant_rate(x64):
    ours = _dynopt_path(dynopt.nesterov(0.05, 0.9))
    keras = _keras([0.05] * STEPS, 0.9, nesterov=True)
    np.testing.assert_allclose(ours, keras, **F64_ITERATES)
    # and the Nesterov path is not the heavy-ball one
    assert np.max(np.abs(keras - _keras([0.05] * STEPS, 0.9))) > 1e-3


def test_exact_difference_to_keras_when_the_rate_changes(x64):
    """optax/PyTorch scale the stored velocity by lr_k / lr_{k-1}; Keras does not.

    With a jump from a to b at step K, both agree before K, and at step K
    ``dx_dynopt - dx_keras = mu (b / a - 1) (x_K - x_{K-1})`` exactly.
    """
    a, b, mu, jump = 0.05, 0.02, 0.9, 120
    lrs = [a if k < jump else b for k in range(STEPS)]
    keras = _keras(lrs, mu)
    ours = _dynopt_path(dynopt.momentum(lambda k: jnp.where(k < jump, a, b), mu))
    np.testing.assert_allclose(ours[: jump + 1], keras[: jump + 1], **F64_ITERATES)
    d_ours = ours[jump + 1] - ours[jump]
    d_keras = keras[jump + 1] - keras[jump]
    predicted = mu * (b / a - 1) * (ours[jump] - ours[jump - 1])
    assert np.max(np.abs(predicted)) > 1e-4  # the difference is not negligible
    np.testing.assert_allclose(d_ours - d_keras, predicted, rtol=1e-9, atol=1e-15)
    # ... and after the jump the paths differ for good.
    assert np.max(np.abs(ours[-1] - keras[-1])) > 1e-6
