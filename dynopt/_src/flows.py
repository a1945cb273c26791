r"""Continuous-time models that optimisers discretise.

A flow is an ``equinox.Module`` (a pytree: its numeric constants are leaves, its
options static fields, so ``jax.jit`` compiles one program per structure and
new constants never recompile) with

* ``initial_state(params)``: the ODE state at ``t = 0`` (``x`` or ``(x, v)``,
  starting at rest);
* ``vector_field(loss_fn)``: a function ``(t, y, args) -> dy/dt`` for diffrax;
* ``position(y)``: the parameters in the state;
* ``drift(y, grad)``: the same field given the gradient at ``position(y)`` (what
  a :mod:`scheme <dynopt.ExplicitEuler>` evaluates, the gradient coming from
  the optimiser) for the flows that a generic scheme integrates;
* ``join(x, rest)`` / ``rest(y)``: the state from the parameters and the
  other components (the optimiser's buffers), and back.

``loss_fn`` maps a params pytree to a scalar. Flows are pure and jit-safe; their
constants may be Python floats or arrays.

References:
  W. Su, S. Boyd, E. Candes, *A differential equation for modeling Nesterov's
  accelerated gradient method*, JMLR 2016, arXiv:1503.01243.
  B. Shi, S. Du, M. Jordan, W. Su, *Understanding the acceleration phenomenon via
  high-resolution differential equations*, Math. Prog. 2021, arXiv:1810.08907.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
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


def hessian_vector_product(grad_fn, x, v, method: str = "hvp", epsilon=None):
    r"""``H(x) v`` exactly (forward-over-reverse) or by a gradient difference.

    ``method="finite_difference"`` takes the central difference

    .. math:: H v \approx \frac{\nabla f(x + h v) - \nabla f(x - h v)}{2h},

    whose truncation error is :math:`O(h^2)` and rounding error
    :math:`O(\varepsilon/h)`, :math:`\varepsilon` the machine epsilon. They
    balance at a step of relative size :math:`\varepsilon^{1/3}`, so by default
    (``epsilon=None``)

    .. math:: h = \varepsilon^{1/3}\,\frac{\max(1, \|x\|_\infty)}{\|v\|_\infty}

    (``h`` is irrelevant for ``v = 0``), with :math:`\varepsilon` of the least
    precise leaf of ``x``: a relative error near :math:`\varepsilon^{2/3}`,
    about 2e-5 in float32 and 5e-11 in float64 for well-scaled functions.
    A given ``epsilon`` is used as ``h`` itself.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> g = jax.grad(lambda x: jnp.sum(x**3) / 6)  # H = diag(x)
      >>> x, v = jnp.array([1.0, 2.0]), jnp.array([1.0, 1.0])
      >>> hv = hessian_vector_product(g, x, v, "finite_difference")
      >>> bool(jnp.allclose(hv, x * v, rtol=1e-4))
      True
    """
    if method == "hvp":
        return jax.jvp(grad_fn, (x,), (v,))[1]
    if method == "finite_difference":
        h = _difference_step(x, v) if epsilon is None else epsilon
        plus = tree_map(lambda a, b: a + jnp.asarray(h, a.dtype) * b, x, v)
        minus = tree_map(lambda a, b: a - jnp.asarray(h, a.dtype) * b, x, v)
        return tree_map(
            lambda a, b: (a - b) / jnp.asarray(2 * h, a.dtype),
            grad_fn(plus),
            grad_fn(minus),
        )
    raise ValueError(
        "hessian_vector_product: `method` must be one of ('hvp', "
        f"'finite_difference'), got {method!r}"
    )


def _difference_step(x, v):
    """``cbrt(eps) max(1, |x|_inf) / |v|_inf`` for the central difference."""
    xs, vs = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(v)
    eps = max(float(jnp.finfo(jnp.result_type(a)).eps) for a in xs)
    x_norm = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in xs]))
    v_norm = jnp.max(jnp.stack([jnp.max(jnp.abs(b)) for b in vs]))
    v_norm = jnp.where(v_norm > 0, v_norm, 1.0)  # v = 0: any step gives 0
    return eps ** (1 / 3) * jnp.maximum(1.0, x_norm) / v_norm


class _FirstOrderFlow(eqx.Module):
    """A first-order flow: its ODE state is the parameters themselves."""

    def initial_state(self, params):
        return params

    def position(self, y):
        return y

    def join(self, x, rest):
        del rest
        return x

    def rest(self, y):
        del y
        return ()


class _PositionVelocityFlow(eqx.Module):
    """A second-order flow on ``(x, v)`` that starts at rest, ``v(0) = 0``."""

    def initial_state(self, params):
        return (params, tree_map(jnp.zeros_like, params))

    def position(self, y):
        return y[0]

    def join(self, x, rest):
        return (x, rest)

    def rest(self, y):
        return y[1]


class GradientFlow(_FirstOrderFlow):
    r"""Gradient flow :math:`x' = -\nabla f(x)`: explicit Euler gives GD/SGD.

    Attributes:
      maximize: ascend instead of descend.
      weight_decay: coupled L2 coefficient added to the objective.
    """

    maximize: bool = eqx.field(default=False, static=True)
    weight_decay: Any = 0.0

    order: ClassVar[int] = 1

    def vector_field(self, loss_fn):
        g = jax.grad(
            objective(loss_fn, maximize=self.maximize, weight_decay=self.weight_decay)
        )

        def field(t, y, args):
            return tree_map(jnp.negative, g(y))

        return field

    def drift(self, y, grad):
        """The field at ``y`` given the objective's gradient ``grad`` there."""
        del y
        return tree_map(jnp.negative, grad)


