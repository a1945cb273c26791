r"""Comparing a discrete run with its flow: gaps, empirical orders, modified flows.

The global error of a one-step scheme of order :math:`p` at a fixed ODE time is
:math:`E(h) \approx C h^p`; :func:`empirical_order` fits :math:`p` as the
least-squares slope of :math:`\log E` against :math:`\log h`, and
:func:`order_study` measures :math:`E(h)` for an optimiser against its own flow
(or any flow) through :func:`dynopt.discrete_trajectory` and
:func:`dynopt.continuous_trajectory`.

References:
  E. Hairer, S. Norsett, G. Wanner, *Solving Ordinary Differential Equations
  I*, Springer 1993, sec. II.3.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .base import concrete_value
from .flows import ModifiedGradientFlow
from .progress import progress_bar
from .trajectory import (
    Trajectory,
    _check_same_tree,
    continuous_trajectory,
    discrete_trajectory,
    num_steps_for,
)


class Gap(NamedTuple):
    """Distance between two trajectories sampled at the same times.

    Attributes:
      max_params: :math:`\\max_t \\|x_a(t) - x_b(t)\\|` over all kept times.
      final_params: :math:`\\|x_a(T) - x_b(T)\\|` at the last time.
      max_loss: :math:`\\max_t |f_a(t) - f_b(t)|`.
      final_loss: :math:`|f_a(T) - f_b(T)|`.
      params: the per-time parameter distance, shape ``[n]``.
    """

    max_params: jax.Array
    final_params: jax.Array
    max_loss: jax.Array
    final_loss: jax.Array
    params: jax.Array


def _distance(a, b, norm):
    diffs = [
        jnp.reshape(x - y, (x.shape[0], -1))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    ]
    d = jnp.concatenate(diffs, axis=1)
    if norm == "inf":
        return jnp.max(jnp.abs(d), axis=1)
    return jnp.sqrt(jnp.sum(d**2, axis=1))


def trajectory_gap(
    a: Trajectory, b: Trajectory, *, norm: str = "inf", rtol: float = 1e-6
) -> Gap:
    r"""The gap between two trajectories in parameters and loss, max and final.

    Args:
      a, b: :class:`~dynopt.Trajectory` s at the same times (e.g. a discrete run
        and :func:`~dynopt.continuous_trajectory` at its ``times``).
      norm: ``"inf"`` (max absolute entry over all leaves) or ``"l2"``.
      rtol: relative tolerance when checking that the times agree.

    Returns:
      A :class:`Gap`.

    Raises:
      ValueError: different tree structures, numbers of points or times, or an
        unknown ``norm``.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> loss = lambda x: 0.5 * jnp.sum(x**2)
      >>> d = dynopt.discrete_trajectory(dynopt.sgd(0.5), loss, jnp.ones(1), 2,
      ...                                progress=False)
      >>> c = dynopt.continuous_trajectory(dynopt.sgd(0.5), loss, jnp.ones(1),
      ...                                  d.times, rtol=1e-6, atol=1e-6)
      >>> round(float(dynopt.trajectory_gap(d, c).final_params), 4)  # e^-1 - 1/4
      0.1179
    """
    fn = "trajectory_gap"
    if norm not in ("inf", "l2"):
        raise ValueError(f"{fn}: `norm` must be one of ('inf', 'l2'), got {norm!r}")
    _check_same_tree(fn, a.params, b.params)
    ta, tb = np.asarray(a.times, np.float64), np.asarray(b.times, np.float64)
    if ta.shape != tb.shape:
        raise ValueError(
            f"{fn}: `a` and `b` must have the same number of points, got "
            f"{ta.shape[0]} and {tb.shape[0]}"
        )
    scale = max(1.0, float(np.max(np.abs(ta))))
    if not np.allclose(ta, tb, rtol=0.0, atol=rtol * scale):
        i = int(np.argmax(np.abs(ta - tb)))
        raise ValueError(
            f"{fn}: `a` and `b` must be sampled at the same times, got "
            f"a.times[{i}] = {ta[i]!r} and b.times[{i}] = {tb[i]!r}"
        )
    for x, y in zip(
        jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)
    ):
        if x.shape != y.shape:
            raise ValueError(
                f"{fn}: `a.params` and `b.params` leaves must have the same shapes, "
                f"got {x.shape} and {y.shape}"
            )
    d = _distance(a.params, b.params, norm)
    dl = jnp.abs(jnp.asarray(a.loss) - jnp.asarray(b.loss))
    return Gap(
        max_params=jnp.max(d),
        final_params=d[-1],
        max_loss=jnp.max(dl),
        final_loss=dl[-1],
        params=d,
    )


def empirical_order(step_sizes: Sequence[float], errors: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log E` against :math:`\log h`.

    Args:
      step_sizes: at least two distinct positive step sizes :math:`h`.
      errors: the matching positive errors :math:`E(h)`.

    Returns:
      The fitted order :math:`p` in :math:`E \approx C h^p`.

    Raises:
      ValueError: fewer than two points, different lengths, non-positive or
        non-finite values.

    Example:
      >>> round(empirical_order([0.1, 0.05, 0.025], [1e-2, 2.5e-3, 6.25e-4]), 6)
      2.0
    """
    fn = "empirical_order"
    h = np.asarray(step_sizes, np.float64)
    e = np.asarray(errors, np.float64)
    if h.ndim != 1 or h.shape != e.shape or h.size < 2:
        raise ValueError(
            f"{fn}: `step_sizes` and `errors` must be 1-D of the same length >= 2, "
            f"got shapes {h.shape} and {e.shape}"
        )
    for name, v in (("step_sizes", h), ("errors", e)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"{fn}: `{name}` must be finite and > 0, got {v.tolist()}")
    if np.unique(h).size < 2:
        raise ValueError(f"{fn}: `step_sizes` must hold two distinct values, got {h}")
    slope, _ = np.polyfit(np.log(h), np.log(e), 1)
    return float(slope)


