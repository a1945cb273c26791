r"""The map between momentum hyperparameters and the heavy-ball ODE.

Leapfrog on :math:`x' = v,\ v' = -\lambda v - \nabla f(x)` with step
:math:`\gamma`, velocity on half steps and the friction treated by the trapezoid
rule, reads, with :math:`V = \gamma v`,

.. math::
    V_{k+1/2} = \beta V_{k-1/2} - \alpha \nabla f(x_k), \qquad
    x_{k+1} = x_k + V_{k+1/2},

    \beta = \frac{1 - \lambda\gamma/2}{1 + \lambda\gamma/2}, \qquad
    \alpha = \frac{\gamma^2}{1 + \lambda\gamma/2}.

This is optax's / PyTorch's momentum ``m <- g + beta m``, ``x <- x - lr m`` with
``alpha = lr`` (``V = -lr m``). Inverting: ``gamma = sqrt(2 lr / (1 + beta))`` and
``lambda = 2 (1 - beta) / ((1 + beta) gamma)``. With PyTorch's ``dampening`` d
the gradient enters as ``(1 - d) g``, so ``alpha = lr (1 - d)``.

References:
  J. Su, *Optimisation algorithms from a dynamics viewpoint (1): from SGD to
  momentum*, kexue.fm 2018.
  B. Polyak, *Some methods of speeding up the convergence of iteration methods*,
  USSR Comp. Math. 1964.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from .base import (
    _is_concrete_number,
    check_interval,
    check_learning_rate,
    check_scalar_shape,
    concrete_value,
)


def _check_lr_beta(fn, learning_rate, beta):
    check_learning_rate(fn, learning_rate)
    check_interval(fn, "beta", beta, 0.0, 1.0)


def momentum_to_ode(learning_rate, beta, dampening=0.0) -> tuple:
    r"""``(learning_rate, beta) -> (gamma, friction)`` of the heavy-ball ODE.

    .. math:: \gamma = \sqrt{2\,\mathrm{lr}(1-d)/(1+\beta)},\quad
              \lambda = 2(1-\beta)/((1+\beta)\gamma)

    Args:
      learning_rate: ``lr`` (> 0), a scalar or array.
      beta: momentum coefficient in ``[0, 1)``.
      dampening: PyTorch's dampening ``d`` in ``[0, 1)``.

    Returns:
      ``(gamma, friction)``: the ODE time per step and the friction ``lambda``.

    Example:
      >>> g, lam = momentum_to_ode(0.1, 0.9)
      >>> round(float(g), 6), round(float(lam), 6)
      (0.324443, 0.324443)
    """
    _check_lr_beta("momentum_to_ode", learning_rate, beta)
    check_interval("momentum_to_ode", "dampening", dampening, 0.0, 1.0)
    alpha = jnp.asarray(learning_rate) * (1 - jnp.asarray(dampening))
    gamma = jnp.sqrt(2 * alpha / (1 + jnp.asarray(beta)))
    friction = 2 * (1 - jnp.asarray(beta)) / ((1 + jnp.asarray(beta)) * gamma)
    return gamma, friction


def ode_to_momentum(gamma, friction) -> tuple:
    r"""``(gamma, friction) -> (learning_rate, beta)``: Su's leapfrog map.

    .. math:: \beta = \frac{1-\lambda\gamma/2}{1+\lambda\gamma/2},\quad
              \mathrm{lr} = \frac{\gamma^2}{1+\lambda\gamma/2}

    Args:
      gamma: ODE time per step (> 0).
      friction: the friction ``lambda >= 0``; ``lambda gamma < 2`` keeps beta > 0.

    Returns:
      ``(learning_rate, beta)`` in optax/PyTorch convention.

    Example:
      >>> lr, beta = ode_to_momentum(0.1, 1.0)
      >>> round(float(lr), 6), round(float(beta), 6)
      (0.009524, 0.904762)
    """
    check_interval("ode_to_momentum", "gamma", gamma, 0.0, float("inf"))
    check_interval("ode_to_momentum", "friction", friction, 0.0, float("inf"))
    h = jnp.asarray(friction) * jnp.asarray(gamma) / 2
    return jnp.asarray(gamma) ** 2 / (1 + h), (1 - h) / (1 + h)


def _check_rate(fn, name, value):
    """A rate ``> 0``: a number or a scalar array (a schedule has no one value)."""
    if (
        callable(value)
        or isinstance(value, bool)
        or not (_is_concrete_number(value) or hasattr(value, "shape"))
    ):
        raise TypeError(
            f"{fn}: `{name}` must be a float or a scalar array, got {value!r}"
        )
    check_scalar_shape(fn, name, value)
    v = concrete_value(value)
    if v is not None and not (math.isfinite(v) and v > 0):
        raise ValueError(f"{fn}: `{name}` must be finite and > 0, got {value!r}")


def _check_retune(fn, learning_rate, beta, new_learning_rate):
    """The three inputs' checks; their Python values, or None if any is traced."""
    _check_rate(fn, "learning_rate", learning_rate)
    check_interval(fn, "beta", beta, 0.0, 1.0)
    _check_rate(fn, "new_learning_rate", new_learning_rate)
    values = [concrete_value(v) for v in (learning_rate, beta, new_learning_rate)]
    return None if any(v is None for v in values) else values


