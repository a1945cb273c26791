"""docs/reference.md R3-R6 on the optimisers themselves (x64).

R3: spectral radius of the jacobian of one optimiser step on quadratics.
R4: stability limits of lr * curvature.
R5: Lessard-Recht-Packard: heavy ball cycles where Nesterov and GD converge.
R6: order of momentum against the heavy-ball ODE for the two starts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import dynopt
from tests.tolerances import ORDER_SLOPE, REFERENCE_3SIG, REFERENCE_4DEC


def spectral_radius(opt, curvatures):
    """max over h of the spectral radius of the step's jacobian on f = h x^2 / 2."""
    has_buffer = isinstance(opt.init(jnp.zeros(1)), dynopt.MomentumState)
    n = 2 if has_buffer else 1

    def step(z, h):
        x = z[:1]
        state = opt.init(x)._replace(count=jnp.ones([], jnp.int32))  # not the 1st step
        if has_buffer:
            state = state._replace(momentum=z[1:])
        u, new = opt.update(h * x, state, x)
        return jnp.concatenate([x + u] + ([new.momentum] if has_buffer else []))

    jac = jax.jit(jax.vmap(jax.jacobian(step), in_axes=(None, 0)))
    jacs = np.asarray(jac(jnp.zeros(n), jnp.asarray(curvatures)))
    return float(np.max(np.abs(np.linalg.eigvals(jacs))))


@pytest.fixture
def spectrum():
    return np.concatenate([[1.0, 100.0], np.geomspace(1.0, 100.0, 401)])


def test_r3_rates_at_condition_number_100(x64, spectrum):
    L, mu = 100.0, 1.0
    kappa = L / mu
    gd = dynopt.sgd(2 / (L + mu))
    hb = dynopt.momentum(
        4 / (np.sqrt(L) + np.sqrt(mu)) ** 2,
        ((np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)) ** 2,
    )
    nag = dynopt.nesterov(1 / L, (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1))
    np.testing.assert_allclose(spectral_radius(gd, spectrum), 0.9802, **REFERENCE_4DEC)
    np.testing.assert_allclose(spectral_radius(hb, spectrum), 0.8182, **REFERENCE_4DEC)
    np.testing.assert_allclose(spectral_radius(nag, spectrum), 0.9000, **REFERENCE_4DEC)
    # The closed forms behind the table: (k-1)/(k+1), (sqrt k-1)/(sqrt k+1), 1-1/sqrt k.
    assert spectral_radius(gd, spectrum) == pytest.approx(99 / 101, rel=1e-9)
    assert spectral_radius(hb, spectrum) == pytest.approx(9 / 11, rel=1e-6)
    assert spectral_radius(nag, spectrum) == pytest.approx(0.9, rel=1e-9)


LIMITS = {
    "sgd": lambda beta: 2.0,
    "momentum": lambda beta: 2 * (1 + beta),
    "nesterov": lambda beta: (2 + 2 * beta) / (1 + 2 * beta),
}


def _final_abs(opt, h, lrs, steps=4000):
    """|x| after ``steps`` on f = h x^2 / 2 from x = 1, for each learning rate."""

    @jax.jit
    def run(lr):
        x0 = jnp.ones(1)
        s0 = dynopt.set_hyperparams(opt.init(x0), learning_rate=lr)

        def step(carry, _):
            x, s = carry
            u, s = opt.update(h * x, s, x)
            return (x + u, s), None

        (x, _), _ = jax.lax.scan(step, (x0, s0), None, length=steps)
        return jnp.abs(x[0])

    return [float(run(lr)) for lr in lrs]


R4_CASES = [("sgd", 0.0)] + [
    (name, beta) for name in ["momentum", "nesterov"] for beta in [0.0, 0.5, 0.9]
]


@pytest.mark.parametrize("name,beta", R4_CASES)
@pytest.mark.parametrize("h", [1.0, 37.0])
def test_r4_stability_limits(x64, name, beta, h):
    limit = LIMITS[name](beta)
    opt = dynopt.sgd(1.0) if name == "sgd" else getattr(dynopt, name)(1.0, beta)
    below, above = _final_abs(opt, h, [0.99 * limit / h, 1.01 * limit / h])
    assert below < 1e-3
    assert above > 1e3


def test_r4_limit_values():
    assert LIMITS["momentum"](0.9) == pytest.approx(3.8)
    assert LIMITS["nesterov"](0.9) == pytest.approx(1.357, abs=5e-4)


