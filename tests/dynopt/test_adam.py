"""dynopt.adam: optax and PyTorch iterates, hyperparameters, its flow."""

import re

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import dynopt
from tests.tolerances import F32_ITERATES, F64_ITERATES, ORDER_SLOPE


def _grad(x):
    # a non-quadratic gradient, so iterates depend on every operation
    return jnp.sin(3 * x) + x


def _iterates(tx, x, steps):
    s = tx.init(x)
    update = jax.jit(tx.update)
    for _ in range(steps):
        u, s = update(_grad(x), s, x)
        x = optax.apply_updates(x, u)
    return x, s


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(b1=0.5, b2=0.9, eps=1e-3),
        dict(b1=0.0, eps_root=1e-6),
    ],
)
def test_equals_optax_adam_float64(x64, kw):
    x0 = jnp.linspace(-2.0, 2.0, 7)
    a, sa = _iterates(dynopt.adam(0.05, **kw), x0, 30)
    b, _ = _iterates(optax.adam(0.05, **kw), x0, 30)
    np.testing.assert_allclose(a, b, **F64_ITERATES)
    assert int(sa.count) == 30
    np.testing.assert_allclose(sa.time, 30 * 0.05, **F64_ITERATES)


def test_equals_optax_adam_float32_and_schedule():
    # float32: one rounding per operation apart (1 - b1 is rounded differently)
    sched = optax.linear_schedule(0.05, 0.01, 20)
    x0 = jnp.linspace(-2.0, 2.0, 7, dtype=jnp.float32)
    a, _ = _iterates(dynopt.adam(sched), x0, 10)
    b, _ = _iterates(optax.adam(sched), x0, 10)
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(a, b, **F32_ITERATES)


def test_equals_its_inject_hyperparams_form(x64):
    x0 = jnp.linspace(-1.0, 1.0, 5)
    a, _ = _iterates(dynopt.adam(0.05, b1=0.8), x0, 20)
    tx = optax.inject_hyperparams(dynopt.adam)(learning_rate=0.05, b1=0.8)
    b, _ = _iterates(tx, x0, 20)
    np.testing.assert_allclose(a, b, **F64_ITERATES)


def test_equals_torch_adam_with_weight_decay_and_maximize(x64):
    x0 = np.linspace(-2.0, 2.0, 6)
    kw = dict(b1=0.8, b2=0.95, eps=1e-6)
    a, _ = _iterates(
        dynopt.adam(0.03, weight_decay=0.1, maximize=True, **kw), jnp.asarray(x0), 20
    )
    xt = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam(
        [xt], lr=0.03, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, maximize=True
    )
    for _ in range(20):
        opt.zero_grad()
        xt.grad = torch.sin(3 * xt.detach()) + xt.detach()
        opt.step()
    np.testing.assert_allclose(a, xt.detach().numpy(), **F64_ITERATES)


def test_moment_updates_are_euler_steps_of_the_flow(x64):
    lr, b1, b2 = 0.01, 0.9, 0.99
    opt = dynopt.adam(lr, b1, b2)
    x = jnp.array([0.3, -1.2])
    m = jnp.array([0.1, 0.2])
    v = jnp.array([0.5, 0.1])
    state = opt.init(x)._replace(mu=m, nu=v, count=jnp.asarray(5, jnp.int32))
    _, new = opt.update(_grad(x), state, x)
    field = opt.dynamics.flow().vector_field(lambda p: 0.0 * jnp.sum(p))
    flow = opt.dynamics.flow()
    assert flow.a == pytest.approx((1 - b1) / lr)
    assert flow.b == pytest.approx((1 - b2) / lr)
    g = _grad(x)
    np.testing.assert_allclose(new.mu, m + lr * flow.a * (g - m), **F64_ITERATES)
    np.testing.assert_allclose(new.nu, v + lr * flow.b * (g * g - v), **F64_ITERATES)
    # with a zero loss the moments just decay at their rates
    _, dm, dv = field(1.0, (x, m, v), None)
    np.testing.assert_allclose(dm, -flow.a * m, **F64_ITERATES)
    np.testing.assert_allclose(dv, -flow.b * v, **F64_ITERATES)


def test_converges_to_its_flow_first_order(x64):
    # f(x) = 0.5 x^2 + 0.1 x^4; Adam at fixed ODE time T against diffrax
    def loss(x):
        return jnp.sum(0.5 * x**2 + 0.1 * x**4)

    x0 = jnp.array([1.5, -0.7])
    big_t = 0.5
    a_rate, b_rate = 4.0, 2.0  # fixed flow: b1 = 1 - a lr, b2 = 1 - b lr
    flow = dynopt.adam(0.1, 1 - a_rate * 0.1, 1 - b_rate * 0.1, eps=1e-3)
    flow = flow.dynamics.flow()
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(flow.vector_field(loss)),
        diffrax.Tsit5(),
        0.0,
        big_t,
        1e-4,
        flow.initial_state(x0),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
        max_steps=100_000,
    )
    exact = sol.ys[0][-1]
    errors, hs = [], [0.01, 0.005, 0.0025]
    for h in hs:
        tx = dynopt.adam(h, 1 - a_rate * h, 1 - b_rate * h, eps=1e-3)
        x, s = x0, tx.init(x0)

        def body(c, _, tx=tx):
            x, s = c
            u, s = tx.update(jax.grad(loss)(x), s, x)
            return (optax.apply_updates(x, u), s), None

        (x, s), _ = jax.lax.scan(body, (x, s), None, length=round(big_t / h))
        errors.append(float(jnp.max(jnp.abs(x - exact))))
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert abs(slope - 1.0) < ORDER_SLOPE, (errors, slope)


def test_accumulator_dtype():
    x = jnp.ones(3, jnp.bfloat16)
    tx = dynopt.adam(0.1, accumulator_dtype=jnp.float32)
    s = tx.init(x)
    u, s = tx.update(jnp.ones(3, jnp.bfloat16), s, x)
    assert s.mu.dtype == s.nu.dtype == jnp.float32
    # As optax: the update stays in the accumulator's dtype, rounded to the
    # parameters' once, when it is added to them.
    assert u.dtype == jnp.float32
    assert optax.apply_updates(x, u).dtype == jnp.bfloat16


def test_errors():
    with pytest.raises(ValueError, match="adam: `learning_rate` must be finite"):
        dynopt.adam(-1.0)
    with pytest.raises(ValueError, match=re.escape("adam: `b1` must satisfy 0 <= b1")):
        dynopt.adam(0.1, b1=1.0)
    with pytest.raises(ValueError, match=re.escape("adam: `b2` must satisfy 0 <= b2")):
        dynopt.adam(0.1, b2=-0.1)
    with pytest.raises(ValueError, match="adam: `eps` must satisfy"):
        dynopt.adam(0.1, eps=-1.0)
    with pytest.raises(ValueError, match="adam: `eps_root` must satisfy"):
        dynopt.adam(0.1, eps_root=float("nan"))
    with pytest.raises(TypeError, match="adam: `maximize` must be a bool"):
        dynopt.adam(0.1, maximize=1)
    with pytest.raises(ValueError, match="adam: `weight_decay` needs `params`"):
        tx = dynopt.adam(0.1, weight_decay=0.1)
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
