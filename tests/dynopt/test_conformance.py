"""One conformance suite that every dynopt optimiser passes (cf. optax's alias tests).

Each entry of ``OPTIMIZERS`` is ``(id, factory, kwargs)``; the factory takes the
learning rate first. Every public factory of dynopt that returns an optax
transform is in this list or in ``NOT_IN_SUITE`` with the reason
(``test_every_public_optimizer_is_in_the_suite`` checks it). New optimisers
are added here.

Every ``update`` call passes ``grad_fn=`` (the gradient of the test's problem):
:func:`dynopt.heun` needs it for its second gradient, the others ignore it, and
so every optimiser is also checked to accept extra arguments.
"""

import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import dynopt
from tests.tolerances import F32_ITERATES


def master_momentum(learning_rate, beta=0.9):
    """Momentum on a float32 master copy (:func:`dynopt.master_weights`)."""
    return dynopt.master_weights(dynopt.momentum(learning_rate, beta))


def discretise_rk4(learning_rate):
    """RK4 on the gradient flow with step ``h = learning_rate``
    (:func:`dynopt.discretise`)."""
    return dynopt.discretise(dynopt.GradientFlow(), dynopt.RK4(), learning_rate)


OPTIMIZERS = [
    ("sgd", dynopt.sgd, {}),
    ("momentum", dynopt.momentum, {"beta": 0.9}),
    (
        "momentum_half_step",
        dynopt.momentum,
        {"beta": 0.9, "init_velocity": "half_step"},
    ),
    ("momentum_dampening", dynopt.momentum, {"beta": 0.9, "dampening": 0.1}),
    # A weight-decay leaf (0 here, changed by the no-retrace test).
    ("momentum_weight_decay", dynopt.momentum, {"beta": 0.9, "weight_decay": 0.0}),
    ("nesterov", dynopt.nesterov, {"beta": 0.9}),
    (
        "nesterov_half_step",
        dynopt.nesterov,
        {"beta": 0.9, "init_velocity": "half_step"},
    ),
    ("adam", dynopt.adam, {}),
    ("nag_c", dynopt.nag_c, {}),
    ("heun", dynopt.heun, {}),
    ("master_weights_momentum", master_momentum, {"beta": 0.9}),
    ("discretise_rk4", discretise_rk4, {}),
]
IDS = [o[0] for o in OPTIMIZERS]
NOT_IN_SUITE = {
    # It takes dynopt.FlatParams, not an arbitrary pytree of arrays, so these
    # checks cannot feed it; tests/dynopt/test_flat.py runs it against the same
    # optimisers on the tree.
    "flat_optimizer": "takes dynopt.FlatParams only (see test_flat.py)",
}
# The dtype of the updates for bf16 parameters where it is not bf16, and why:
# master_weights returns M_{k+1} - x_k in the master dtype on purpose, so that
# optax.apply_updates rounds the exact float32 sum to bf16 once.
UPDATE_DTYPE = {"master_weights_momentum": jnp.float32}
# (learning rate, steps) on Rosenbrock: first-order methods without momentum
# need more steps; Adam's steps are about lr in size whatever the gradient, so
# it needs a larger rate to cross the valley in the same number of steps.
ROSENBROCK = {
    "sgd": (1e-3, 20_000),
    "heun": (1e-3, 20_000),
    "nag_c": (1e-3, 10_000),
    "adam": (1e-2, 5_000),
    "discretise_rk4": (1e-3, 20_000),
}


def _make(entry, lr):
    _, factory, kwargs = entry
    return factory(lr, **kwargs)