def lessard(x):
    """The L = 25, mu = 1 piecewise quadratic of Lessard, Recht and Packard (2016)."""
    return jnp.where(
        x < 1,
        12.5 * x**2,
        jnp.where(x < 2, 0.5 * x**2 + 24 * x - 12, 12.5 * x**2 - 24 * x + 36),
    )


def _path(opt, x0, steps):
    grad = jax.grad(lambda x: jnp.sum(lessard(x)))

    @jax.jit
    def run(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(grad(x), s, x)
            x = optax.apply_updates(x, u)
            return (x, s), x[0]

        _, xs = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        return xs

    return np.asarray(run(jnp.array([x0])))


def test_r5_heavy_ball_cycles_nesterov_and_gd_converge(x64):
    # x_0 = x_1 = 3.3 in Polyak's form is a zero buffer at x = 3.3 in optax's.
    hb = _path(dynopt.momentum(1 / 9, 4 / 9), 3.3, 3000)
    cycle = np.sort(hb[-3:])
    np.testing.assert_allclose(cycle, [-1.8024, 0.6465, 2.1159], atol=5e-5)
    np.testing.assert_allclose(hb[-3:], hb[-6:-3], atol=1e-12)  # period 3
    assert _path(dynopt.sgd(2 / 26), 3.3, 3000)[-1] == pytest.approx(0.0, abs=1e-10)
    nag = _path(dynopt.nesterov(1 / 25, 2 / 3), 3.3, 3000)
    assert nag[-1] == pytest.approx(0.0, abs=1e-10)


# ----------------------------------------------------------------------------- R6
H6 = np.diag([1.0, 4.0])
X06 = np.array([1.0, 1.0])
FRICTION = 1.0


def ode_solution(times):
    """Heavy ball x'' + x' + H x = 0 from rest, exactly by the matrix exponential."""
    m = np.block([[np.zeros((2, 2)), np.eye(2)], [-H6, -FRICTION * np.eye(2)]])
    y0 = np.concatenate([X06, np.zeros(2)])
    return np.array([(scipy.linalg.expm(m * t) @ y0)[:2] for t in times])


def momentum_error(gamma, init_velocity):
    lr, beta = dynopt.ode_to_momentum(gamma, FRICTION)
    opt = dynopt.momentum(float(lr), float(beta), init_velocity=init_velocity)
    steps = int(round(10 / gamma))
    hm = jnp.asarray(H6)

    @jax.jit
    def run(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(hm @ x, s, x)
            x = x + u
            return (x, s), (x, s.time)

        _, (xs, ts) = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        return xs, ts

    xs, ts = run(jnp.asarray(X06))
    ts = np.asarray(ts)
    np.testing.assert_allclose(ts, gamma * np.arange(1, steps + 1), rtol=1e-12)
    err = np.abs(np.asarray(xs) - ode_solution(ts))
    return float(np.max(err))


R6_GAMMAS = [0.1, 0.05, 0.025, 0.0125]
R6_ZERO = [7.26e-2, 3.59e-2, 1.79e-2, 8.91e-3]
R6_HALF = [4.90e-3, 1.22e-3, 3.05e-4, 7.63e-5]


@pytest.mark.parametrize(
    "init_velocity,expected,order", [("zero", R6_ZERO, 1), ("half_step", R6_HALF, 2)]
)
def test_r6_momentum_order_for_both_starts(x64, init_velocity, expected, order):
    errors = [momentum_error(g, init_velocity) for g in R6_GAMMAS]
    np.testing.assert_allclose(errors, expected, **REFERENCE_3SIG)
    slope = np.polyfit(np.log(R6_GAMMAS), np.log(errors), 1)[0]
    assert abs(slope - order) < ORDER_SLOPE


def test_su_map_round_trip(x64):
    lr, beta = dynopt.ode_to_momentum(0.1, 1.0)
    gamma, friction = dynopt.momentum_to_ode(lr, beta)
    np.testing.assert_allclose([gamma, friction], [0.1, 1.0], rtol=1e-14)
    # alpha = g^2 / (1 + lam g / 2), beta = (1 - lam g / 2) / (1 + lam g / 2)
    np.testing.assert_allclose(lr, 0.01 / 1.05, rtol=1e-14)
    np.testing.assert_allclose(beta, 0.95 / 1.05, rtol=1e-14)
