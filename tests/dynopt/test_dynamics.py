"""The dynamics an optimiser reports follow its state; one compilation per shape."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynopt


def test_at_state_gives_the_friction_after_set_hyperparams():
    opt = dynopt.momentum(0.1, 0.9)
    state = dynopt.set_hyperparams(
        opt.init(jnp.zeros(2)), learning_rate=0.05, beta=0.95
    )
    now = opt.dynamics.at(state)
    gamma, friction = dynopt.momentum_to_ode(0.05, 0.95)
    np.testing.assert_allclose(now.flow.friction, friction, rtol=1e-6)
    np.testing.assert_allclose(now.ode_constants["friction"], friction, rtol=1e-6)
    np.testing.assert_allclose(now.step_size, gamma, rtol=1e-6)
    assert round(float(now.flow.friction), 4) == 0.2265
    # the build-time values are still what .flow() (no state) reports
    np.testing.assert_allclose(
        opt.dynamics.flow().friction, dynopt.momentum_to_ode(0.1, 0.9)[1], rtol=1e-6
    )


def test_at_state_follows_a_schedule_and_nests():
    schedule = optax.linear_schedule(0.1, 0.01, 10)
    opt = dynopt.momentum(schedule, 0.9)
    tx = optax.chain(optax.clip(10.0), opt)
    x = jnp.ones(2)
    state = tx.init(x)
    for _ in range(4):
        _, state = tx.update(x, state, x)
    # the last step (count 3) used schedule(3)
    now = opt.dynamics.at(state)
    _, friction = dynopt.momentum_to_ode(float(schedule(3)), 0.9)
    np.testing.assert_allclose(now.flow.friction, friction, rtol=1e-6)
    with pytest.raises(
        ValueError, match=r"Dynamics.at: `state` must hold a state of this 'momentum'"
    ):
        opt.dynamics.at(optax.sgd(0.1).init(x))


def test_at_state_under_inject_hyperparams():
    tx = optax.inject_hyperparams(dynopt.momentum)(learning_rate=0.1, beta=0.9)
    x = jnp.ones(2)
    state = tx.init(x)
    state.hyperparams["learning_rate"] = jnp.asarray(0.05)
    state.hyperparams["beta"] = jnp.asarray(0.95)
    _, state = tx.update(x, state, x)
    dynamics = dynopt.find_dynamics(tx)
    assert dynamics.name == "momentum"
    np.testing.assert_allclose(
        dynamics.at(state).flow.friction, dynopt.momentum_to_ode(0.05, 0.95)[1]
    )


def test_find_dynamics_through_wrappers():
    opt = dynopt.nesterov(0.1, 0.9)
    assert dynopt.find_dynamics(opt) is opt.dynamics
    assert dynopt.find_dynamics(optax.chain(optax.clip(1.0), opt)) is opt.dynamics
    assert dynopt.find_dynamics(dynopt.flat_optimizer(opt)) is opt.dynamics
    assert dynopt.flat_optimizer(opt).dynamics is opt.dynamics
    assert dynopt.master_weights(opt).dynamics is opt.dynamics
    injected = optax.inject_hyperparams(dynopt.sgd)(learning_rate=0.1)
    assert dynopt.find_dynamics(injected).name == "sgd"
    assert dynopt.find_dynamics(optax.sgd(0.1)) is None


def test_names_are_one_vocabulary():
    """``stability_limit`` takes the dynamics' names (old names deprecated)."""
    for factory, beta in [(dynopt.sgd, None), (dynopt.momentum, 0.5)]:
        if beta is None:
            make = factory
        else:
            make = functools.partial(factory, beta=beta)
        name = make(0.1).dynamics.name
        closed = dynopt.stability_limit(name, beta or 0.0)
        assert abs(closed - dynopt.numerical_stability_limit(make)) < 1e-5
    assert dynopt.stability_limit(dynopt.heun(0.1).dynamics.name) == 2.0
    assert dynopt.stability_limit(dynopt.nesterov(0.1).dynamics.name, 0.5) == 1.5
    with pytest.warns(DeprecationWarning, match=r"'heavy_ball' is deprecated"):
        assert dynopt.stability_limit("heavy_ball", 0.5) == 3.0


def test_continuous_trajectory_refuses_a_schedule_that_moves_the_flow():
    schedule = optax.linear_schedule(0.1, 0.01, 10)
    with pytest.raises(
        ValueError,
        match=r"continuous_trajectory: `optimizer` has hyperparameters driven by a "
        r"schedule \(learning_rate\)",
    ):
        dynopt.continuous_trajectory(
            dynopt.momentum(schedule, 0.9), loss, jnp.ones(1), jnp.array([0.0, 1.0])
        )
    # SGD's rate only moves the clock: the gradient flow is followed.
    traj = _continuous(dynopt.sgd(schedule), jnp.asarray(np.ones(3, np.float32)))
    np.testing.assert_allclose(traj.params[-1], np.exp(-0.5), rtol=1e-5)


