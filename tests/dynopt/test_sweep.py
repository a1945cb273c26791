"""Sweeps without recompiling: trace counts and vmapped sweeps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynopt
from tests.tolerances import F64_ITERATES

FACTORIES = {
    "sgd": (
        lambda: dynopt.sgd(0.1, weight_decay=0.0),
        {"learning_rate": 0.05, "weight_decay": 0.3},
    ),
    "momentum": (
        lambda: dynopt.momentum(0.1, 0.9, dampening=0.1, weight_decay=1e-3),
        {"learning_rate": 0.05, "beta": 0.5, "dampening": 0.2, "weight_decay": 0.3},
    ),
    "nesterov": (
        lambda: dynopt.nesterov(0.1, 0.9, weight_decay=0.0),
        {"learning_rate": 0.05, "beta": 0.5, "weight_decay": 0.3},
    ),
    "adam": (
        lambda: dynopt.adam(0.1, weight_decay=0.0),
        {
            "learning_rate": 0.05,
            "b1": 0.5,
            "b2": 0.9,
            "eps": 1e-3,
            "eps_root": 1e-4,
            "weight_decay": 0.3,
        },
    ),
}


def _counted_step(tx, grad_fn):
    """A jitted ``x, s -> x, s`` step of ``tx`` on the gradient ``grad_fn(x)``
    and the list it appends to each time it is traced."""
    traces = []

    @jax.jit
    def step(x, s):
        traces.append(1)
        u, s = tx.update(grad_fn(x), s, x)
        return optax.apply_updates(x, u), s

    return step, traces


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_changing_any_hyperparameter_never_retraces(name):
    make, new_values = FACTORIES[name]
    tx = make()
    step, traces = _counted_step(tx, lambda x: jnp.sin(x) + x)

    x = jnp.linspace(-1.0, 1.0, 4)
    s = tx.init(x)
    x1, s1 = step(x, s)
    outs = [x1]
    for k, v in new_values.items():
        s = dynopt.set_hyperparams(s, **{k: v})
        x2, s = step(x, s)
        outs.append(x2)
        assert float(dynopt.get_hyperparams(s)[k]) == pytest.approx(v)
    assert len(traces) == 1
    # and the new values were used: every change moved the iterate
    assert all(not np.array_equal(a, b) for a, b in zip(outs, outs[1:]))


@pytest.mark.parametrize("nesterov", [False, True])
def test_changed_weight_decay_is_the_pytorch_step(x64, nesterov):
    """After ``set_hyperparams(weight_decay=w)`` the step is ``g + w x`` fed to
    the buffer, in closed form: ``m = (g + w x) + beta m``, ``u = -lr d`` with
    ``d = m`` (heavy ball) or ``g + w x + beta m`` (Nesterov); one trace."""
    lr, beta = 0.1, 0.9
    tx = dynopt.momentum(lr, beta, nesterov=nesterov, weight_decay=0.0)
    step, traces = _counted_step(tx, jnp.cos)

    x, s = jnp.array([1.0, -2.0, 0.5]), tx.init(jnp.zeros(3))
    xs, m = np.asarray(x), np.zeros(3)
    for w in (0.0, 0.5, 0.0, 2.0):
        s = dynopt.set_hyperparams(s, weight_decay=w)
        x, s = step(x, s)
        g = np.cos(xs) + w * xs
        m = g + beta * m
        xs = xs - lr * ((g + beta * m) if nesterov else m)
        np.testing.assert_allclose(x, xs, **F64_ITERATES)
    assert len(traces) == 1


def test_changed_dampening_is_used_even_from_zero(x64):
    """A dampening leaf built as 0 is not baked in: ``m = (1 - d) g + beta m``
    after the first (undampened) step, with d set later; one trace."""
    lr, beta = 0.1, 0.9
    tx = dynopt.momentum(lr, beta, dampening=0.0)
    step, traces = _counted_step(tx, jnp.cos)

    x, s = jnp.array([1.0, -2.0, 0.5]), tx.init(jnp.zeros(3))
    xs, m = np.asarray(x), np.zeros(3)
    for k, d in enumerate((0.0, 0.5, 0.25)):
        s = dynopt.set_hyperparams(s, dampening=d)
        x, s = step(x, s)
        m = (1.0 if k == 0 else 1 - d) * np.cos(xs) + beta * m
        xs = xs - lr * m
        np.testing.assert_allclose(x, xs, **F64_ITERATES)
    assert len(traces) == 1


def test_adam_weight_decay_change_matches_optax_add_decayed_weights(x64):
    """The second step with ``weight_decay`` set to 0.5 is optax's
    ``chain(add_decayed_weights(0.5), adam)`` from the same moments."""
    tx = dynopt.adam(0.1, weight_decay=0.0)
    x = jnp.array([1.0, -2.0, 0.5])
    u, s = tx.update(jnp.cos(x), tx.init(x), x)
    x1 = optax.apply_updates(x, u)
    s = dynopt.set_hyperparams(s, weight_decay=0.5)
    u, _ = tx.update(jnp.cos(x1), s, x1)
    ref = optax.chain(optax.add_decayed_weights(0.5), optax.adam(0.1))
    decay_state, (adam_state, *rest) = ref.init(x1)
    adam_state = adam_state._replace(count=s.count, mu=s.mu, nu=s.nu)
    ref_state = (decay_state, (adam_state, *rest))
    expected, _ = ref.update(jnp.cos(x1), ref_state, x1)
    np.testing.assert_allclose(u, expected, **F64_ITERATES)


def test_sweep_over_weight_decay_equals_separate_runs(x64):
    wds = jnp.array([0.0, 0.1, 1.0])
    x0 = jnp.array([1.5, -0.5, 0.2])

    def make(learning_rate, weight_decay):
        return dynopt.momentum(learning_rate, 0.9, weight_decay=weight_decay)

    res = dynopt.sweep(make, _loss, x0, 12, learning_rate=[0.05] * 3, weight_decay=wds)
    for i in range(3):
        ref = _separate(make(0.05, float(wds[i])), x0, 12)
        np.testing.assert_allclose(res.params[i], ref, **F64_ITERATES)
    assert not np.allclose(res.params[0], res.params[2])


def _loss(x, batch=None):
    target = 0.0 if batch is None else batch
    return jnp.sum(0.5 * (x - target) ** 2 + 0.1 * x**4)


def _separate(tx, x, steps, batches=None):
    s = tx.init(x)
    for k in range(steps):
        args = () if batches is None else (batches[k],)
        u, s = tx.update(jax.grad(_loss)(x, *args), s, x)
        x = optax.apply_updates(x, u)
    return x


def test_sweep_equals_separate_runs(x64):
    lrs = jnp.array([0.01, 0.05, 0.1])
    betas = jnp.array([0.0, 0.5, 0.9])
    x0 = jnp.array([1.5, -0.5, 0.2])
    res = dynopt.sweep(dynopt.momentum, _loss, x0, 12, learning_rate=lrs, beta=betas)
    assert res.params.shape == (3, 3) and res.losses.shape == (3, 12)
    for i in range(3):
        ref = _separate(dynopt.momentum(float(lrs[i]), float(betas[i])), x0, 12)
        np.testing.assert_allclose(res.params[i], ref, **F64_ITERATES)
    np.testing.assert_allclose(res.losses[:, 0], _loss(x0), **F64_ITERATES)


def test_sweep_with_batches_and_adam(x64):
    x0 = jnp.array([0.3, -0.2])
    batches = jnp.linspace(-1.0, 1.0, 8)
    lrs = jnp.array([0.01, 0.1])
    res = dynopt.sweep(dynopt.adam, _loss, x0, 8, batches=batches, learning_rate=lrs)
    for i in range(2):
        ref = _separate(dynopt.adam(float(lrs[i])), x0, 8, batches)
        np.testing.assert_allclose(res.params[i], ref, **F64_ITERATES)


def test_sweep_compiles_once():
    traces = []

    def loss(x):
        traces.append(1)
        return jnp.sum(x**2)

    dynopt.sweep(dynopt.sgd, loss, jnp.ones(2), 5, learning_rate=jnp.linspace(0, 1, 16))
    assert len(traces) == 1


def test_errors():
    x = jnp.ones(2)
    lr = jnp.array([0.1, 0.2])
    with pytest.raises(TypeError, match="sweep: `optimizer_factory` must be callable"):
        dynopt.sweep(None, _loss, x, 3, learning_rate=lr)
    with pytest.raises(TypeError, match="sweep: `loss_fn` must be callable"):
        dynopt.sweep(dynopt.sgd, 1.0, x, 3, learning_rate=lr)
    with pytest.raises(ValueError, match="sweep: `num_steps` must be >= 1, got 0"):
        dynopt.sweep(dynopt.sgd, _loss, x, 0, learning_rate=lr)
    with pytest.raises(TypeError, match="sweep: `num_steps` must be an int"):
        dynopt.sweep(dynopt.sgd, _loss, x, 2.5, learning_rate=lr)
    with pytest.raises(ValueError, match="sweep: give at least one hyperparameter"):
        dynopt.sweep(dynopt.sgd, _loss, x, 3)
    with pytest.raises(ValueError, match="sweep: `learning_rate` must be a non-empty"):
        dynopt.sweep(dynopt.sgd, _loss, x, 3, learning_rate=0.1)
    with pytest.raises(ValueError, match="sweep: hyperparameter arrays must have"):
        dynopt.sweep(dynopt.momentum, _loss, x, 3, learning_rate=lr, beta=lr[:1])
    with pytest.raises(ValueError, match="sweep: the optimiser's state has no"):
        dynopt.sweep(
            lambda learning_rate, beta: optax.sgd(learning_rate, beta),
            _loss,
            x,
            3,
            learning_rate=lr,
            beta=lr,
        )
    with pytest.raises(ValueError, match=r"sweep: the optimiser's state has no .*'b1'"):
        dynopt.sweep(
            lambda learning_rate, b1: dynopt.momentum(learning_rate),
            _loss,
            x,
            3,
            learning_rate=lr,
            b1=lr,
        )


def test_repeated_sweep_reuses_the_compilation():
    traces = []

    def loss(x):
        traces.append(1)
        return jnp.sum(x**2)

    first = dynopt.sweep(dynopt.sgd, loss, jnp.ones(2), 5, learning_rate=[0.1, 0.2])
    again = dynopt.sweep(dynopt.sgd, loss, jnp.ones(2), 5, learning_rate=[0.1, 0.3])
    assert len(traces) == 1
    np.testing.assert_allclose(first.params[0], again.params[0])
    assert not np.allclose(first.params[1], again.params[1])
