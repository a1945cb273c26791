"""Data parallelism that is real or refused, counted in compiled HLO (8 devices).

The test run has 8 host CPU devices (tests/conftest.py). A collective (all-
reduce, reduce-scatter, all-gather, all-to-all, collective-permute) in the
compiled program is the footprint of a computation split over devices.
"""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import dynopt
import genvi

COLLECTIVE = re.compile(
    r"\b(all-reduce|reduce-scatter|all-gather|all-to-all|collective-permute)"
)


def _collectives(compiled) -> int:
    return len(COLLECTIVE.findall(compiled.as_text()))


@pytest.fixture(scope="module")
def mesh():
    return Mesh(np.array(jax.devices()[:8]), ("data",))


def _data():
    x = jax.random.normal(jax.random.key(0), (64, 4))
    return x, x @ jnp.arange(1.0, 5.0)


def _step(draw):
    def step(w, data):
        x, y = draw(w, data)
        loss, g = jax.value_and_grad(lambda w: jnp.mean((x @ w - y) ** 2))(w)
        return w - 0.1 * g, {"loss": loss}

    return step


def _sampled(w, data):
    return genvi.sample_batch(jax.random.key(0), data, 16)


def _sliced(w, data):
    return data[0][:16], data[1][:16]  # plain indexing: replicated on every device


def test_a_mesh_run_without_a_sharded_batch_warns(mesh):
    with pytest.warns(
        UserWarning,
        match=r"train: the step runs on a mesh of 8 devices \(axis 'data'\) but its "
        r"compiled program has no all-reduce or other collective",
    ):
        genvi.train(
            _step(_sliced),
            jnp.zeros(4),
            data=_data(),
            num_steps=2,
            mesh=mesh,
            progress=False,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        genvi.train(
            _step(_sampled),
            jnp.zeros(4),
            data=_data(),
            num_steps=2,
            mesh=mesh,
            progress=False,
        )


@pytest.mark.parametrize(
    "make",
    [lambda: dynopt.adam(1e-3), lambda: dynopt.momentum(0.1, 0.9)],
    ids=["adam", "momentum"],
)
def test_jit_init_keeps_the_parameter_sharding_and_the_step_needs_no_collective(
    mesh, make
):
    tx = make()
    sharded = NamedSharding(mesh, P("data"))
    params = {
        "w": jax.device_put(jnp.ones((64, 8)), sharded),
        "b": jax.device_put(jnp.ones(8), NamedSharding(mesh, P())),
    }
    state = jax.jit(tx.init)(params)
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    buffers = [(jax.tree_util.keystr(p), x) for p, x in flat if x.ndim == 2]
    assert buffers
    for name, x in buffers:
        assert x.sharding.is_equivalent_to(sharded, 2), name

    def step(params, state):
        grads = jax.tree_util.tree_map(jnp.sin, params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    compiled = jax.jit(step).lower(params, state).compile()
    assert _collectives(compiled) == 0


def test_set_hyperparams_keeps_the_sharding_and_does_not_recompile(mesh):
    tx = dynopt.adam(1e-3)
    replicated = NamedSharding(mesh, P())
    params = jax.device_put(jnp.ones(16), NamedSharding(mesh, P("data")))
    state = jax.device_put(tx.init(params), replicated)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jnp.cos(params), state, params)
        return optax.apply_updates(params, updates), state

    step(params, state)
    changed = dynopt.set_hyperparams(state, learning_rate=0.5)
    lr = changed.hyperparams["learning_rate"]
    assert lr.sharding.is_equivalent_to(replicated, 0)
    out, _ = step(params, changed)
    assert step._cache_size() == 1  # the same program, no recompilation
    assert float(lr) == 0.5 and not np.array_equal(out, step(params, state)[0])


def test_flat_buffers_on_a_mesh_step_without_collectives_but_the_view_gathers(mesh):
    sharded = NamedSharding(mesh, P("data"))
    tree = {"a": jnp.ones((8, 3)), "b": jnp.ones(16), "c": jnp.ones((3, 8))}
    flat = dynopt.flatten(tree)
    flat = jax.device_put(flat, sharded)
    tx = dynopt.flat_optimizer(dynopt.momentum(0.1, 0.9))
    state = jax.jit(tx.init)(flat)

    def update_only(flat, state):
        updates, state = tx.update(flat, state, flat)
        return optax.apply_updates(flat, updates), state

    compiled = jax.jit(update_only).lower(flat, state).compile()
    assert _collectives(compiled) == 0

    def through_the_view(flat):
        view = flat.tree()  # the model's pytree: slices at leaf offsets
        return jax.tree_util.tree_map(lambda x: 2.0 * x, view)

    # The documented cost (dynopt.flatten's docstring): reading a sharded buffer
    # through the tree view moves data between devices; use the tree path
    # (parameters sharded as a pytree) on a mesh.
    assert _collectives(jax.jit(through_the_view).lower(flat).compile()) > 0