class HeavyBallFlow(_PositionVelocityFlow):
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
    maximize: bool = eqx.field(default=False, static=True)
    weight_decay: Any = 0.0

    order: ClassVar[int] = 2

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

    def drift(self, y, grad):
        """The field at ``y = (x, v)`` given the gradient at ``x``."""
        _, v = y
        dv = tree_map(
            lambda vi, gi: -jnp.asarray(self.friction, vi.dtype) * vi - gi, v, grad
        )
        return (v, dv)


class HessianDampedFlow(HeavyBallFlow):
    r"""Heavy ball with Hessian-driven damping (Nesterov's high-resolution ODE).

    .. math:: x'' + (\lambda + c\,\nabla^2 f(x))\,x' + \nabla f(x) = 0

    For Nesterov's look-ahead step with momentum :math:`\beta` and ODE step
    :math:`\gamma` (same :math:`\lambda, \gamma` as heavy ball), the gradient
    correction :math:`\beta\,\mathrm{lr}(\nabla f_k - \nabla f_{k-1})` equals
    :math:`\gamma^2 \beta\gamma\,\nabla^2 f\,x' + O(\gamma^4)`, hence
    :math:`c = \beta\gamma` and the scheme is second order for this flow.
    The product :math:`\nabla^2 f\,x'` is exact (``hessian="hvp"``) or a
    central gradient difference (``"finite_difference"``, see
    :func:`dynopt.hessian_vector_product`).

    Attributes:
      friction: :math:`\lambda`.
      hessian_damping: :math:`c \ge 0`.
      hessian: ``"hvp"`` or ``"finite_difference"``.
      epsilon: step of the gradient difference; None (default) scales it with
        the dtype and the sizes of ``x`` and ``x'``.
    """

    hessian_damping: Any = 0.0
    hessian: str = eqx.field(default="hvp", static=True)
    epsilon: float | None = None

    def drift(self, y, grad):
        """Not available: the field needs a Hessian-vector product, not a gradient."""
        raise NotImplementedError(
            "HessianDampedFlow.drift: the field needs H(x) v, not only grad f(x); "
            "integrate it with vector_field(loss_fn)"
        )

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


