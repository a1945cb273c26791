"""Per leaf of a pytree, dynopt's update compiles to no more than optax's.

Counts, not timings: the optimised-HLO instructions of ``opt.update`` alone at
two leaf counts (float32 leaves of varied shapes), their slope for dynopt
against the slope for the optax transform that ``benchmarks.optimizer_speed``
pairs with it. And the scalars that :class:`~dynopt._src.base.StepScalars`
computes once per step are the values given, bit for bit, with their
derivatives.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks._hlo import per_leaf
from benchmarks.optimizer_speed import OPTIMIZERS
from dynopt._src.base import StepScalars

LEAVES = (20, 60)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_has_no_more_hlo_per_leaf_than_optax(name):
    ours, theirs = (per_leaf(make, LEAVES) for make in OPTIMIZERS[name])
    assert ours["hlo_per_leaf"] <= theirs["hlo_per_leaf"], (
        f"{name}: dynopt {ours['hlo_per_leaf']} HLO instructions per leaf "
        f"(counts {ours['hlo']} at {LEAVES} leaves), optax "
        f"{theirs['hlo_per_leaf']} (counts {theirs['hlo']})"
    )


SPECIAL = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1.2e-38, 3.4e38]


@pytest.mark.parametrize(
    "dtype",
    # held through the reduction; the last two are cast only
    [jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64, jnp.float8_e4m3fn],
)
def test_step_scalars_are_the_values_bit_for_bit(dtype):
    values = jnp.asarray(SPECIAL, jnp.float32)

    def held(v):
        s = StepScalars(**{f"x{i}": v[i] for i in range(len(SPECIAL))})
        first = s.at(dtype)
        assert s.at(jnp.zeros(2, dtype)) is first  # one cast per dtype
        return jnp.stack([first[f"x{i}"] for i in range(len(SPECIAL))])

    got = np.asarray(jax.jit(held)(values))
    want = np.asarray(values.astype(dtype))
    assert got.dtype == want.dtype
    assert got.tobytes() == want.tobytes(), (got, want)


def test_a_subnormal_scalar_scales_a_leaf_as_it_did():
    # XLA:CPU reads subnormals as zero in arithmetic, the maximum included;
    # the product a leaf's kernel computes is the same either way
    tiny, big = jnp.float32(1e-45), jnp.full(3, 1e30, jnp.float32)

    def scaled(t, x, hold):
        return (StepScalars(t=t).at(x)["t"] if hold else t) * x

    run = jax.jit(scaled, static_argnums=2)
    assert np.asarray(run(tiny, big, True)).tobytes() == (
        np.asarray(run(tiny, big, False)).tobytes()
    )


def test_step_scalars_pass_derivatives_and_batches_through():
    def f(x):
        s = StepScalars(a=-x[0], b=1 - x[1]).at(jnp.float32)
        return jnp.sum(s["a"] * x**2) + s["b"] ** 3

    def reference(x):
        return jnp.sum(-x[0] * x**2) + (1 - x[1]) ** 3

    x = jnp.array([0.5, 0.25, 2.0])
    np.testing.assert_array_equal(jax.grad(f)(x), jax.grad(reference)(x))
    np.testing.assert_array_equal(jax.jacfwd(f)(x), jax.jacfwd(reference)(x))
    xs = jnp.stack([x, 2 * x])
    np.testing.assert_array_equal(jax.vmap(f)(xs), jax.vmap(reference)(xs))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_step_scalars_known_while_tracing_stay_constants(dtype):
    # numbers known at trace time are compiled in (no reduction makes them
    # buffers); traced values beside them still come out of the reduction
    def f(x):
        s = StepScalars(
            **{f"c{i}": np.float32(v) for i, v in enumerate(SPECIAL)}, t=-x[0]
        ).at(dtype)
        consts = jnp.stack([s[f"c{i}"] for i in range(len(SPECIAL))])
        return consts, s["t"] * x.astype(dtype)

    x = jnp.array([0.5, 0.25, 2.0])
    consts, scaled = jax.jit(f)(x)
    want = np.asarray(jnp.asarray(SPECIAL, jnp.float32).astype(dtype))
    assert np.asarray(consts).tobytes() == want.tobytes()
    np.testing.assert_array_equal(scaled, (-x[0]).astype(dtype) * x.astype(dtype))
    text = jax.jit(f).lower(x).compile().as_text()
    # one reduction, of the traced value alone (a scalar, not a tuple of ten)
    reductions = [line for line in text.splitlines() if " reduce(" in line]
    assert len(reductions) == 1, reductions
    assert re.search(r"= [a-z0-9]+\[\] reduce\(", reductions[0]), reductions
