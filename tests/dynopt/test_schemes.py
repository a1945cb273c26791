"""Every scheme on every flow it supports: measured global order vs declared.

As diffrax's ``test_ode_order``: the error at a fixed ODE time for several step
sizes, against a float64 reference, and the least-squares log-log slope within
``ORDER_SLOPE`` of ``opt.dynamics.order``. The problem is a quadratic
``f = x^T H x / 2``, so every flow here is linear and its exact solution is a
matrix exponential (scipy), independent of dynopt and of diffrax.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import dynopt
from tests import tolerances as tol

H = np.diag([1.0, 4.0])
X0 = np.array([1.0, -0.5])
HORIZON = 2.0
STEPS = [0.1, 0.05, 0.025, 0.0125]
FRICTION = 1.5


def loss(x):
    return 0.5 * x @ (jnp.asarray(H, x.dtype) @ x)


def _matrix(flow):
    """The linear field y' = A y of ``flow`` on the quadratic."""
    n = H.shape[0]
    if isinstance(flow, dynopt.GradientFlow):
        return -H
    damping = float(flow.friction) * np.eye(n)
    if isinstance(flow, dynopt.HessianDampedFlow):
        damping = damping + float(flow.hessian_damping) * H
    return np.block([[np.zeros((n, n)), np.eye(n)], [-H, -damping]])


def _exact(flow, t):
    a = _matrix(flow)
    y0 = np.concatenate([X0, np.zeros(a.shape[0] - X0.size)])
    return (scipy.linalg.expm(a * t) @ y0)[: X0.size]


@functools.partial(jax.jit, static_argnums=0)
def _run(make, h, n):
    opt = make(h)
    grad = jax.grad(loss)

    def body(_, carry):
        x, s = carry
        u, s = opt.update(grad(x), s, x, grad_fn=grad)
        return x + u, s

    x0 = jnp.asarray(X0)
    return jax.lax.fori_loop(0, n, body, (x0, opt.init(x0)))[0]


def _study(make):
    """(errors at HORIZON, declared order) of the family ``make(h)``."""
    errors = []
    for h in STEPS:
        opt = make(h)
        h_clock = float(opt.dynamics.step_size())
        n = int(round(HORIZON / h_clock))
        assert abs(n * h_clock - HORIZON) < 1e-9
        x = np.asarray(_run(make, jnp.asarray(h), n))
        exact = _exact(opt.dynamics.flow(), HORIZON)
        errors.append(np.max(np.abs(x - exact)))
    return np.asarray(errors), make(STEPS[0]).dynamics.order


def _check(make):
    errors, order = _study(make)
    measured = dynopt.empirical_order(STEPS, errors)
    assert abs(measured - order) < tol.ORDER_SLOPE, (measured, order, errors)


FLOWS = {
    "gradient_flow": dynopt.GradientFlow(),
    "heavy_ball": dynopt.HeavyBallFlow(friction=FRICTION),
}
SCHEMES = [
    dynopt.ExplicitEuler(),
    dynopt.SymplecticEuler(),
    dynopt.Leapfrog(start="zero"),
    dynopt.Leapfrog(start="half_step"),
    dynopt.Heun(),
    dynopt.RK4(),
    dynopt.ConformalSymplectic(),
    dynopt.Korpelevich(),
    dynopt.Optimistic(),
    dynopt.ImplicitEuler(solver="newton"),
    dynopt.ImplicitEuler(solver="fixed_point"),
]
PAIRS = [
    (s, f)
    for s in SCHEMES
    for f in FLOWS
    if type(FLOWS[f]) in type(s).flows  # every flow the scheme supports
]


def _pair_id(pair):
    scheme, flow = pair
    option = getattr(scheme, "start", None) or getattr(scheme, "solver", None)
    return f"{scheme.name}{'_' + option if option else ''}-{flow}"


@pytest.mark.parametrize("pair", PAIRS, ids=[_pair_id(p) for p in PAIRS])
def test_scheme_order_on_each_flow(x64, pair):
    scheme, flow = pair

    def make(h):
        return dynopt.discretise(FLOWS[flow], scheme, h)

    _check(make)


