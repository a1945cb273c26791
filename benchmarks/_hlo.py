"""HLO instruction counts of an optimiser's update, per leaf of a pytree.

The update alone, ``jax.jit(lambda g, s, p: opt.update(g, s, p))``, on a tree of
float32 leaves of varied shapes, lowered (StableHLO ops, before XLA's passes)
and compiled (optimised HLO instructions, fused computations included). The
count per leaf is the slope between two leaf counts: what each further leaf
adds to the program XLA compiles, whatever the fixed cost of the step.
Counts are deterministic for a given jax / XLA version, unlike timings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import _common

SHAPES = ((8,), (4, 3), (5,), (2, 3, 2), (7,), (16,))


def hlo_instructions(compiled) -> int:
    """Instructions of a compiled program's optimised HLO, fused ones included."""
    return sum(
        1
        for line in compiled.as_text().splitlines()
        if " = " in line and not line.lstrip().startswith(("HloModule", "//"))
    )


def stablehlo_ops(lowered) -> int:
    """Operations of a lowered program's StableHLO (before XLA's passes)."""
    return sum(1 for line in lowered.as_text().splitlines() if " = stablehlo." in line)


def varied_tree(leaves: int) -> dict:
    """``leaves`` float32 leaves, their shapes cycling through :data:`SHAPES`."""
    return {
        f"p{i:05d}": jnp.full(SHAPES[i % len(SHAPES)], 0.1 * (i + 1), jnp.float32)
        for i in range(leaves)
    }


def update_counts(make, leaves: int) -> dict:
    """``{"hlo": ..., "stablehlo": ...}`` of one update on ``leaves`` leaves."""
    tx = make()
    params = varied_tree(leaves)
    state = tx.init(params)
    lowered = jax.jit(lambda g, s, p: tx.update(g, s, p)).lower(params, state, params)
    return {
        "hlo": hlo_instructions(lowered.compile()),
        "stablehlo": stablehlo_ops(lowered),
    }


def per_leaf(make, leaves: tuple[int, int]) -> dict:
    """Counts at two leaf counts and their slopes (instructions per leaf)."""
    small, large = (update_counts(make, n) for n in leaves)
    span = leaves[1] - leaves[0]
    out = {"leaves": list(leaves)}
    for kind in ("hlo", "stablehlo"):
        out[kind] = [small[kind], large[kind]]
        out[f"{kind}_per_leaf"] = (large[kind] - small[kind]) / span
    return out


def per_leaf_table(pairs: dict, leaves: tuple[int, int]) -> dict:
    """``{name: {"dynopt": per_leaf(...), "optax": per_leaf(...)}}`` for
    ``pairs`` of factories ``name -> (dynopt factory, optax factory)``."""
    return {
        name: {
            "dynopt": per_leaf(ours, leaves),
            "optax": per_leaf(theirs, leaves),
        }
        for name, (ours, theirs) in pairs.items()
    }


def print_per_leaf(table: dict) -> None:
    """The table as Markdown: counts at both leaf counts and per leaf."""
    rows = []
    for name, v in table.items():
        a, b = v["dynopt"], v["optax"]
        rows.append(
            [name, a["hlo_per_leaf"], b["hlo_per_leaf"]]
            + [a["stablehlo_per_leaf"], b["stablehlo_per_leaf"]]
            + ["/".join(map(str, a["hlo"])), "/".join(map(str, b["hlo"]))]
        )
    n = next(iter(table.values()))["dynopt"]["leaves"]
    _common.print_table(
        ["optimizer", "dynopt HLO / leaf", "optax HLO / leaf"]
        + ["dynopt StableHLO / leaf", "optax StableHLO / leaf"]
        + [f"dynopt HLO at {n[0]}/{n[1]}", f"optax HLO at {n[0]}/{n[1]}"],
        rows,
        title=f"HLO instructions per leaf of the update ({n[0]} and {n[1]} leaves)",
    )