class ModifiedGradientFlow(_FirstOrderFlow):
    r"""The modified equation of gradient descent (backward error analysis).

    .. math:: x' = -\nabla\Big(f + \frac{\eta}{4}\,|\nabla f|^2\Big)(x)
              = -\nabla f - \frac{\eta}{2}\,\nabla^2 f\,\nabla f

    GD with step :math:`\eta` is first order for the gradient flow but second
    order for this flow: the iterates stay :math:`O(\eta^2)` from it over a
    fixed horizon (docs/reference.md R1). The Hessian-gradient product is an exact
    Hessian-vector product.

    Attributes:
      learning_rate: :math:`\eta`, the GD step whose modified equation this is.

    References:
      E. Hairer, C. Lubich, G. Wanner, *Geometric Numerical Integration*,
      Springer 2006, ch. IX. D. Barrett, B. Dherin, *Implicit gradient
      regularization*, ICLR 2021, arXiv:2009.11162.
    """

    learning_rate: Any

    order: ClassVar[int] = 2

    def vector_field(self, loss_fn):
        g = jax.grad(loss_fn)

        def field(t, y, args):
            gy = g(y)
            hg = hessian_vector_product(g, y, gy)
            return tree_map(lambda a, b: -a - 0.5 * self.learning_rate * b, gy, hg)

        return field


class SuBoydCandesFlow(_PositionVelocityFlow):
    r"""Su-Boyd-Candes ODE, the low-resolution limit of Nesterov's NAG-C.

    .. math:: x'' + \frac{r}{t}\,x' + \nabla f(x) = 0, \qquad
              x(0) = x_0,\ x'(0) = 0, \qquad r = 3.

    The friction :math:`r/t` is singular at :math:`t = 0`, so the flow starts
    at a small :math:`t_0` (``start_time``) from its power series: with
    :math:`X = x_0 + a t^2 + O(t^4)` the equation gives :math:`2a + 2ra +
    \nabla f(x_0) = 0`, hence

    .. math:: x(t_0) = x_0 - \frac{t_0^2}{2(1+r)}\nabla f(x_0), \qquad
              x'(t_0) = -\frac{t_0}{1+r}\nabla f(x_0),

    exact up to :math:`O(t_0^4 |\nabla^2 f\,\nabla f|)` (about 1e-18 for
    ``t_0 = 1e-4`` and unit curvature). The field itself is smooth up to
    :math:`t = 0` (:math:`x'/t \to -\nabla f(x_0)/(1+r)`); starting off zero
    only avoids evaluating :math:`0/0`. :func:`dynopt.continuous_trajectory`
    reports the state at ``start_time`` for requested times below it. On a
    quadratic with eigenvalue :math:`\lambda` and ``r = 3`` the solution is
    :math:`X(t) = 2 J_1(\sqrt\lambda t)/(\sqrt\lambda t)\, x_0`.

    Attributes:
      r: the friction numerator (3 for Nesterov; Su et al. study ``r >= 3``).
      start_time: :math:`t_0 > 0` where integration starts.

    References:
      W. Su, S. Boyd, E. Candes, *A differential equation for modeling
      Nesterov's accelerated gradient method*, JMLR 2016, arXiv:1503.01243.
    """

    r: Any = 3.0
    start_time: float = eqx.field(default=1e-4, static=True)

    order: ClassVar[int] = 1

    def initial_state(self, params):
        """The state at ``t = 0`` (at rest); see :meth:`series_start`."""
        return super().initial_state(params)

    def series_start(self, loss_fn, params):
        """The state ``(x, v)`` at ``start_time`` from the power series."""
        g0 = jax.grad(loss_fn)(params)
        t0 = self.start_time
        x = tree_map(lambda p, gi: p - t0**2 / (2 * (1 + self.r)) * gi, params, g0)
        v = tree_map(lambda gi: -t0 / (1 + self.r) * gi, g0)
        return (x, v)

    def vector_field(self, loss_fn):
        g = jax.grad(loss_fn)

        def field(t, y, args):
            x, v = y
            dv = tree_map(lambda vi, gi: -self.r / t * vi - gi, v, g(x))
            return (v, dv)

        return field


