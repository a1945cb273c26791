r"""Schemes from the game literature, as minimisation schemes.

Extrapolation (:class:`Korpelevich`), optimism (:class:`Optimistic`) and the
implicit step (:class:`ImplicitEuler`) were made for games, where the field
rotates, but each is a scheme for any flow :math:`x' = -\nabla f(x)`: they
follow the protocol of :mod:`dynopt` schemes, so :func:`dynopt.discretise`
makes optimisers of them, and :class:`dynopt.SchemeOnGame` runs them on a game
(the named game schemes :class:`dynopt.ExtraGradient`,
:class:`dynopt.OptimisticGradient` and :class:`dynopt.ProximalPoint` are
those liftings).

References:
  G. Korpelevich, *The extragradient method for finding saddle points and
  other problems*, Matecon 1976.
  C. Daskalakis, A. Ilyas, V. Syrgkanis, H. Zeng, *Training GANs with
  optimism*, ICLR 2018, arXiv:1711.00141.
  R. T. Rockafellar, *Monotone operators and the proximal point algorithm*,
  SIAM J. Control Optim. 1976.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .base import StepScalars, check_choice, check_count, zeros_like_tree
from .flows import GradientFlow, HeavyBallFlow
from .schemes import Scheme, _need, _rk

tree_map = jax.tree_util.tree_map


class Korpelevich(Scheme):
    r"""Extragradient (Korpelevich): a look-ahead step, then a step from the start.

    .. math:: \tilde y = y_k + h F(y_k), \qquad y_{k+1} = y_k + h F(\tilde y),

    the explicit Runge-Kutta scheme with :math:`a_{21} = 1`, :math:`b = (0, 1)`;
    two gradients a step, order 1 (:math:`b_2 a_{21} = 1 \ne 1/2`). On the
    gradient flow, :math:`x_{k+1} = x_k - h\nabla f(x_k - h\nabla f(x_k))`.

    Example:
      >>> import dynopt, jax, jax.numpy as jnp
      >>> grad = jax.grad(lambda x: 0.5 * jnp.sum(x**2))
      >>> opt = dynopt.discretise(dynopt.GradientFlow(), dynopt.Korpelevich(), 0.1)
      >>> x = jnp.ones(1)
      >>> opt.update(grad(x), opt.init(x), x, grad_fn=grad)[0]  # -h (1 - h) x
      Array([-0.09], dtype=float32)
    """

    name: ClassVar[str] = "extragradient"
    flows: ClassVar[tuple[type, ...]] = (GradientFlow, HeavyBallFlow)
    stages: ClassVar[int] = 2
    formula: ClassVar[str] = "y~ = y_k + h F(y_k); y_{k+1} = y_k + h F(y~)"

    @property
    def order(self) -> int:
        return 1

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        _need("extragradient", params, grad_fn)
        h = coefficients["h"]
        if isinstance(flow, GradientFlow):  # Heun's predictor, then one step
            s = StepScalars(h=h, neg_h=-h)
            look = tree_map(
                lambda p, g: p - s.at(p)["h"] * g.astype(p.dtype), params, grad
            )
            delta = tree_map(
                lambda g, g0: s.at(g0)["neg_h"] * g.astype(g0.dtype),
                grad_fn(look),
                grad,
            )
            return delta, {}
        return _rk(flow, h, params, buffers, grad, grad_fn, ((1.0,),), (0.0, 1.0))


class Optimistic(Scheme):
    r"""Optimistic gradient descent: the gradient extrapolated from the last one.

    .. math:: x_{k+1} = x_k - h\,\big(2\nabla f(x_k) - \nabla f(x_{k-1})\big),
        \qquad \nabla f(x_{-1}) = \nabla f(x_0),

    so the first step is a gradient step; the previous gradient is the buffer
    ``previous``. One gradient a step, order 1 (a two-step method whose local
    error is :math:`\tfrac32 h^2 \nabla^2 f\,\nabla f + O(h^3)`).

    Example:
      >>> import dynopt, jax, jax.numpy as jnp
      >>> grad = jax.grad(lambda x: 0.5 * jnp.sum(x**2))
      >>> opt = dynopt.discretise(dynopt.GradientFlow(), dynopt.Optimistic(), 0.5)
      >>> x, state = jnp.ones(1), None
      >>> state = opt.init(x)
      >>> for _ in range(2):
      ...     u, state = opt.update(grad(x), state, x)
      ...     x = x + u
      >>> x  # 1 -> 0.5 -> 0.5 - 0.5 (2 * 0.5 - 1)
      Array([0.5], dtype=float32)
    """

    name: ClassVar[str] = "optimistic"
    flows: ClassVar[tuple[type, ...]] = (GradientFlow,)
    formula: ClassVar[str] = "x_{k+1} = x_k - h (2 g_k - g_{k-1}), g_{-1} = g_0"

    @property
    def order(self) -> int:
        return 1

    def init(self, flow, params, dtype=None) -> dict:
        return {"previous": zeros_like_tree(params, dtype)}

    def init_at(self, flow, params, grad_fn, dtype=None):
        """The previous gradient set to the one at the start, and the count 1."""
        buffer = self.init(flow, params, dtype)["previous"]
        g0 = tree_map(lambda g, b: g.astype(b.dtype), grad_fn(params), buffer)
        return {"previous": g0}, 1

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        h = coefficients["h"]
        first = count == 0

        def delta(g, prev):
            prev = jnp.where(first, g, prev.astype(g.dtype))
            return (-h).astype(g.dtype) * (2 * g - prev)

        new = tree_map(lambda g, b: g.astype(b.dtype), grad, buffers["previous"])
        return tree_map(delta, grad, buffers["previous"]), {"previous": new}


IMPLICIT_SOLVERS = ("newton", "fixed_point")


class ImplicitEuler(Scheme):
    r"""Implicit Euler, i.e. the proximal-point step: :math:`x^+ = x - h\nabla f(x^+)`.

    On a convex :math:`f`, :math:`x^+ = \arg\min_w f(w) + |w - x|^2 / (2h)`.
    The implicit equation :math:`R(w) = w - x + h\nabla f(w) = 0` is solved
    from :math:`w_0 = x` by ``iterations`` Newton steps
    :math:`w \leftarrow w - (I + hH(w))^{-1} R(w)` on the flattened parameters
    (``solver="newton"``: the dense Jacobian of ``grad_fn``, small problems
    only; exact after one step when the gradient is linear) or by the
    fixed-point iteration :math:`w \leftarrow x - h\nabla f(w)`
    (``"fixed_point"``: no Jacobian; it contracts when :math:`h\,\mathrm{Lip}
    (\nabla f) < 1`, with error :math:`(h\,\mathrm{Lip})^k`). Differentiating
    through the unrolled iterations gives the derivative of the implicit step
    (exactly at a fixed point of Newton's map). Order 1; stable for every
    :math:`h` on a quadratic, :math:`x^+ = (I + hA)^{-1} x`.

    Attributes:
      solver: ``"newton"`` or ``"fixed_point"``.
      iterations: solver steps (static, >= 1).

    Example:
      >>> import dynopt, jax, jax.numpy as jnp
      >>> grad = jax.grad(lambda x: 0.5 * jnp.sum(x**2))
      >>> opt = dynopt.discretise(dynopt.GradientFlow(), dynopt.ImplicitEuler(), 1.0)
      >>> x = jnp.ones(1)
      >>> opt.update(grad(x), opt.init(x), x, grad_fn=grad)[0]  # x / (1 + h) - x
      Array([-0.5], dtype=float32)
    """

    name: ClassVar[str] = "implicit_euler"
    flows: ClassVar[tuple[type, ...]] = (GradientFlow,)
    formula: ClassVar[str] = "x_{k+1} = x_k - h grad f(x_{k+1})"
    solver: str = eqx.field(static=True, default="newton")
    iterations: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        check_choice("ImplicitEuler", "solver", self.solver, IMPLICIT_SOLVERS)
        check_count("ImplicitEuler", "iterations", self.iterations)

    @property
    def stages(self) -> int:  # type: ignore[override]
        """Gradient evaluations a step (Newton adds a Jacobian at each)."""
        return self.iterations + 1

    @property
    def order(self) -> int:
        return 1

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        _need("implicit_euler", params, grad_fn)
        h = coefficients["h"]
        x_flat, unravel = ravel_pytree(params)
        h = h.astype(x_flat.dtype)

        def gradient(w_flat):
            return ravel_pytree(grad_fn(unravel(w_flat)))[0].astype(x_flat.dtype)

        if self.solver == "fixed_point":

            def body(w, _):
                return x_flat - h * gradient(w), None

        else:

            def residual(w):
                return w - x_flat + h * gradient(w)

            def body(w, _):
                return w - jnp.linalg.solve(jax.jacfwd(residual)(w), residual(w)), None

        w = jax.lax.scan(body, x_flat, None, length=self.iterations)[0]
        delta = tree_map(
            lambda a, b, g: (a - b).astype(g.dtype), unravel(w), params, grad
        )
        return delta, {}