def test_every_scheme_is_tested_on_a_flow():
    exported = {
        getattr(dynopt, n)
        for n in dynopt.__all__
        if isinstance(getattr(dynopt, n), type)
        and issubclass(getattr(dynopt, n), dynopt.Scheme)
        and getattr(dynopt, n) is not dynopt.Scheme
    }
    tested = {type(s) for s, _ in PAIRS}
    # Schemes of flows that are not on (x, v) with a constant friction are
    # tested with their optimisers below and in test_compare.py / test_adam.py.
    elsewhere = {dynopt.Lookahead, dynopt.NesterovConvex, dynopt.SemiImplicitEuler}
    assert exported == tested | elsewhere


def _momentum(factory, start):
    def make(gamma):
        lr, beta = dynopt.ode_to_momentum(gamma, FRICTION)
        return factory(lr, beta, init_velocity=start)

    return make


@pytest.mark.parametrize(
    "name, make",
    [
        ("momentum_zero", _momentum(dynopt.momentum, "zero")),
        ("momentum_half_step", _momentum(dynopt.momentum, "half_step")),
        ("nesterov_half_step", _momentum(dynopt.nesterov, "half_step")),
    ],
)
def test_factories_declare_their_measured_order(x64, name, make):
    """The factories' own declarations (sgd and heun are ExplicitEuler and Heun
    on the gradient flow, measured above; NAG-C in test_compare.py)."""
    _check(make)


def test_momentum_order_depends_on_the_start():
    assert dynopt.momentum(0.1, 0.9).dynamics.order == 1
    assert dynopt.momentum(0.1, 0.9, init_velocity="half_step").dynamics.order == 2
    assert dynopt.sgd(0.1).dynamics.order == 1
    assert dynopt.heun(0.1).dynamics.order == 2


def test_scheme_errors():
    with pytest.raises(
        TypeError,
        match=r"discretise: `flow` must be one of \('HeavyBallFlow',\) for "
        r"SymplecticEuler, got GradientFlow",
    ):
        dynopt.discretise(dynopt.GradientFlow(), dynopt.SymplecticEuler(), 0.1)
    with pytest.raises(
        TypeError, match=r"discretise: `scheme` must be a dynopt scheme, got 'rk4'"
    ):
        dynopt.discretise(dynopt.GradientFlow(), "rk4", 0.1)
    with pytest.raises(
        ValueError, match=r"discretise: `step_size` must be finite and >= 0, got -0.1"
    ):
        dynopt.discretise(dynopt.GradientFlow(), dynopt.RK4(), -0.1)
    with pytest.raises(
        ValueError,
        match=r"Leapfrog: `start` must be one of \('zero', 'half_step'\), got 'rest'",
    ):
        dynopt.Leapfrog(start="rest")
    opt = dynopt.discretise(dynopt.GradientFlow(), dynopt.RK4(), 0.1)
    x = jnp.ones(2)
    with pytest.raises(ValueError, match=r"rk4: a gradient function is needed"):
        opt.update(x, opt.init(x), x)
    with pytest.raises(ValueError, match=r"rk4: `params` must be given to update"):
        opt.update(x, opt.init(x), grad_fn=jnp.sin)


if __name__ == "__main__":
    # The table of docs/schemes.md: python -m tests.dynopt.test_schemes
    jax.config.update("jax_enable_x64", True)
    print("| scheme | flow | declared order | measured order |")
    print("|---|---|---|---|")
    for scheme, flow in PAIRS:

        def make(h, scheme=scheme, flow=flow):
            return dynopt.discretise(FLOWS[flow], scheme, h)

        errors, order = _study(make)
        measured = dynopt.empirical_order(STEPS, errors)
        start = getattr(scheme, "start", None)
        solver = getattr(scheme, "solver", None)
        label = type(scheme).__name__ + (
            f'(start="{start}")'
            if start
            else f'(solver="{solver}")'
            if solver
            else "()"
        )
        print(f"| `{label}` | {flow} | {order} | {measured:.2f} |")
    for name, make in [
        ("momentum, init_velocity='zero'", _momentum(dynopt.momentum, "zero")),
        ("momentum, 'half_step'", _momentum(dynopt.momentum, "half_step")),
        ("nesterov, 'zero'", _momentum(dynopt.nesterov, "zero")),
        ("nesterov, 'half_step'", _momentum(dynopt.nesterov, "half_step")),
    ]:
        errors, order = _study(make)
        measured = dynopt.empirical_order(STEPS, errors)
        print(f"| {name} | own flow | {order} | {measured:.2f} |")