def _run(opt, grad_fn, x0, steps):
    @jax.jit
    def run(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(grad_fn(x), s, x, grad_fn=grad_fn)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        return x

    return run(x0)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def _public_optimizer_factories():
    """Names in dynopt.__all__ of functions annotated to return a transform."""
    names = []
    for name in dynopt.__all__:
        obj = getattr(dynopt, name)
        if not callable(obj) or isinstance(obj, type):
            continue
        ret = typing.get_type_hints(obj).get("return")
        if isinstance(ret, type) and issubclass(ret, optax.GradientTransformation):
            names.append(name)
    return names


def test_every_public_optimizer_is_in_the_suite():
    public = _public_optimizer_factories()
    assert {"sgd", "adam", "nag_c", "heun", "master_weights"} <= set(public)
    for name in public:
        covered = any(i == name or i.startswith(name + "_") for i in IDS)
        assert covered or name in NOT_IN_SUITE, f"{name} is not in the suite"


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_converges_on_parabola_and_rosenbrock(request, entry, dtype):
    if dtype == "float64":
        request.getfixturevalue("x64")
    dt = jnp.dtype(dtype)
    h = jnp.array([1.0, 3.0, 10.0], dt)
    c = jnp.array([1.0, -2.0, 0.5], dt)
    x = _run(_make(entry, 0.05), lambda x: h * (x - c), jnp.zeros(3, dt), 600)
    assert x.dtype == dt
    np.testing.assert_allclose(x, c, atol=1e-4)
    lr, steps = ROSENBROCK.get(entry[0], (1e-3, 5_000))
    x = _run(_make(entry, lr), jax.grad(rosenbrock), jnp.array([-1.2, 1.0], dt), steps)
    assert x.dtype == dt
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-3)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_bf16_params_keep_their_dtype(entry):
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.bfloat16)}
    opt = _make(entry, 0.1)
    state = opt.init(params)

    def grad_fn(p):
        return jax.tree.map(lambda q: jnp.full_like(q, 0.5), p)

    update = jax.jit(functools.partial(opt.update, grad_fn=grad_fn))
    for _ in range(3):
        updates, state = update(grad_fn(params), state, params)
        params = optax.apply_updates(params, updates)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(params))
    expected = UPDATE_DTYPE.get(entry[0], jnp.bfloat16)
    assert all(leaf.dtype == expected for leaf in jax.tree.leaves(updates))
    assert bool(jnp.all(params["b"] < 0))  # it moved downhill


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
def test_float32_accumulator_for_bf16_params(name):
    params = jnp.ones(5, jnp.bfloat16)
    opt = getattr(dynopt, name)(0.1, accumulator_dtype=jnp.float32)
    state = opt.init(params)
    buffers = [state.momentum] if name != "adam" else [state.mu, state.nu]
    assert all(b.dtype == jnp.float32 for b in buffers)
    updates, state = opt.update(jnp.ones(5, jnp.bfloat16), state, params)
    buffers = [state.momentum] if name != "adam" else [state.mu, state.nu]
    # As in optax, the update keeps the accumulator's dtype; it is rounded to
    # bfloat16 once, when added to the parameters.
    assert updates.dtype == jnp.float32
    assert optax.apply_updates(params, updates).dtype == jnp.bfloat16
    assert all(b.dtype == jnp.float32 for b in buffers)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (
            lambda: dynopt.momentum(1e-2, 0.9, accumulator_dtype=jnp.float32),
            lambda: optax.sgd(1e-2, momentum=0.9, accumulator_dtype=jnp.float32),
        ),
        (
            lambda: dynopt.nesterov(1e-2, 0.0, accumulator_dtype=jnp.float32),
            lambda: optax.sgd(1e-2, momentum=0.0, accumulator_dtype=jnp.float32),
        ),
    ],
    ids=["momentum", "nesterov-without-momentum"],
)
def test_bf16_params_with_float32_accumulator_match_optax(ours, theirs):
    keys = jax.random.split(jax.random.key(0), 4)
    x0 = jax.random.normal(keys[0], (1000,)).astype(jnp.bfloat16)
    runs = []
    for tx in (ours(), theirs()):
        x, state = x0, tx.init(x0)
        for k in keys[1:]:
            g = jax.random.normal(k, (1000,)).astype(jnp.bfloat16)
            u, state = tx.update(g, state, x)
            x = optax.apply_updates(x, u)
        runs.append(x)
    assert runs[0].dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        np.asarray(runs[0], np.float32), np.asarray(runs[1], np.float32)
    )


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_inject_hyperparams_gives_the_same_updates(entry):
    _, factory, kwargs = entry
    plain = factory(0.1, **kwargs)
    injected = optax.inject_hyperparams(factory)(0.1, **kwargs)
    x = jnp.linspace(-1.0, 2.0, 6)
    s1, s2 = plain.init(x), injected.init(x)
    for k in range(5):
        g = jnp.sin(x + k)
        u1, s1 = plain.update(g, s1, x, grad_fn=jnp.sin)
        u2, s2 = injected.update(g, s2, x, grad_fn=jnp.sin)
        np.testing.assert_array_equal(u1, u2)
        x = x + u1
    # Changing the rate through the wrapper's state takes effect.
    s2.hyperparams["learning_rate"] = jnp.asarray(0.0)
    u2, _ = injected.update(jnp.ones(6), s2, x, grad_fn=jnp.sin)
    u3, _ = injected.update(-jnp.ones(6), s2, x, grad_fn=jnp.sin)
    _check_rate_zero_step(entry[0], u2, u3)