def modified_equation(optimizer) -> ModifiedGradientFlow:
    r"""The modified flow that gradient descent follows to second order.

    For :func:`dynopt.sgd` with step :math:`\eta` this is
    :math:`x' = -\nabla(f + \frac{\eta}{4}|\nabla f|^2)`
    (:class:`dynopt.ModifiedGradientFlow`), which
    :func:`dynopt.continuous_trajectory` integrates like any flow.

    Raises:
      ValueError: for an optimiser other than :func:`dynopt.sgd` without
        ``maximize`` / ``weight_decay``.
    """
    fn = "modified_equation"
    dynamics = getattr(optimizer, "dynamics", None)
    name = getattr(dynamics, "name", None)
    options = dict(getattr(dynamics, "options", {}) or {})
    hyperparams = dict(getattr(dynamics, "hyperparams", {}) or {})
    wd = hyperparams.get("weight_decay")
    no_decay = wd is None or (not callable(wd) and concrete_value(wd) == 0)
    if name != "sgd" or options.get("maximize", False) or not no_decay:
        raise ValueError(
            f"{fn}: `optimizer` must be dynopt.sgd without maximize/weight_decay, "
            f"got {name!r} with options {options} and weight_decay={wd!r}"
        )
    return ModifiedGradientFlow(dynamics.initial_hyperparams()["learning_rate"])


class OrderStudy(NamedTuple):
    """Errors of a method against a flow over several step sizes.

    Attributes:
      step_sizes: the clock steps ``h`` (ODE time per step).
      errors: the gap for each step size (max over time, or at the end).
      order: the least-squares log-log slope.
    """

    step_sizes: np.ndarray
    errors: np.ndarray
    order: float


def order_study(
    make_optimizer: Callable[[float], Any],
    loss_fn: Callable,
    params,
    step_sizes: Sequence[float],
    horizon: float,
    *,
    flow: Callable[[Any], Any] | None = None,
    reduce: str = "max",
    norm: str = "inf",
    progress: bool = True,
    **solve_kwargs,
) -> OrderStudy:
    r"""Measures the global error of an optimiser against a flow and its order.

    For each value in ``step_sizes`` the optimiser ``make_optimizer(value)`` runs
    to ODE time ``horizon`` and its iterates are
    compared with ``flow(optimizer)`` (default: the optimiser's own flow)
    integrated at the same times.

    Args:
      make_optimizer: ``value -> optimizer``; ``value`` is whatever
        parameterises the family (a learning rate, a step ``gamma``, ...).
      loss_fn: ``params -> scalar``.
      params: initial point.
      step_sizes: the values passed to ``make_optimizer``.
      horizon: final ODE time.
      flow: optional ``optimizer -> flow`` (e.g. :func:`modified_equation`).
      reduce: ``"max"`` (max over kept times) or ``"final"`` (at ``horizon``).
      norm: as in :func:`trajectory_gap`.
      progress: report each step size done (default True).
      **solve_kwargs: passed to :func:`dynopt.continuous_trajectory`.

    Returns:
      An :class:`OrderStudy`; ``step_sizes`` holds the clock steps ``h``.

    A clock step that does not divide ``horizon`` runs the whole steps that fit
    (to the largest ``k h <= horizon``) and warns, naming the step size.

    Raises:
      ValueError: unknown ``reduce``, and the errors of the functions called.
    """
    fn = "order_study"
    if reduce not in ("max", "final"):
        raise ValueError(
            f"{fn}: `reduce` must be one of ('max', 'final'), got {reduce!r}"
        )
    plans = []
    for i, value in enumerate(step_sizes):
        opt = make_optimizer(value)
        h = float(opt.dynamics.step_size())
        n = num_steps_for(fn, horizon, h)
        if abs(n * h - horizon) > 1e-6 * max(abs(horizon), h):
            warnings.warn(
                f"{fn}: the clock step h={h!r} of step_sizes[{i}]={value!r} does not "
                f"divide `horizon`={horizon!r} (horizon / h = {horizon / h:.6g}); "
                f"this run stops at t={n * h:.6g}, {n} steps",
                UserWarning,
                stacklevel=2,
            )
        plans.append((opt, h, n))
    hs, errors = [], []
    bar = progress_bar(len(plans), progress, fn, unit="step sizes")
    for opt, h, n in plans:
        d = discrete_trajectory(opt, loss_fn, params, n, progress=False)
        target = opt if flow is None else flow(opt)
        c = continuous_trajectory(
            target, loss_fn, params, d.times, progress=False, **solve_kwargs
        )
        gap = trajectory_gap(d, c, norm=norm)
        hs.append(h)
        errors.append(float(gap.max_params if reduce == "max" else gap.final_params))
        bar.update(1)
    bar.close()
    hs, errors = np.asarray(hs), np.asarray(errors)
    return OrderStudy(hs, errors, empirical_order(hs, errors))
