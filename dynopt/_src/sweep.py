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

from .base import get_hyperparams


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
    called once with the first configuration as Python floats, to check that
    its state holds every swept name; then, inside one trace under
    ``jax.vmap``, with each configuration's values as arrays (bound
    hyperparameters, as ``optax.inject_hyperparams`` passes them), so the whole
    sweep is one
    trace and one compiled call. The compiled sweep is jax's own, keyed on
    ``(optimizer_factory, loss_fn, num_steps)`` and the shapes, so a repeated
    sweep of the same problem with new values does not recompile.

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

    # The factory with the first configuration, only to read its state's
    # hyperparameters (shapes only: nothing runs or compiles here).
    tx = optimizer_factory(**{k: float(v[0]) for k, v in values.items()})
    state0 = jax.eval_shape(tx.init, params)
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
    batched = {k: jnp.asarray(v, dtype=stored[k].dtype) for k, v in values.items()}
    try:
        hash((optimizer_factory, loss_fn))
        run = _run
    except TypeError:  # an unhashable callable: compile for this call only
        run = jax.jit(_run.__wrapped__, static_argnames=_STATIC)
    final, losses = run(
        params,
        batches,
        batched,
        optimizer_factory=optimizer_factory,
        loss_fn=loss_fn,
        num_steps=int(num_steps),
    )
    return SweepResult(params=final, losses=losses, hyperparams=batched)


_STATIC = ("optimizer_factory", "loss_fn", "num_steps")


# One compiled program per (factory, loss, number of steps, shapes): the
# factory runs inside the trace with each configuration's values as arrays
# (bound hyperparameters, as under optax.inject_hyperparams), so new values
# never recompile.
@functools.partial(jax.jit, static_argnames=_STATIC)
def _run(params, batches, hyperparams, *, optimizer_factory, loss_fn, num_steps):
    def one(hp):
        tx = optimizer_factory(**hp)

        def body(carry, batch):
            p, s = carry
            if batches is None:
                loss, g = jax.value_and_grad(loss_fn)(p)
            else:
                loss, g = jax.value_and_grad(loss_fn)(p, batch)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        carry = (params, tx.init(params))
        (p, _), losses = jax.lax.scan(body, carry, batches, length=num_steps)
        return p, losses

    return jax.vmap(one)(hyperparams)