# Optimisers whose step with rate 0 is not 0, and why: NAG-C's rate scales only
# the gradient, y_k - y_{k-1} = (1 + c_k) d_k - c_{k-1} d_{k-1} with
# d_k = c_{k-1} d_{k-1} - s g, so with s = 0 the x-sequence keeps coasting.
MOVES_AT_RATE_ZERO = {"nag_c"}


def _check_rate_zero_step(name, u_a, u_b):
    """Two steps with rate 0 and different gradients: the gradient is ignored,
    and the step is 0 unless the method coasts (``MOVES_AT_RATE_ZERO``)."""
    np.testing.assert_array_equal(u_a, u_b)
    if name not in MOVES_AT_RATE_ZERO:
        np.testing.assert_array_equal(u_a, jnp.zeros_like(u_a))


# New values for every hyperparameter a state may hold; the last learning rate is
# 0, so the last step must not move.
NEW_VALUES = {
    "learning_rate": (0.05, 0.2, 0.0),
    "step_size": (0.05, 0.2, 0.0),  # dynopt.discretise's rate
    "beta": (0.5, 0.0, 0.3),
    "dampening": (0.2, 0.0, 0.5),
    "weight_decay": (0.1, 0.0, 0.01),
    "b1": (0.5, 0.0, 0.8),
    "b2": (0.9, 0.5, 0.99),
    "eps": (1e-3, 1e-8, 1e-6),
    "eps_root": (1e-8, 0.0, 1e-6),
}


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_changing_hyperparameters_does_not_retrace(entry):
    opt = _make(entry, 0.1)
    names = sorted(dynopt.get_hyperparams(opt.init(jnp.zeros(1))))
    assert {"learning_rate", "step_size"} & set(names)
    assert set(names) <= set(NEW_VALUES)
    traces = []

    @jax.jit
    def train_step(x, g, state):
        traces.append(1)
        u, state = opt.update(g, state, x, grad_fn=lambda p: 2 * p)
        return u, state

    x, state = jnp.ones(3), opt.init(jnp.ones(3))
    u, state = train_step(x, 2 * x, state)
    for i in range(3):
        x = optax.apply_updates(x, u)
        before = dynopt.set_hyperparams(state, **{n: NEW_VALUES[n][i] for n in names})
        u, state = train_step(x, 2 * x, before)
        hp = dynopt.get_hyperparams(state)
        for n in names:
            np.testing.assert_allclose(hp[n], NEW_VALUES[n][i], rtol=1e-7)
    # the last rate was 0: the step ignores the gradient (and is 0, mostly)
    u_other, _ = train_step(x, -x, before)
    assert len(traces) == 1
    _check_rate_zero_step(entry[0], u, u_other)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_works_in_optax_chain_with_extra_args(entry):
    """``chain(clip, opt)`` is ``opt`` on the clipped gradient; extra args pass."""
    g, x = jnp.array([3.0, 4.0, 0.0]), jnp.ones(3)

    def grad_fn(p):  # the gradient of the linear loss 3 x0 + 4 x1
        return jnp.array([3.0, 4.0, 0.0])

    ours = optax.chain(optax.clip_by_global_norm(1.0), _make(entry, 0.1))
    u, _ = ours.update(g, ours.init(x), x, extra=1, grad_fn=grad_fn)
    alone = _make(entry, 0.1)
    expected, _ = alone.update(g / 5.0, alone.init(x), x, extra=1, grad_fn=grad_fn)
    assert float(jnp.linalg.norm(u)) > 0
    np.testing.assert_allclose(u, expected, **F32_ITERATES)


