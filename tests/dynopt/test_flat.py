"""Flat parameter storage: layout, pytree view, gradients and iterates."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import dynopt
from tests.tolerances import F64_ITERATES


def _tree(dtype=jnp.float64, key=0):
    k = jax.random.split(jax.random.PRNGKey(key), 4)
    return {
        "a": jax.random.normal(k[0], (3, 4), dtype),
        "b": [jax.random.normal(k[1], (5,), dtype), jax.random.normal(k[2], (), dtype)],
        "c": jax.random.normal(k[3], (2, 1, 3), dtype),
    }


def _loss(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    # couples the leaves so that the gradient is not leafwise trivial
    s = sum(jnp.sum(jnp.sin(x)) for x in leaves)
    return s**2 / 10 + sum(jnp.sum(x**4) / 4 for x in leaves)


def test_round_trip_and_one_buffer_per_dtype():
    tree = {
        "w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3),
        "h": jnp.ones(4, jnp.bfloat16),
        "b": jnp.full((), 7.0, jnp.float32),
    }
    flat = dynopt.flatten(tree)
    assert len(flat.buffers) == 2
    assert sorted(b.dtype.name for b in flat.buffers) == ["bfloat16", "float32"]
    assert flat.size == 11 and flat.num_leaves == 3
    back = flat.tree()
    for k in tree:
        assert back[k].dtype == tree[k].dtype and back[k].shape == tree[k].shape
        np.testing.assert_array_equal(back[k], tree[k])
    back_jit = jax.jit(lambda f: f.tree())(flat)
    np.testing.assert_array_equal(back_jit["w"], tree["w"])


def test_buckets_respect_the_byte_bound():
    tree = [jnp.ones(10), jnp.ones(10), jnp.ones(30), jnp.ones(5)]
    flat = dynopt.flatten(tree, bucket_bytes=100)  # 25 float32 per bucket
    # 10 + 10 fit, 30 is alone (larger than a bucket), 5 starts a new one
    assert flat.layout.buffer_sizes == (20, 30, 5)
    for x, y in zip(flat.tree(), tree):
        np.testing.assert_array_equal(x, y)


def test_gradient_through_the_view_is_the_flattened_tree_gradient(x64):
    tree = _tree()
    flat = dynopt.flatten(tree)
    g_flat = jax.jit(jax.grad(lambda f: _loss(f.tree())))(flat)
    assert isinstance(g_flat, dynopt.FlatParams)
    g_tree = jax.grad(_loss)(tree)
    expected = flat.replace(g_tree)
    np.testing.assert_allclose(g_flat.buffers[0], expected.buffers[0], **F64_ITERATES)


def _run(tx, params, steps, flat):
    if flat:
        params = dynopt.flatten(params)
        loss = lambda f: _loss(f.tree())  # noqa: E731
    else:
        loss = _loss

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    p, s = params, tx.init(params)
    for _ in range(steps):
        p, s = step(p, s)
    return p.tree() if flat else p


@pytest.mark.parametrize(
    "make",
    [
        lambda: dynopt.sgd(0.05),
        lambda: dynopt.momentum(0.05, 0.9),
        lambda: dynopt.nesterov(0.05, 0.9, weight_decay=0.01),
        lambda: dynopt.adam(0.02),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.02)),
    ],
    ids=["sgd", "momentum", "nesterov", "adam", "optax_clip_adamw"],
)
def test_flat_iterates_equal_tree_iterates(x64, make):
    tree = _tree()
    a = _run(make(), tree, 15, flat=False)
    b = _run(make(), tree, 15, flat=True)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(y, x, **F64_ITERATES)


def test_non_elementwise_transform_runs_on_the_tree_view(x64):
    # LARS-style trust ratios use per-leaf norms: wrong on one flat buffer
    inner = optax.chain(optax.scale_by_trust_ratio(), optax.sgd(0.05))
    tree = _tree()
    a = _run(inner, tree, 10, flat=False)
    b = _run(dynopt.flat_optimizer(inner, elementwise=False), tree, 10, flat=True)
    c = _run(dynopt.flat_optimizer(inner), tree, 10, flat=True)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(y, x, **F64_ITERATES)
    # treating it as elementwise gives another (global-norm) algorithm
    assert not np.allclose(a["a"], c["a"])


def test_nnx_model_trains_the_same_flat(x64):
    model = nnx.Sequential(
        nnx.Linear(3, 8, rngs=nnx.Rngs(0), param_dtype=jnp.float64),
        nnx.Linear(8, 1, rngs=nnx.Rngs(1), param_dtype=jnp.float64),
    )
    graphdef, params = nnx.split(model, nnx.Param)
    x = jax.random.normal(jax.random.PRNGKey(2), (16, 3), jnp.float64)
    y = jnp.sum(jnp.tanh(x), axis=1, keepdims=True)

    def loss_tree(p):
        return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2)

    tx = dynopt.momentum(0.1, 0.9)

    def run(p, loss):
        @jax.jit
        def step(p, s):
            g = jax.grad(loss)(p)
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        s = tx.init(p)
        for _ in range(10):
            p, s = step(p, s)
        return p

    a = run(params, loss_tree)
    flat = run(dynopt.flatten(params), lambda f: loss_tree(f.tree()))
    assert len(flat.buffers) == 1
    b = flat.tree()
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(v, u, **F64_ITERATES)
    model_b = nnx.merge(graphdef, b)
    assert float(jnp.mean((model_b(x) - y) ** 2)) < float(loss_tree(params))


def test_flat_step_has_one_argument_per_buffer():
    tree = [jnp.ones(3) for _ in range(50)]
    flat = dynopt.flatten(tree)
    tx = dynopt.momentum(0.1, 0.9)

    def step(p, s):
        u, s = tx.update(p, s, p)
        return optax.apply_updates(p, u), s

    jaxpr = jax.make_jaxpr(step)(flat, tx.init(flat))
    n_arrays = sum(1 for v in jaxpr.jaxpr.invars if v.aval.shape == (150,))
    assert n_arrays == 2  # params and momentum, not 100 leaves


def test_errors():
    with pytest.raises(ValueError, match="flatten: `params` must have at least one"):
        dynopt.flatten({})
    with pytest.raises(ValueError, match="flatten: `bucket_bytes` must be a positive"):
        dynopt.flatten([jnp.ones(2)], bucket_bytes=0)
    with pytest.raises(TypeError, match="flatten: every leaf of `params` must be an"):
        dynopt.flatten(["x"])
    flat = dynopt.flatten({"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="FlatParams.replace: `tree` must have the"):
        flat.replace({"b": jnp.ones(2)})
    with pytest.raises(ValueError, match=re.escape("leaf shapes must be ((2,),)")):
        flat.replace({"a": jnp.ones(3)})
    tx = dynopt.flat_optimizer(dynopt.sgd(0.1))
    with pytest.raises(TypeError, match="flat_optimizer.init: `params` must be a"):
        tx.init({"a": jnp.ones(2)})
    with pytest.raises(TypeError, match="flat_optimizer.update: `updates` must be"):
        tx.update({"a": jnp.ones(2)}, tx.init(flat))
    with pytest.raises(TypeError, match="flat_optimizer: `tx` must be an optax"):
        dynopt.flat_optimizer(0.1)
    with pytest.raises(TypeError, match="flat_optimizer: `elementwise` must be a"):
        dynopt.flat_optimizer(dynopt.sgd(0.1), elementwise=1)