def _continuous(opt, x):
    return dynopt.continuous_trajectory(
        opt, loss, x, jnp.array([0.0, 0.5]), rtol=1e-7, atol=1e-7
    )


def loss(x):
    return 0.5 * jnp.sum(x**2)


class CountCompilations:
    """Counts XLA compilations via jax.monitoring's duration events."""

    def __init__(self):
        self.count = 0

    def __call__(self, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


@pytest.mark.parametrize(
    "name, call",
    [
        (
            "discrete_trajectory",
            lambda opt, x: dynopt.discrete_trajectory(opt, loss, x, 8, progress=False),
        ),
        ("continuous_trajectory", _continuous),
        ("step_matrix", lambda opt, x: dynopt.step_matrix(opt, loss, x)),
        (
            "sweep",
            lambda opt, x: dynopt.sweep(
                dynopt.momentum, loss, x, 4, learning_rate=jnp.array([0.1, 0.2])
            ),
        ),
    ],
)
def test_second_call_does_not_compile(name, call):
    opt = dynopt.sgd(0.1) if name == "continuous_trajectory" else dynopt.momentum(0.1)
    x, y = jnp.asarray(np.ones(3, np.float32)), jnp.asarray(np.full(3, 2, np.float32))
    jax.block_until_ready(call(opt, x))
    with CountCompilations() as counter:
        jax.block_until_ready(call(opt, y))
    assert counter.count == 0, f"{name} compiled {counter.count} programs again"
    if name == "continuous_trajectory":
        # a new optimiser of the same kind: the flow is a pytree, same program
        with CountCompilations() as counter:
            jax.block_until_ready(call(dynopt.sgd(0.2, weight_decay=0.1), x))
        assert counter.count == 0


@pytest.mark.parametrize(
    "values, error, message",
    [
        (
            {"learning_rate": -1},
            ValueError,
            r"set_hyperparams: `learning_rate` must be finite and >= 0, got -1",
        ),
        (
            {"learning_rate": float("nan")},
            ValueError,
            r"set_hyperparams: `learning_rate` must be finite and >= 0, got nan",
        ),
        (
            {"learning_rate": "0.1"},
            TypeError,
            r"set_hyperparams: `learning_rate` must be a float, a scalar array or "
            r"an optax schedule, got '0.1'",
        ),
        (
            {"learning_rate": np.ones(3)},
            ValueError,
            r"set_hyperparams: `learning_rate` must be a scalar, got shape \(3,\)",
        ),
        (
            {"beta": 1.0},
            ValueError,
            r"set_hyperparams: `beta` must satisfy 0 <= beta < 1, got 1.0",
        ),
        (
            {"learning_rate": optax.constant_schedule(0.1)},
            TypeError,
            r"set_hyperparams: `learning_rate` must be a number or a scalar array "
            r"\(a schedule is given to the factory\)",
        ),
    ],
)
def test_set_hyperparams_checks_values(values, error, message):
    state = dynopt.momentum(0.1, 0.9).init(jnp.zeros(2))
    with pytest.raises(error, match=message):
        dynopt.set_hyperparams(state, **values)


def test_set_hyperparams_refuses_a_scheduled_value():
    opt = dynopt.momentum(optax.linear_schedule(0.1, 0.01, 10), 0.9)
    state = opt.init(jnp.zeros(2))
    with pytest.raises(
        ValueError,
        match=r"set_hyperparams: `learning_rate` is driven by a schedule .* got "
        r"learning_rate=0.05",
    ):
        dynopt.set_hyperparams(state, learning_rate=0.05)
    # the other hyperparameters can still be set, and the step uses them
    state = dynopt.set_hyperparams(state, beta=0.5)
    _, state = opt.update(jnp.ones(2), state)
    assert float(dynopt.get_hyperparams(state)["beta"]) == 0.5


def test_set_hyperparams_does_not_check_traced_values():
    """Inside jit the value is a tracer: only its shape is checked."""
    state = dynopt.sgd(0.1).init(jnp.zeros(2))
    out = jax.jit(lambda s, lr: dynopt.set_hyperparams(s, learning_rate=lr))(
        state, -1.0
    )
    assert float(out.hyperparams["learning_rate"]) == -1.0