def _nnx_problem():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    x = jnp.linspace(-1, 1, 12).reshape(4, 3)
    graphdef = nnx.graphdef(model)

    def loss_of_params(params):
        return jnp.mean(nnx.merge(graphdef, params)(x) ** 2)

    return model, x, jax.grad(loss_of_params), loss_of_params


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_nnx_optimizer_matches_a_plain_optax_loop(entry):
    model, x, grad_fn, loss_of_params = _nnx_problem()
    # a copy: the nnx state refers to the model's variables, which training changes
    params0 = jax.tree.map(jnp.array, nnx.as_pure(nnx.state(model, nnx.Param)))
    tx = _make(entry, 0.1)
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)
        opt.update(model, grads, grad_fn=grad_fn)
        return loss

    losses = [float(step(model, opt)) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]

    @jax.jit
    def plain(params):
        def one(carry, _):
            p, s = carry
            u, s = tx.update(grad_fn(p), s, p, grad_fn=grad_fn)
            return (optax.apply_updates(p, u), s), loss_of_params(p)

        (p, _), out = jax.lax.scan(one, (params, tx.init(params)), None, length=20)
        return p, out

    params, plain_losses = plain(params0)
    # Same arithmetic, but fused differently inside the two jits (seen: 1 ulp).
    np.testing.assert_allclose(model.kernel[...], params["kernel"], **F32_ITERATES)
    np.testing.assert_allclose(losses, plain_losses, **F32_ITERATES)


def test_nnx_optimizer_matches_optax():
    _, x, _, _ = _nnx_problem()

    def train(tx):
        model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, opt):
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)
            opt.update(model, grads)
            return loss

        losses = [float(step(model, opt)) for _ in range(20)]
        return losses, model.kernel[...]

    ours, k1 = train(dynopt.nesterov(0.1, 0.9))
    theirs, k2 = train(optax.sgd(0.1, momentum=0.9, nesterov=True))
    assert ours[-1] < 0.5 * ours[0]
    # Same arithmetic, but fused with the gradient inside nnx.jit: XLA may order
    # the float32 operations differently (seen: 1 ulp), so not bitwise.
    np.testing.assert_allclose(k1, k2, **F32_ITERATES)
    np.testing.assert_allclose(ours, theirs, **F32_ITERATES)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("axis_type", ["Auto", "Explicit"])
def test_state_keeps_the_sharding_of_its_parameters(entry, axis_type):
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 host devices (XLA_FLAGS set in tests/conftest.py)")
    kind = getattr(jax.sharding.AxisType, axis_type)
    mesh = jax.make_mesh((4,), ("data",), axis_types=(kind,))
    sharding = NamedSharding(mesh, P("data"))
    opt = _make(entry, 0.1)
    update = jax.jit(functools.partial(opt.update, grad_fn=lambda p: p))
    with jax.set_mesh(mesh):
        params = {"w": jax.device_put(jnp.ones((8, 3)), sharding)}
        state = jax.jit(opt.init)(params)
        _, state = update(params, state, params)
        u, state = update(params, state, params)
    # Every buffer shaped like the parameters (momentum, moments, master copy).
    buffers = [a for a in jax.tree.leaves(state) if a.shape == (8, 3)]
    for a in buffers:
        assert a.sharding.is_equivalent_to(sharding, 2)
    assert u["w"].sharding.is_equivalent_to(sharding, 2)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_state_structure_is_stable(entry):
    opt = _make(entry, 0.1)
    params = {"a": jnp.ones(2), "b": (jnp.zeros(3), jnp.ones((2, 2)))}
    state = opt.init(params)
    _, new = opt.update(params, state, params, grad_fn=lambda p: p)
    assert jax.tree.structure(state) == jax.tree.structure(new)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_dynamics_and_clock_are_carried(entry):
    """The state's ODE time advances by the clock's step ``h`` at every step."""
    opt = _make(entry, 0.1)
    d = opt.dynamics
    assert d.scheme.order >= 1 and hasattr(d.flow(), "vector_field")
    state = opt.init(jnp.zeros(2))
    for _ in range(3):
        _, state = opt.update(jnp.ones(2), state, jnp.zeros(2), grad_fn=jnp.sin)
    time = [s.time for s in _named_states(state) if "time" in s._fields][0]
    np.testing.assert_allclose(time, 3 * d.step_size(), rtol=1e-6)


