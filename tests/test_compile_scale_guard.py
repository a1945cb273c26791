"""Program size grows at most linearly with the number of leaves.

Counts, not timings: the instructions of the optimised HLO at two leaf counts
(their ratio may not exceed the ratio of the leaf counts by more than
``MARGIN``), the distinct kernels of the flat train step (leaves of one shape
share one kernel, whatever their number), and XLA's cost analysis of
``genvi.train``'s compiled chunk against a plain ``lax.scan`` of the same step.
"""

import re

import jax
import jax.numpy as jnp
import optax
import pytest

import dynopt
from benchmarks.compile_scale import (
    OPTIMIZERS,
    cost,
    hlo_instructions,
    make_tree,
    plain_scan,
    state_step,
    train_step,
)
from genvi._src.chunk import _compiled_chunk

LEAVES = (4, 16)
MARGIN = 1.05  # a few instructions of fixed cost may move with the layout
CHUNK = 4


def _ratio_ok(counts):
    return counts[1] / counts[0] <= MARGIN * LEAVES[1] / LEAVES[0]


def _chunk(n, size=4, tx=None):
    tx = tx or optax.adam(1e-3)
    tree = make_tree(n, size)
    state = (tree, tx.init(tree), jnp.asarray(0, jnp.int32))
    step = state_step(tx)
    loop = _compiled_chunk.__wrapped__(step, "skip", False, CHUNK).loop
    num = jnp.asarray(CHUNK, jnp.int32)
    return (
        loop.lower(state, None, num).compile(),
        plain_scan(step, CHUNK).lower(state, None, num).compile(),
    )


def test_train_chunk_grows_linearly_with_the_state_leaves():
    counts = [hlo_instructions(_chunk(n)[0]) for n in LEAVES]
    assert _ratio_ok(counts), counts


def test_train_chunk_costs_what_the_plain_scan_costs():
    # one step's flops and bytes: the NaN checks read the state once (12 of
    # the step's ~80 bytes per parameter with Adam), nothing more
    chunk, scan = _chunk(4, size=4096)
    ours, plain = cost(chunk), cost(scan)
    assert ours["flops"] <= 1.25 * plain["flops"], (ours, plain)
    assert ours["bytes"] <= 1.25 * plain["bytes"], (ours, plain)


def _kernels(compiled) -> int:
    """Distinct fused computations, names and metadata stripped."""
    bodies = set()
    for block in compiled.as_text().split("\n\n"):
        head, _, body = block.partition("\n")
        if "fused_computation" not in head and "fusion" not in head:
            continue
        body = re.sub(r"metadata=\{[^}]*\}", "", body)
        bodies.add(re.sub(r"%[\w.\-]+", "%", body))
    return len(bodies)


def _flat_step(n):
    tx = dynopt.momentum(0.01, 0.9)
    flat = dynopt.flatten(make_tree(n, 8))
    step = jax.jit(train_step(tx, True))
    return step.lower(flat, jnp.float32(1.0), tx.init(flat)).compile()


def test_flat_train_step_shares_kernels_across_leaves():
    compiled = [_flat_step(n) for n in LEAVES]
    counts = [hlo_instructions(c) for c in compiled]
    assert _ratio_ok(counts), counts
    kernels = [_kernels(c) for c in compiled]
    # leaves of one shape read at runtime offsets share their kernels (only
    # the concatenation of the gradient sees the leaf count; at static offsets
    # there would be a kernel per leaf)
    assert kernels[1] <= kernels[0] + 2, kernels


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_dynopt_update_grows_linearly_with_the_leaves(name):
    counts = []
    for n in LEAVES:
        tx = OPTIMIZERS[name][0]()
        p = make_tree(n, 8)

        def step(p, g, s, tx=tx):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        counts.append(hlo_instructions(jax.jit(step).lower(p, p, tx.init(p)).compile()))
    assert _ratio_ok(counts), counts