class HighResolutionFlow(_PositionVelocityFlow):
    r"""High-resolution ODE of a momentum method (Shi, Du, Jordan, Su).

    .. math:: x'' + (\lambda + c\,\nabla^2 f(x))\,x' + (1 + \sigma)\,\nabla f(x) = 0

    Keeping the :math:`O(\sqrt{s})` terms that the low-resolution limit drops,
    with step :math:`s` and strong convexity :math:`\mu` (clock
    :math:`t_k = k\sqrt s`, :math:`\beta = (1-\sqrt{\mu s})/(1+\sqrt{\mu s})`):

    * heavy ball: :math:`\lambda = 2\sqrt\mu,\ c = 0,\ \sigma = \sqrt{\mu s}`;
    * NAG-SC: :math:`\lambda = 2\sqrt\mu,\ c = \sqrt s,\ \sigma = \sqrt{\mu s}`.

    The gradient correction :math:`\sqrt{s}\,\nabla^2 f\,x'` is what separates
    Nesterov from heavy ball. It is computed exactly with a Hessian-vector
    product (``hessian="hvp"``) or by a gradient difference
    (``"finite_difference"``); see :func:`dynopt.high_resolution_flow`.

    Attributes:
      friction: :math:`\lambda`.
      hessian_damping: :math:`c`.
      gradient_scale: :math:`\sigma`.
      hessian: ``"hvp"`` or ``"finite_difference"``.
      epsilon: step of the gradient difference; None (default) scales it with
        the dtype (see :func:`dynopt.hessian_vector_product`).

    References:
      B. Shi, S. Du, M. Jordan, W. Su, *Understanding the acceleration phenomenon
      via high-resolution differential equations*, Math. Prog. 2021,
      arXiv:1810.08907.
    """

    friction: Any
    hessian_damping: Any = 0.0
    gradient_scale: Any = 0.0
    hessian: str = eqx.field(default="hvp", static=True)
    epsilon: float | None = None

    order: ClassVar[int] = 1

    def vector_field(self, loss_fn):
        g = jax.grad(loss_fn)

        def field(t, y, args):
            x, v = y
            hv = hessian_vector_product(g, x, v, self.hessian, self.epsilon)
            dv = tree_map(
                lambda vi, hi, gi: (
                    -self.friction * vi
                    - self.hessian_damping * hi
                    - (1 + self.gradient_scale) * gi
                ),
                v,
                hv,
                g(x),
            )
            return (v, dv)

        return field


def high_resolution_flow(
    method: str, step: float, mu: float, *, hessian: str = "hvp"
) -> HighResolutionFlow:
    r"""The high-resolution ODE of heavy ball or NAG-SC for step ``s`` and ``mu``.

    Args:
      method: ``"heavy_ball"`` or ``"nesterov"`` (NAG-SC).
      step: the step size :math:`s > 0` (learning rate).
      mu: strong-convexity constant :math:`\mu > 0`.
      hessian: how the Nesterov flow multiplies by the Hessian.

    Returns:
      A :class:`HighResolutionFlow`; the matching iteration uses learning rate
      ``s`` and :math:`\beta = (1-\sqrt{\mu s})/(1+\sqrt{\mu s})`.

    Raises:
      ValueError: unknown ``method`` or ``hessian``, non-positive ``step``/``mu``.

    Example:
      >>> f = high_resolution_flow("nesterov", 0.25, 4.0)
      >>> float(f.friction), float(f.hessian_damping), float(f.gradient_scale)
      (4.0, 0.5, 1.0)
    """
    fn = "high_resolution_flow"
    if method not in ("heavy_ball", "nesterov"):
        raise ValueError(
            f"{fn}: `method` must be one of ('heavy_ball', 'nesterov'), got {method!r}"
        )
    if hessian not in ("hvp", "finite_difference"):
        raise ValueError(
            f"{fn}: `hessian` must be one of ('hvp', 'finite_difference'), "
            f"got {hessian!r}"
        )
    for name, value in (("step", step), ("mu", mu)):
        if isinstance(value, int | float) and not value > 0:
            raise ValueError(f"{fn}: `{name}` must be > 0, got {value!r}")
    root_mu = jnp.sqrt(jnp.asarray(mu, dtype=jnp.result_type(float)))
    root_s = jnp.sqrt(jnp.asarray(step, dtype=jnp.result_type(float)))
    damping = root_s if method == "nesterov" else 0.0
    return HighResolutionFlow(
        friction=2 * root_mu,
        hessian_damping=damping,
        gradient_scale=root_mu * root_s,
        hessian=hessian,
    )
