"""Mixed precision: bf16 parameters, float32 state and master weights."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynopt
from tests.dynopt.test_cost import SLOPE_SLACK, bytes_per_param
from tests.tolerances import F32_ITERATES

BF16 = jnp.bfloat16


def _grad(x):
    return jnp.sin(3 * x.astype(jnp.float32)).astype(x.dtype) + x


@pytest.mark.parametrize(
    "make",
    [
        lambda: dynopt.momentum(0.01, 0.9, accumulator_dtype=jnp.float32),
        lambda: dynopt.nesterov(0.01, 0.9, accumulator_dtype=jnp.float32),
        lambda: dynopt.adam(0.01, accumulator_dtype=jnp.float32),
    ],
    ids=["momentum", "nesterov", "adam"],
)
@pytest.mark.parametrize("flat", [False, True])
def test_bf16_params_keep_dtypes_with_float32_state(make, flat):
    tx = make()
    x = {"w": jnp.linspace(-1, 1, 6, dtype=BF16).reshape(2, 3), "b": jnp.ones(3, BF16)}
    if flat:
        x = dynopt.flatten(x)
    s = tx.init(x)
    struct = jax.tree_util.tree_structure(s)

    @jax.jit
    def step(x, s):
        u, s = tx.update(jax.tree_util.tree_map(_grad, x), s, x)
        return optax.apply_updates(x, u), s

    for _ in range(3):
        x, s = step(x, s)
    assert all(a.dtype == BF16 for a in jax.tree_util.tree_leaves(x))
    big = [a for a in jax.tree_util.tree_leaves(s) if a.ndim > 0]
    assert big and all(a.dtype == jnp.float32 for a in big)
    assert jax.tree_util.tree_structure(s) == struct


def test_master_weights_equal_a_float32_run_and_round_to_the_params():
    inner = dynopt.momentum(1e-3, 0.9)
    tx = dynopt.master_weights(inner)
    x = jnp.linspace(-1, 1, 64, dtype=BF16)
    s = tx.init(x)
    ref_x, ref_s = x.astype(jnp.float32), inner.init(x.astype(jnp.float32))
    step = jax.jit(tx.update)

    @jax.jit
    def ref_step(g, s, x):
        u, s = inner.update(g, s, x)
        return optax.apply_updates(x, u), s

    for _ in range(20):
        g = _grad(x)
        u, s = step(g, s, x)
        x = optax.apply_updates(x, u)
        # the float32 optimiser fed the same (bf16) gradients
        ref_x, ref_s = ref_step(g.astype(jnp.float32), ref_s, ref_x)
        assert x.dtype == BF16 and s.master.dtype == jnp.float32
        # XLA may contract a multiply-add differently in the two programs
        np.testing.assert_allclose(s.master, ref_x, **F32_ITERATES)
        np.testing.assert_array_equal(x, s.master.astype(BF16))


def test_master_weights_keep_steps_below_bf16_resolution():
    x0 = jnp.full(4, 1.0, BF16)
    g = jnp.ones(4, BF16)
    plain, master = dynopt.sgd(1e-3), dynopt.master_weights(dynopt.sgd(1e-3))
    xp, sp = x0, plain.init(x0)
    xm, sm = x0, master.init(x0)
    for _ in range(10):
        u, sp = plain.update(g, sp, xp)
        xp = optax.apply_updates(xp, u)
        u, sm = master.update(g, sm, xm)
        xm = optax.apply_updates(xm, u)
    np.testing.assert_array_equal(xp, x0)  # each step is below half an ulp of 1
    assert float(xm[0]) < 0.995  # 10 steps of 1e-3 add up in the master copy


def test_bytes_per_parameter_of_mixed_precision_steps():
    # bf16 p, g (2 + 2 B) with a float32 buffer (read 4, write 4) and p written (2)
    acc = dynopt.momentum(0.1, 0.9, accumulator_dtype=jnp.float32)
    bf16_state = bytes_per_param(acc, dtype=BF16, flat=True)
    assert 14.0 - SLOPE_SLACK <= bf16_state <= 24.0 + SLOPE_SLACK
    # all-float32 momentum for comparison; master weights add 4 + 4 B
    f32 = bytes_per_param(dynopt.momentum(0.1, 0.9), flat=True)
    assert bf16_state < f32
    mw = bytes_per_param(dynopt.master_weights(dynopt.momentum(0.1, 0.9)), dtype=BF16)
    assert bf16_state + 8.0 - SLOPE_SLACK <= mw


def test_errors():
    with pytest.raises(TypeError, match="master_weights: `tx` must be an optax"):
        dynopt.master_weights("sgd")
    with pytest.raises(TypeError, match="master_weights: `dtype` must be a floating"):
        dynopt.master_weights(dynopt.sgd(0.1), dtype=jnp.int32)
    with pytest.raises(TypeError, match="master_weights: `dtype` must be a floating"):
        dynopt.master_weights(dynopt.sgd(0.1), dtype="nonsense")
    tx = dynopt.master_weights(dynopt.sgd(0.1))
    with pytest.raises(ValueError, match="master_weights: `update` needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
