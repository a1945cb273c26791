"""One conformance suite that every dynopt optimiser passes (cf. optax's alias tests).

Each entry of ``OPTIMIZERS`` is ``(id, factory, kwargs)``; the factory takes the
learning rate first. New optimisers are added to this list.
"""

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

OPTIMIZERS = [
    ("sgd", dynopt.sgd, {}),
    ("momentum", dynopt.momentum, {"beta": 0.9}),
    (
        "momentum_half_step",
        dynopt.momentum,
        {"beta": 0.9, "init_velocity": "half_step"},
    ),
    ("momentum_dampening", dynopt.momentum, {"beta": 0.9, "dampening": 0.1}),
    ("nesterov", dynopt.nesterov, {"beta": 0.9}),
    (
        "nesterov_half_step",
        dynopt.nesterov,
        {"beta": 0.9, "init_velocity": "half_step"},
    ),
]
IDS = [o[0] for o in OPTIMIZERS]


def _make(entry, lr):
    _, factory, kwargs = entry
    return factory(lr, **kwargs)


def _run(opt, grad_fn, x0, steps):
    @jax.jit
    def run(x0):
        def step(carry, _):
            x, s = carry
            u, s = opt.update(grad_fn(x), s, x)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        return x

    return run(x0)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


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
    steps = 20_000 if entry[0] == "sgd" else 5_000
    x = _run(
        _make(entry, 1e-3), jax.grad(rosenbrock), jnp.array([-1.2, 1.0], dt), steps
    )
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-3)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_bf16_params_keep_their_dtype(entry):
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.bfloat16)}
    opt = _make(entry, 0.1)
    state = opt.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    for _ in range(3):
        updates, state = jax.jit(opt.update)(grads, state, params)
        params = optax.apply_updates(params, updates)
    for tree in (updates, params):
        assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(tree))
    assert bool(jnp.all(params["b"] < 0))  # it moved downhill


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_float32_accumulator_for_bf16_params(name):
    params = jnp.ones(5, jnp.bfloat16)
    opt = getattr(dynopt, name)(0.1, 0.9, accumulator_dtype=jnp.float32)
    state = opt.init(params)
    assert state.momentum.dtype == jnp.float32
    updates, state = opt.update(jnp.ones(5, jnp.bfloat16), state, params)
    assert updates.dtype == jnp.bfloat16 and state.momentum.dtype == jnp.float32


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_inject_hyperparams_gives_the_same_updates(entry):
    _, factory, kwargs = entry
    plain = factory(0.1, **kwargs)
    injected = optax.inject_hyperparams(factory)(0.1, **kwargs)
    x = jnp.linspace(-1.0, 2.0, 6)
    s1, s2 = plain.init(x), injected.init(x)
    for k in range(5):
        g = jnp.sin(x + k)
        u1, s1 = plain.update(g, s1, x)
        u2, s2 = injected.update(g, s2, x)
        np.testing.assert_array_equal(u1, u2)
        x = x + u1
    # Changing the rate through the wrapper's state takes effect.
    s2.hyperparams["learning_rate"] = jnp.asarray(0.0)
    u2, _ = injected.update(jnp.ones(6), s2, x)
    np.testing.assert_array_equal(u2, jnp.zeros(6))


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_changing_hyperparameters_does_not_retrace(entry):
    opt = _make(entry, 0.1)
    names = [
        n for n in ("learning_rate", "beta") if n in opt.init(jnp.zeros(1)).hyperparams
    ]
    traces = []

    @jax.jit
    def train_step(x, state):
        traces.append(1)
        u, state = opt.update(2 * x, state, x)
        return optax.apply_updates(x, u), state

    x, state = jnp.ones(3), opt.init(jnp.ones(3))
    x, state = train_step(x, state)
    for lr, beta in [(0.05, 0.5), (0.2, 0.0), (0.0, 0.3)]:
        values = {"learning_rate": lr, "beta": beta}
        state = dynopt.set_hyperparams(state, **{n: values[n] for n in names})
        before = x
        x, state = train_step(x, state)
    assert len(traces) == 1
    np.testing.assert_array_equal(x, before)  # the last rate was 0: no move
    assert float(state.hyperparams["learning_rate"]) == 0.0


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_works_in_optax_chain_with_extra_args(entry):
    ours = optax.chain(optax.clip_by_global_norm(1.0), _make(entry, 0.1))
    state = ours.init(jnp.ones(3))
    u, state = ours.update(jnp.array([3.0, 4.0, 0.0]), state, jnp.ones(3), extra=1)
    # The clipped gradient has norm 1; the first step of SGD / momentum from rest
    # moves by lr times it (the half-step start by lr / (1 + beta), Nesterov by
    # lr (1 + beta)).
    norm = float(jnp.linalg.norm(u))
    assert norm > 0
    np.testing.assert_allclose(u / norm, -jnp.array([0.6, 0.8, 0.0]), rtol=1e-6)


def test_nnx_optimizer_matches_optax():
    def train(tx):
        model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
        x = jnp.linspace(-1, 1, 12).reshape(4, 3)

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
    with jax.set_mesh(mesh):
        params = {"w": jax.device_put(jnp.ones((8, 3)), sharding)}
        state = jax.jit(opt.init)(params)
        _, state = jax.jit(opt.update)(params, state, params)
        u, _ = jax.jit(opt.update)(params, state, params)
    if isinstance(state, dynopt.MomentumState):
        assert state.momentum["w"].sharding.is_equivalent_to(sharding, 2)
    assert u["w"].sharding.is_equivalent_to(sharding, 2)


@pytest.mark.parametrize("entry", OPTIMIZERS, ids=IDS)
def test_state_structure_is_stable(entry):
    opt = _make(entry, 0.1)
    params = {"a": jnp.ones(2), "b": (jnp.zeros(3), jnp.ones((2, 2)))}
    state = opt.init(params)
    _, new = opt.update(params, state, params)
    assert jax.tree.structure(state) == jax.tree.structure(new)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


def test_dynamics_are_carried():
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
    # The clock: the state's time advances by gamma per step.
    state = opt.init(jnp.zeros(2))
    for _ in range(3):
        _, state = opt.update(jnp.ones(2), state)
    np.testing.assert_allclose(state.time, 3 * gamma, rtol=1e-6)


@pytest.mark.parametrize(
    "entry", OPTIMIZERS[:2] + OPTIMIZERS[4:5], ids=["sgd", "momentum", "nesterov"]
)
def test_works_in_optax_multisteps(entry):
    """Gradient accumulation over 3 micro-steps, same as optax's own optimiser."""
    reference = {
        "sgd": optax.sgd(0.1),
        "momentum": optax.sgd(0.1, momentum=0.9),
        "nesterov": optax.sgd(0.1, momentum=0.9, nesterov=True),
    }[entry[0]]
    ours = optax.MultiSteps(_make(entry, 0.1), every_k_schedule=3)
    theirs = optax.MultiSteps(reference, every_k_schedule=3)
    x = y = jnp.linspace(-1.0, 1.0, 4)
    s1, s2 = ours.init(x), theirs.init(y)
    for k in range(9):
        u1, s1 = ours.update(jnp.cos(x + k), s1, x)
        u2, s2 = theirs.update(jnp.cos(y + k), s2, y)
        x, y = x + u1, y + u2
    assert float(jnp.max(jnp.abs(x - jnp.linspace(-1.0, 1.0, 4)))) > 0.05
    np.testing.assert_array_equal(x, y)
