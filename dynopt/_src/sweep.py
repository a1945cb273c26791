r"""Hyperparameter sweeps in one compiled call.

dynopt optimisers keep their hyperparameters as array leaves of the state, so a
sweep is ``jax.vmap`` over those leaves: one trace, one compilation and one
batched ``lax.scan`` for every configuration at once, instead of one run (and,
with hyperparameters baked in as constants, one compilation) per
configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .base import get_hyperparams, set_hyperparams


class SweepResult(NamedTuple):
    """Result of :func:`dynopt.sweep`; every field has a leading config axis.

    Attributes:
      params: final parameters, each leaf of shape ``(num_configs, ...)``.
      losses: loss before each step, shape ``(num_configs, num_steps)``.
      hyperparams: the swept values, each of shape ``(num_configs,)``.
    """

    params: Any
    losses: jax.Array
    hyperparams: dict


def sweep(
    optimizer_factory: Callable[..., optax.GradientTransformation],
    loss_fn: Callable,
    params,
    num_steps: int,
    *,
    batches=None,
    **hyperparams,
) -> SweepResult:
    r"""Runs one optimiser for every configuration of a hyperparameter batch.

    For configuration :math:`i`, the optimiser is
    ``optimizer_factory(**{k: v[i] for k, v in hyperparams.items()})`` and runs
    ``num_steps`` gradient steps of ``loss_fn`` from ``params``. The factory is
    called once with the first configuration as Python floats, which puts every
    swept hyperparameter into the state; :func:`dynopt.set_hyperparams` then
    replaces them by the batch under ``jax.vmap``, so the whole sweep is one
    trace and one compiled call. The compiled sweep is cached on
    ``(optimizer_factory, loss_fn, num_steps, first configuration)``, so a
    repeated sweep of the same problem with new values does not recompile.

    Args:
      optimizer_factory: e.g. ``dynopt.momentum`` or
        ``lambda learning_rate, beta: dynopt.momentum(learning_rate, beta)``;
        its state must hold the swept names as hyperparameters.
      loss_fn: ``loss_fn(params)`` or, with ``batches``, ``loss_fn(params,
        batch)``; returns a scalar.
      params: the initial parameters (a pytree, shared by all configurations).
      num_steps: number of steps, >= 1.
      batches: optional pytree with a leading axis of length ``num_steps``;
        step ``k`` sees ``batches[k]`` (the same data for every configuration).
      **hyperparams: 1-D arrays of equal length ``num_configs >= 1``.

    Returns:
      A :class:`SweepResult`.

    Raises:
      ValueError: no hyperparameter given, arrays not 1-D or of unequal
        length, ``num_steps < 1``, or a name the optimiser's state lacks.
      TypeError: ``optimizer_factory`` or ``loss_fn`` is not callable.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> res = dynopt.sweep(dynopt.sgd, lambda x: 0.5 * jnp.sum(x**2),
      ...                    jnp.ones(2), 10, learning_rate=jnp.array([0.1, 0.5]))
      >>> res.params.shape, res.losses.shape
      ((2, 2), (2, 10))
    """
    fn = "sweep"
    if not callable(optimizer_factory):
        raise TypeError(
            f"{fn}: `optimizer_factory` must be callable, got {optimizer_factory!r}"
        )
    if not callable(loss_fn):
        raise TypeError(f"{fn}: `loss_fn` must be callable, got {loss_fn!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer):
        raise TypeError(f"{fn}: `num_steps` must be an int, got {num_steps!r}")
    if num_steps < 1:
        raise ValueError(f"{fn}: `num_steps` must be >= 1, got {num_steps!r}")
    if not hyperparams:
        raise ValueError(
            f"{fn}: give at least one hyperparameter array, e.g. "
            f"learning_rate=jnp.array([...]), got {hyperparams!r}"
        )
    values = {k: np.asarray(v) for k, v in hyperparams.items()}
    for k, v in values.items():
        if v.ndim != 1 or v.shape[0] < 1:
            raise ValueError(
                f"{fn}: `{k}` must be a non-empty 1-D array, got shape {v.shape}"
            )
    lengths = {k: v.shape[0] for k, v in values.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"{fn}: hyperparameter arrays must have equal lengths, got {lengths}"
        )

    first = tuple(sorted((k, float(v[0])) for k, v in values.items()))
    tx, run = _compiled_sweep(optimizer_factory, loss_fn, num_steps, first)
    state0 = tx.init(params)
    try:
        stored = get_hyperparams(state0)
    except ValueError:  # e.g. a plain optax transform: nothing to sweep over
        stored = {}
    missing = sorted(set(values) - set(stored))
    if missing:
        raise ValueError(
            f"{fn}: the optimiser's state has no hyperparameter {missing}; it holds "
            f"{sorted(stored)}"
        )
    batched = {
        k: jnp.asarray(v, dtype=jnp.asarray(stored[k]).dtype) for k, v in values.items()
    }
    final, losses = run(params, state0, batches, batched)
    return SweepResult(params=final, losses=losses, hyperparams=batched)


@functools.lru_cache(maxsize=16)
def _compiled_sweep(optimizer_factory, loss_fn, num_steps, first):
    """The optimiser and the jitted, vmapped run, cached so repeated sweeps of
    the same problem reuse one compilation."""
    tx = optimizer_factory(**dict(first))

    def run(params, state0, batches, hp):
        state = set_hyperparams(state0, **hp)

        def body(carry, batch):
            p, s = carry
            if batches is None:
                loss, g = jax.value_and_grad(loss_fn)(p)
            else:
                loss, g = jax.value_and_grad(loss_fn)(p, batch)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (p, _), losses = jax.lax.scan(body, (params, state), batches, length=num_steps)
        return p, losses

    return tx, jax.jit(jax.vmap(run, in_axes=(None, None, None, 0)))