def retune_hold_friction(learning_rate, beta, new_learning_rate):
    r"""The beta that keeps the ODE's friction when the learning rate changes.

    Holding :math:`\lambda` fixed at the new step :math:`\gamma'` gives
    :math:`u = \lambda\gamma'/2` solving :math:`u^2 = c(1+u)` with
    :math:`c = \lambda^2 \mathrm{lr}'/4`, and :math:`\beta' = (1-u)/(1+u)`;
    for small steps :math:`1-\beta' \approx (1-\beta)\sqrt{\mathrm{lr}'/\mathrm{lr}}`.
    :math:`\beta' \ge 0` needs :math:`u \le 1`, i.e.
    :math:`\mathrm{lr}' \le (1+\beta)\,\mathrm{lr}/(1-\beta)^2`: beyond it the
    friction cannot be held with a momentum coefficient in ``[0, 1)``.

    Args:
      learning_rate: the current rate ``lr > 0`` (a float or scalar array).
      beta: the current momentum in ``[0, 1)``.
      new_learning_rate: the new rate ``lr' > 0``.

    Returns:
      The new :math:`\beta'` as a scalar array.

    Raises:
      TypeError: a schedule, a bool or a non-number.
      ValueError: for concrete inputs (Python or NumPy numbers, jax arrays
        outside ``jit``): a rate not finite and > 0, ``beta`` outside
        ``[0, 1)``, or a new rate above the bound, where :math:`\beta'` would
        be negative. Traced inputs (inside ``jit`` / ``vmap``) cannot be
        checked: the formula is returned as it is, negative beyond the bound.

    Example:
      >>> b = retune_hold_friction(0.1, 0.9, 0.4)
      >>> round(float(b), 4)
      0.8051
    """
    fn = "retune_hold_friction"
    values = _check_retune(fn, learning_rate, beta, new_learning_rate)
    if values is not None:
        lr, b, new = values
        bound = (1 + b) * lr / (1 - b) ** 2
        if not new <= bound:
            raise ValueError(
                f"{fn}: `new_learning_rate` must satisfy 0 < new_learning_rate <= "
                f"(1 + beta) learning_rate / (1 - beta)^2 = {bound:g} (beyond it "
                f"the new beta is negative), got {new_learning_rate!r}"
            )
    _, lam = momentum_to_ode(learning_rate, beta)
    c = lam**2 * jnp.asarray(new_learning_rate) / 4
    u = (c + jnp.sqrt(c**2 + 4 * c)) / 2
    return (1 - u) / (1 + u)


def retune_hold_effective_rate(learning_rate, beta, new_learning_rate):
    r"""The beta that keeps the effective rate ``lr / (1 - beta)`` fixed.

    :math:`\beta' = 1 - (1-\beta)\,\mathrm{lr}'/\mathrm{lr}`; it must stay in
    ``[0, 1)``, so the new rate may be at most ``lr / (1 - beta)``.

    Args:
      learning_rate: the current rate ``lr > 0`` (a float or scalar array).
      beta: the current momentum in ``[0, 1)``.
      new_learning_rate: the new rate ``lr' > 0``.

    Returns:
      The new :math:`\beta'` as a scalar array.

    Raises:
      TypeError: a schedule, a bool or a non-number.
      ValueError: for concrete inputs (Python or NumPy numbers, jax arrays
        outside ``jit``): a rate not finite and > 0, ``beta`` outside
        ``[0, 1)``, or ``lr' > lr / (1 - beta)``, where :math:`\beta'` would be
        negative. Traced inputs (inside ``jit`` / ``vmap``) cannot be checked:
        the formula is returned as it is, e.g. -1.0 for
        ``lr' = 2 lr / (1 - beta)``.

    Example:
      >>> round(float(retune_hold_effective_rate(0.1, 0.9, 0.05)), 6)
      0.95
    """
    fn = "retune_hold_effective_rate"
    values = _check_retune(fn, learning_rate, beta, new_learning_rate)
    if values is not None:
        lr, b, new = values
        if not new <= lr / (1 - b):
            raise ValueError(
                f"{fn}: `new_learning_rate` must satisfy 0 < new_learning_rate <= "
                f"learning_rate / (1 - beta) = {lr / (1 - b):g}, "
                f"got {new_learning_rate!r}"
            )
    return 1 - (1 - jnp.asarray(beta)) * jnp.asarray(new_learning_rate) / (
        jnp.asarray(learning_rate)
    )