def _named_states(state):
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        yield state
    if isinstance(state, tuple | list):
        for child in state:
            yield from _named_states(child)


def test_momentum_dynamics():
    opt = dynopt.momentum(0.1, 0.9)
    d = opt.dynamics
    assert d.scheme.name == "leapfrog" and d.clock.name == "sqrt_learning_rate"
    flow = d.flow()
    assert isinstance(flow, dynopt.HeavyBallFlow)
    gamma, friction = dynopt.momentum_to_ode(0.1, 0.9)
    np.testing.assert_allclose(flow.friction, friction, rtol=1e-6)
    np.testing.assert_allclose(d.step_size(), gamma, rtol=1e-6)
    assert isinstance(dynopt.sgd(0.1).dynamics.flow(), dynopt.GradientFlow)
    nag = dynopt.nesterov(0.1, 0.9).dynamics.flow()
    assert isinstance(nag, dynopt.HessianDampedFlow)
    np.testing.assert_allclose(nag.hessian_damping, 0.9 * gamma, rtol=1e-6)
    assert isinstance(dynopt.nag_c(0.1).dynamics.flow(), dynopt.SuBoydCandesFlow)
    assert isinstance(dynopt.adam(0.1).dynamics.flow(), dynopt.AdamFlow)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_works_in_optax_multisteps(entry):
    """Accumulating 3 micro-steps is one step on the mean of their gradients."""
    ours = optax.MultiSteps(_make(entry, 0.1), every_k_schedule=3)
    alone = _make(entry, 0.1)
    update1 = jax.jit(functools.partial(ours.update, grad_fn=jnp.cos))
    update2 = jax.jit(functools.partial(alone.update, grad_fn=jnp.cos))
    x = y = jnp.linspace(-1.0, 1.0, 4)
    s1, s2 = ours.init(x), alone.init(y)
    for k in range(9):
        u1, s1 = update1(jnp.cos(x + k), s1, x)
        x = x + u1
        if k % 3 == 2:
            mean = sum(jnp.cos(y + j) for j in range(k - 2, k + 1)) / 3
            u2, s2 = update2(mean, s2, y)
            y = y + u2
            np.testing.assert_allclose(x, y, **F32_ITERATES)
    assert float(jnp.max(jnp.abs(x - jnp.linspace(-1.0, 1.0, 4)))) > 0.02


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_multisteps_equals_optax(name):
    """Gradient accumulation over 3 micro-steps, same as optax's own optimiser
    (bitwise; Adam to one float32 rounding per operation, as in test_adam.py)."""
    ours, reference = {
        "sgd": (dynopt.sgd(0.1), optax.sgd(0.1)),
        "momentum": (dynopt.momentum(0.1, 0.9), optax.sgd(0.1, momentum=0.9)),
        "nesterov": (
            dynopt.nesterov(0.1, 0.9),
            optax.sgd(0.1, momentum=0.9, nesterov=True),
        ),
        "adam": (dynopt.adam(0.1), optax.adam(0.1)),
    }[name]
    ours = optax.MultiSteps(ours, every_k_schedule=3)
    theirs = optax.MultiSteps(reference, every_k_schedule=3)
    update1, update2 = jax.jit(ours.update), jax.jit(theirs.update)
    x = y = jnp.linspace(-1.0, 1.0, 4)
    s1, s2 = ours.init(x), theirs.init(y)
    for k in range(9):
        u1, s1 = update1(jnp.cos(x + k), s1, x)
        u2, s2 = update2(jnp.cos(y + k), s2, y)
        x, y = x + u1, y + u2
    assert float(jnp.max(jnp.abs(x - jnp.linspace(-1.0, 1.0, 4)))) > 0.05
    if name == "adam":
        np.testing.assert_allclose(x, y, **F32_ITERATES)
    else:
        np.testing.assert_array_equal(x, y)
