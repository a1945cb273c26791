r"""Continuous-time models that optimisers discretise.

A flow is a frozen dataclass with

* ``initial_state(params)``: the ODE state at ``t = 0`` (``x`` or ``(x, v)``,
  starting at rest);
* ``vector_field(loss_fn)``: a function ``(t, y, args) -> dy/dt`` for diffrax;
* ``position(y)``: the parameters in the state.

``loss_fn`` maps a params pytree to a scalar. Flows are pure and jit-safe; their
constants may be Python floats or arrays.

References:
  W. Su, S. Boyd, E. Candes, *A differential equation for modeling Nesterov's
  accelerated gradient method*, JMLR 2016, arXiv:1503.01243.
  B. Shi, S. Du, M. Jordan, W. Su, *Understanding the acceleration phenomenon via
  high-resolution differential equations*, Math. Prog. 2021, arXiv:1810.08907.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

tree_map = jax.tree_util.tree_map


def objective(loss_fn: Callable, *, maximize: bool = False, weight_decay=0.0):
    r"""The function a method with these options actually descends.

    ``maximize`` flips the sign (PyTorch's ``maximize``), ``weight_decay`` adds
    :math:`\frac{w}{2}\|x\|^2` (PyTorch's coupled weight decay).
    """
    sign = -1.0 if maximize else 1.0

    def f(x):
        value = sign * loss_fn(x)
        if isinstance(weight_decay, int | float) and weight_decay == 0:
            return value
        sq = sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(x))
        return value + 0.5 * weight_decay * sq

    return f


def hessian_vector_product(grad_fn, x, v, method: str = "hvp", epsilon=1e-6):
    """``H(x) v`` exactly (forward-over-reverse) or by a gradient difference."""
    if method == "hvp":
        return jax.jvp(grad_fn, (x,), (v,))[1]
    if method == "finite_difference":
        shifted = tree_map(lambda a, b: a + epsilon * b, x, v)
        return tree_map(lambda a, b: (a - b) / epsilon, grad_fn(shifted), grad_fn(x))
    raise ValueError(
        "hessian_vector_product: `method` must be one of ('hvp', "
        f"'finite_difference'), got {method!r}"
    )


@dataclasses.dataclass(frozen=True)
class GradientFlow:
    r"""Gradient flow :math:`x' = -\nabla f(x)`: explicit Euler gives GD/SGD.

    Attributes:
      maximize: ascend instead of descend.
      weight_decay: coupled L2 coefficient added to the objective.
    """

    maximize: bool = False
    weight_decay: Any = 0.0

    order: int = dataclasses.field(default=1, init=False)

    def initial_state(self, params):
        return params

    def position(self, y):
        return y

    def vector_field(self, loss_fn):
        g = jax.grad(
            objective(loss_fn, maximize=self.maximize, weight_decay=self.weight_decay)
        )

        def field(t, y, args):
            return tree_map(jnp.negative, g(y))

        return field


@dataclasses.dataclass(frozen=True)
class HeavyBallFlow:
    r"""Damped heavy ball :math:`x'' + \lambda x' + \nabla f(x) = 0`.

    As a first-order system on ``(x, v)``: :math:`x' = v`,
    :math:`v' = -\lambda v - \nabla f(x)`; it starts at rest, ``v(0) = 0``.
    Leapfrog with step :math:`\gamma` gives Polyak's momentum (see
    :func:`dynopt.momentum_to_ode`).

    Attributes:
      friction: :math:`\lambda \ge 0`.
      maximize, weight_decay: as in :func:`objective`.
    """

    friction: Any
    maximize: bool = False
    weight_decay: Any = 0.0

    order: int = dataclasses.field(default=2, init=False)

    def initial_state(self, params):
        return (params, tree_map(jnp.zeros_like, params))

    def position(self, y):
        return y[0]

    def _grad(self, loss_fn):
        return jax.grad(
            objective(loss_fn, maximize=self.maximize, weight_decay=self.weight_decay)
        )

    def vector_field(self, loss_fn):
        g = self._grad(loss_fn)

        def field(t, y, args):
            x, v = y
            dv = tree_map(lambda vi, gi: -self.friction * vi - gi, v, g(x))
            return (v, dv)

        return field


@dataclasses.dataclass(frozen=True)
class HessianDampedFlow(HeavyBallFlow):
    r"""Heavy ball with Hessian-driven damping (Nesterov's high-resolution ODE).

    .. math:: x'' + (\lambda + c\,\nabla^2 f(x))\,x' + \nabla f(x) = 0

    For Nesterov's look-ahead step with momentum :math:`\beta` and ODE step
    :math:`\gamma` (same :math:`\lambda, \gamma` as heavy ball), the gradient
    correction :math:`\beta\,\mathrm{lr}(\nabla f_k - \nabla f_{k-1})` equals
    :math:`\gamma^2 \beta\gamma\,\nabla^2 f\,x' + O(\gamma^4)`, hence
    :math:`c = \beta\gamma` and the scheme is second order for this flow.
    The product :math:`\nabla^2 f\,x'` is exact (``hessian="hvp"``) or a
    gradient difference (``"finite_difference"``).

    Attributes:
      friction: :math:`\lambda`.
      hessian_damping: :math:`c \ge 0`.
      hessian: ``"hvp"`` or ``"finite_difference"``.
      epsilon: step of the gradient difference.
    """

    hessian_damping: Any = 0.0
    hessian: str = "hvp"
    epsilon: float = 1e-6

    def vector_field(self, loss_fn):
        g = self._grad(loss_fn)

        def field(t, y, args):
            x, v = y
            hv = hessian_vector_product(g, x, v, self.hessian, self.epsilon)
            dv = tree_map(
                lambda vi, hi, gi: -self.friction * vi - self.hessian_damping * hi - gi,
                v,
                hv,
                g(x),
            )
            return (v, dv)

        return field
