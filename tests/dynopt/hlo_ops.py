"""HLO operation counts of one optimiser update, dynopt against optax.

Run ``python -m tests.dynopt.hlo_ops`` from the repository root. For a tree of
100 float32 leaves it prints, for ``jax.jit(opt.update)`` compiled on this
backend, the number of HLO instructions other than parameters, constants and
tuples (all computations, fusion bodies included) and the number in the entry
computation (kernels and scalar ops). optax with numbers builds their values
into the program; dynopt keeps hyperparameters as array leaves of the state,
as optax does under ``optax.inject_hyperparams``, which is printed too.
"""

import re

import jax
import jax.numpy as jnp
import optax

import dynopt

_INSTRUCTION = re.compile(r"\s*(ROOT )?%[\w.\-]+ = \S+ (\w[\w\-]*)\(")
_NOT_OPS = ("parameter", "constant", "tuple", "get-tuple-element")


def hlo_ops(tx, leaves: int = 100) -> tuple[int, int]:
    """(instructions in all computations, instructions in the entry one)."""
    params = {f"p{i}": jnp.ones((8,), jnp.float32) for i in range(leaves)}
    state = tx.init(params)
    text = jax.jit(tx.update).lower(params, state, params).compile().as_text()
    total = entry = 0
    in_entry = False
    for line in text.splitlines():
        in_entry = in_entry or line.startswith("ENTRY")
        match = _INSTRUCTION.match(line)
        if match and match.group(2) not in _NOT_OPS:
            total += 1
            entry += in_entry
    return total, entry


def pairs():
    inject = optax.inject_hyperparams
    return {
        "sgd": (dynopt.sgd(0.1), optax.sgd(0.1), inject(optax.sgd)(0.1)),
        "momentum": (
            dynopt.momentum(0.1, 0.9),
            optax.sgd(0.1, 0.9),
            inject(optax.sgd)(0.1, 0.9),
        ),
        "nesterov": (
            dynopt.nesterov(0.1, 0.9),
            optax.sgd(0.1, 0.9, nesterov=True),
            inject(optax.sgd)(0.1, 0.9, nesterov=True),
        ),
        "adam": (dynopt.adam(1e-3), optax.adam(1e-3), inject(optax.adam)(1e-3)),
    }


if __name__ == "__main__":
    print("(all ops, entry ops) of jit(update) on 100 float32 leaves")
    print(f"{'method':10s} {'dynopt':>12s} {'optax':>12s} {'optax+inject':>14s}")
    for name, (ours, theirs, injected) in pairs().items():
        a, b, c = hlo_ops(ours), hlo_ops(theirs), hlo_ops(injected)
        print(f"{name:10s} {str(a):>12s} {str(b):>12s} {str(c):>14s}")
