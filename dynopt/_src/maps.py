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

import jax.numpy as jnp

from .base import check_interval, check_learning_rate


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


def retune_hold_friction(learning_rate, beta, new_learning_rate):
    r"""The beta that keeps the ODE's friction when the learning rate changes.

    Holding :math:`\lambda` fixed at the new step :math:`\gamma'` gives
    :math:`u = \lambda\gamma'/2` solving :math:`u^2 = c(1+u)` with
    :math:`c = \lambda^2 \mathrm{lr}'/4`, and :math:`\beta' = (1-u)/(1+u)`;
    for small steps :math:`1-\beta' \approx (1-\beta)\sqrt{\mathrm{lr}'/\mathrm{lr}}`.

    Example:
      >>> b = retune_hold_friction(0.1, 0.9, 0.4)
      >>> round(float(b), 4)
      0.8051
    """
    _check_lr_beta("retune_hold_friction", learning_rate, beta)
    check_learning_rate("retune_hold_friction", new_learning_rate)
    _, lam = momentum_to_ode(learning_rate, beta)
    c = lam**2 * jnp.asarray(new_learning_rate) / 4
    u = (c + jnp.sqrt(c**2 + 4 * c)) / 2
    return (1 - u) / (1 + u)


def retune_hold_effective_rate(learning_rate, beta, new_learning_rate):
    r"""The beta that keeps the effective rate ``lr / (1 - beta)`` fixed.

    :math:`\beta' = 1 - (1-\beta)\,\mathrm{lr}'/\mathrm{lr}`; it must stay in
    ``[0, 1)``, so the new rate may be at most ``lr / (1 - beta)``.

    Raises:
      ValueError: if the required beta falls outside ``[0, 1)``.

    Example:
      >>> round(float(retune_hold_effective_rate(0.1, 0.9, 0.05)), 6)
      0.95
    """
    _check_lr_beta("retune_hold_effective_rate", learning_rate, beta)
    check_learning_rate("retune_hold_effective_rate", new_learning_rate)
    new_beta = 1 - (1 - jnp.asarray(beta)) * jnp.asarray(new_learning_rate) / (
        jnp.asarray(learning_rate)
    )
    if all(
        isinstance(v, int | float) for v in (learning_rate, beta, new_learning_rate)
    ):
        nb = float(new_beta)
        if not 0 <= nb < 1:
            raise ValueError(
                "retune_hold_effective_rate: `new_learning_rate` must satisfy "
                f"0 < new_learning_rate <= learning_rate / (1 - beta) = "
                f"{learning_rate / (1 - beta):g}, got {new_learning_rate!r}"
            )
    return new_beta
