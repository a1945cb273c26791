r"""Mixed precision: low-precision parameters with a float32 master copy.

Two levels, stated in bytes per parameter of one jitted, donated step
(docs/benchmarks/optimizer_speed.md, second table):

* bf16 parameters and gradients, float32 optimiser state: pass
  ``accumulator_dtype=jnp.float32`` to :func:`dynopt.momentum`,
  :func:`dynopt.nesterov` or :func:`dynopt.adam`. The iterate is rounded to
  bf16 every step, so steps smaller than half a bf16 ulp of a weight are lost.
* :func:`master_weights` additionally keeps a float32 copy of the parameters in
  the state and runs the wrapped optimiser on it; the bf16 parameters are the
  rounded master copy, so small steps accumulate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .base import Optimizer

tree_map = jax.tree_util.tree_map


class MasterWeightsState(NamedTuple):
    """State of :func:`master_weights`.

    Attributes:
      master: the parameters in the master dtype (float32 by default).
      inner: the state of the wrapped optimiser, built on ``master``.
    """

    master: Any
    inner: Any


def master_weights(
    tx: optax.GradientTransformation, dtype: Any = jnp.float32
) -> Optimizer:
    r"""Runs ``tx`` on a high-precision master copy of low-precision parameters.

    .. math:: M_{k+1} = M_k + \mathrm{tx}(g_k), \qquad x_{k+1} = \mathrm{round}(M_{k+1})

    The gradient is cast to ``dtype`` and the wrapped optimiser (and hence its
    state) sees only the master copy :math:`M`. The returned update is
    :math:`M_{k+1} - x_k` in ``dtype``, so ``optax.apply_updates(x, u)`` computes
    :math:`x_k + (M_{k+1} - x_k)` in ``dtype`` and rounds it to the parameters'
    dtype, which is the rounded master copy (exactly so when
    :math:`M_{k+1} - x_k` is exact in ``dtype``, e.g. by Sterbenz's lemma when
    the step is smaller than the weight).

    Args:
      tx: the optimiser to wrap (any optax / dynopt transform).
      dtype: the master dtype (default ``jnp.float32``).

    Returns:
      An :class:`~dynopt.Optimizer` (an ``optax.GradientTransformationExtraArgs``)
      with :class:`MasterWeightsState`; ``update`` needs ``params``. It carries
      the :class:`~dynopt.Dynamics` of ``tx`` (None for a plain optax ``tx``):
      the master copy follows the same flow and clock.

    Raises:
      TypeError: ``tx`` is not a transform or ``dtype`` is not a floating dtype.
      ValueError: ``update`` was called without ``params``.

    Example:
      >>> import dynopt, jax.numpy as jnp, optax
      >>> tx = dynopt.master_weights(dynopt.sgd(1e-3))
      >>> x = jnp.ones(2, jnp.bfloat16)
      >>> s = tx.init(x)
      >>> for _ in range(10):
      ...     u, s = tx.update(jnp.ones(2, jnp.bfloat16), s, x)
      ...     x = optax.apply_updates(x, u)
      >>> x.dtype, round(float(s.master[0]), 5), float(x[0])
      (dtype(bfloat16), 0.99, 0.98828125)

      Plain bf16 SGD would stay at 1.0: a step of 1e-3 is below half an ulp.

    References:
      P. Micikevicius et al., *Mixed precision training*, ICLR 2018,
      arXiv:1710.03740.
    """
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise TypeError(
            f"master_weights: `tx` must be an optax GradientTransformation, got {tx!r}"
        )
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(
            f"master_weights: `dtype` must be a floating dtype, got {dtype!r}"
        ) from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"master_weights: `dtype` must be a floating dtype, got {dtype!r}"
        )
    dynamics = getattr(tx, "dynamics", None)
    position = getattr(tx, "ode_position", None)
    tx = optax.with_extra_args_support(tx)

    def init_fn(params):
        master = tree_map(lambda p: jnp.asarray(p).astype(dtype), params)
        return MasterWeightsState(master=master, inner=tx.init(master))

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("master_weights: `update` needs `params`, got None")
        grads = tree_map(lambda g: g.astype(dtype), updates)
        u, inner = tx.update(grads, state.inner, state.master, **extra_args)
        master = optax.apply_updates(state.master, u)
        new_updates = tree_map(lambda m, p: m - p.astype(dtype), master, params)
        return new_updates, MasterWeightsState(master=master, inner=inner)

    opt = Optimizer(init_fn, update_fn, dynamics)
    if position is not None:  # e.g. NAG-C's x_k, found inside the nested state
        opt.__dict__["ode_position"] = position
    return opt
