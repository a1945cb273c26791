r"""Numerical schemes: code that advances a flow by one step of size ``h``.

A scheme is an ``equinox.Module`` (a pytree; its options are static fields) and
is the update of every optimiser built from it by :func:`dynopt.discretise`:
what an optimiser reports about itself (``opt.dynamics.scheme``) is the code
that runs.

The protocol, for anyone writing a scheme (game schemes included):

* ``name`` (class attribute): a short identifier, e.g. ``"leapfrog"``.
* ``flows`` (class attribute): the flow classes the scheme integrates (exact
  types); :meth:`Scheme.check_flow` raises for any other.
* ``stages`` (class attribute): gradients per step. A scheme with more than one
  needs ``grad_fn`` (``params -> gradient``), passed to ``discretise`` or as an
  extra argument of ``update``.
* ``order`` (property): the declared global order of accuracy against the flow
  for the scheme's start, in the step ``h`` of the clock (the error at a fixed
  ODE time is :math:`O(h^{\mathrm{order}})`). ``order_for(flow)`` gives it for
  a flow (the default: ``order`` for every supported flow). Schemes whose
  order depends on how the velocity starts take ``start`` (a static field).
  The order tests measure it (errors at several ``h`` against a float64
  reference solution, log-log slope) and compare it with this declaration.
* ``coefficients(flow, h) -> dict``: the scalar numbers one step uses, from the
  flow's constants and ``h`` (e.g. leapfrog's ``learning_rate`` and ``beta``).
  A factory may give these directly from its own hyperparameters instead (so
  that ``dynopt.momentum(lr, beta)`` uses ``lr`` and ``beta`` bit for bit).
* ``init(flow, params, dtype) -> dict``: the scheme's buffers (velocity,
  moments, ...) at the start, each a pytree like ``params`` (``dtype`` None:
  the parameters' dtypes). ``init_at(flow, params, grad_fn, dtype) ->
  (buffers, count)``: the same when the gradient at the start can be
  evaluated (default: ``init`` and count 0; see :meth:`Scheme.init_at`).
* ``step(flow, coefficients, params, buffers, grad, grad_fn, count)``: one step.
  It receives the flow, the coefficient dict (scalar arrays), the parameters
  (may be None for one-stage schemes), the buffers, the gradient of the
  objective at ``params`` (after ``maximize`` / weight decay), a function
  giving that gradient at other points (None when not available) and the
  int32 step count before the step. It returns ``(delta, buffers)``: the
  parameter increment :math:`x_{k+1} - x_k` (optax's ``updates``, in the
  gradient's dtype) and the new buffers (same structure and dtypes).

Flows that generic schemes integrate provide ``drift(y, grad)``, ``join(x,
rest)`` and ``rest(y)`` (see :mod:`dynopt` flows): a scheme works on the state
``y = flow.join(params, buffer)`` and returns the increment of its position.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .base import StepScalars, zeros_like_tree
from .flows import GradientFlow, HeavyBallFlow, HessianDampedFlow

tree_map = jax.tree_util.tree_map
_STARTS = ("zero", "half_step")


class Scheme(eqx.Module):
    """Base class of the schemes; see the module docstring for the protocol."""

    name: ClassVar[str] = "scheme"
    flows: ClassVar[tuple[type, ...]] = ()
    stages: ClassVar[int] = 1
    formula: ClassVar[str] = ""

    @property
    def order(self) -> int:
        raise NotImplementedError

    def order_for(self, flow) -> int:
        """The declared global order on ``flow`` (raises for an unsupported flow)."""
        self.check_flow(type(self).__name__, flow)
        return self.order

    def check_flow(self, fn: str, flow) -> None:
        if type(flow) not in self.flows:
            names = tuple(f.__name__ for f in self.flows)
            raise TypeError(
                f"{fn}: `flow` must be one of {names} for {type(self).__name__}, "
                f"got {type(flow).__name__}"
            )

    def coefficients(self, flow, h) -> dict:
        return {"h": h}

    def init(self, flow, params, dtype=None) -> dict:
        if isinstance(flow, GradientFlow):
            return {}
        return {"velocity": zeros_like_tree(params, dtype)}

    def init_at(self, flow, params, grad_fn, dtype=None) -> tuple[dict, int]:
        """The buffers and the step count to start from when gradients are known.

        A caller that can evaluate ``grad_fn`` at the start (a game scheme can)
        asks for this instead of :meth:`init`. The default is ``init`` and the
        count 0. A scheme whose first step is a special case of its rule may
        fill its buffers so that the general rule gives that first step and
        return the count 1: then every step is the same map, which is what a
        linearisation of one step (:func:`dynopt.game_spectral_radius`) sees.
        """
        del grad_fn
        return self.init(flow, params, dtype), 0

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        raise NotImplementedError


def _check_start(cls, start):
    if start not in _STARTS:
        raise ValueError(f"{cls}: `start` must be one of {_STARTS}, got {start!r}")


# ----------------------------------------------------------------------------
# Explicit Runge-Kutta schemes on a flow's state y = join(x, rest).


def _rk(flow, h, params, buffers, grad, grad_fn, a, b):
    """One explicit Runge-Kutta step; returns (delta x, new buffers)."""
    rest = buffers.get("velocity", ())
    y = flow.join(params, rest)
    ks = [flow.drift(y, grad)]
    # h a_ij and h b_j, once per step and dtype
    named = {f"a{i}_{j}": h * c for i, row in enumerate(a) for j, c in enumerate(row)}
    s = StepScalars(**named, **{f"b{j}": h * c for j, c in enumerate(b)})
    for i, row in enumerate(a):

        def stage(y0, *k, i=i, row=row):
            c = s.at(y0)
            return y0 + sum(c[f"a{i}_{j}"] * ki for j, ki in enumerate(k))

        yi = tree_map(stage, y, *ks[: len(row)])
        ks.append(flow.drift(yi, grad_fn(flow.position(yi))))

    def combine(y0, *k):
        c = s.at(y0)
        return sum(c[f"b{j}"] * ki for j, ki in enumerate(k))

    dy = tree_map(combine, y, *ks)
    new = {}
    if "velocity" in buffers:
        new["velocity"] = tree_map(jnp.add, rest, flow.rest(dy))
    delta = tree_map(lambda d, g: d.astype(g.dtype), flow.position(dy), grad)
    return delta, new


def _need(fn, params, grad_fn):
    if params is None:
        raise ValueError(f"{fn}: `params` must be given to update(), got None")
    if grad_fn is None:
        raise ValueError(
            f"{fn}: a gradient function is needed: pass `grad_fn` to the factory "
            "or to update(..., grad_fn=...), got None"
        )


class ExplicitEuler(Scheme):
    r"""Explicit Euler: :math:`y_{k+1} = y_k + h F(y_k)`; order 1.

    On the gradient flow it is gradient descent, :math:`x_{k+1} = x_k - h
    \nabla f(x_k)`; on the heavy ball, :math:`x_{k+1} = x_k + h v_k`,
    :math:`v_{k+1} = v_k - h(\lambda v_k + \nabla f(x_k))`.
    """

    name: ClassVar[str] = "explicit_euler"
    flows: ClassVar[tuple[type, ...]] = (GradientFlow, HeavyBallFlow)
    formula: ClassVar[str] = "y_{k+1} = y_k + h F(y_k)"

    @property
    def order(self) -> int:
        return 1

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        h = coefficients["h"]
        if isinstance(flow, GradientFlow):  # optax's sgd arithmetic exactly
            s = StepScalars(neg_h=-h)
            return tree_map(lambda g: s.at(g)["neg_h"] * g, grad), {}
        return _rk(flow, h, params, buffers, grad, grad_fn, (), (1.0,))


class Heun(Scheme):
    r"""Heun's method (explicit trapezoid, RK2); order 2, two gradients a step.

    .. math:: \tilde y = y_k + h F(y_k), \qquad
              y_{k+1} = y_k + \frac{h}{2}\big(F(y_k) + F(\tilde y)\big).
    """

    name: ClassVar[str] = "heun"
    flows: ClassVar[tuple[type, ...]] = (GradientFlow, HeavyBallFlow)
    stages: ClassVar[int] = 2
    formula: ClassVar[str] = "y~ = y_k + h F(y_k); y_{k+1} = y_k + h/2 (F(y_k) + F(y~))"

    @property
    def order(self) -> int:
        return 2

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        _need("heun", params, grad_fn)
        h = coefficients["h"]
        if isinstance(flow, GradientFlow):  # the arithmetic of dynopt.heun
            s = StepScalars(h=h, neg_half_h=-0.5 * h)
            predictor = tree_map(
                lambda p, g: p - s.at(p)["h"] * g.astype(p.dtype), params, grad
            )
            g2 = grad_fn(predictor)
            delta = tree_map(
                lambda a, b, p: s.at(p)["neg_half_h"] * (a + b).astype(p.dtype),
                grad,
                g2,
                params,
            )
            return delta, {}
        return _rk(flow, h, params, buffers, grad, grad_fn, ((1.0,),), (0.5, 0.5))


class RK4(Scheme):
    r"""The classical fourth-order Runge-Kutta scheme; four gradients a step."""

    name: ClassVar[str] = "rk4"
    flows: ClassVar[tuple[type, ...]] = (GradientFlow, HeavyBallFlow)
    stages: ClassVar[int] = 4
    formula: ClassVar[str] = "y_{k+1} = y_k + h/6 (k1 + 2 k2 + 2 k3 + k4)"

    @property
    def order(self) -> int:
        return 4

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        _need("rk4", params, grad_fn)
        a = ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0))
        b = (1 / 6, 1 / 3, 1 / 3, 1 / 6)
        return _rk(flow, coefficients["h"], params, buffers, grad, grad_fn, a, b)


class SymplecticEuler(Scheme):
    r"""Semi-implicit (symplectic) Euler on the heavy ball; order 1.

    .. math:: v_{k+1} = v_k - h(\lambda v_k + \nabla f(x_k)), \qquad
              x_{k+1} = x_k + h v_{k+1}.
    """

    name: ClassVar[str] = "symplectic_euler"
    flows: ClassVar[tuple[type, ...]] = (HeavyBallFlow,)
    formula: ClassVar[str] = (
        "v_{k+1} = v_k + h F_v(x_k, v_k); x_{k+1} = x_k + h v_{k+1}"
    )

    @property
    def order(self) -> int:
        return 1

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        s = StepScalars(h=coefficients["h"])
        v = buffers["velocity"]
        _, dv = flow.drift((params, v), grad)
        v = tree_map(lambda vi, di: vi + s.at(vi)["h"] * di, v, dv)
        delta = tree_map(lambda vi, g: (s.at(vi)["h"] * vi).astype(g.dtype), v, grad)
        return delta, {"velocity": v}


class ConformalSymplectic(Scheme):
    r"""Conformal symplectic leapfrog on the damped heavy ball; order 2.

    The damped flow splits into the exact friction map :math:`p \mapsto
    e^{-\lambda t} p` and the Hamiltonian flow of :math:`|p|^2/2 + f(x)`;
    Strang composition ``D(h/2) K(h/2) X(h) K(h/2) D(h/2)`` of the friction
    ``D``, the kick ``K`` and the drift ``X`` is conformal symplectic (it
    contracts the symplectic form by exactly :math:`e^{-\lambda h}` per step,
    as the flow does) and second order. The closing kick of one step and the
    opening kick of the next use the same gradient, so one gradient a step
    suffices: the buffer holds the half-kicked velocity, and

    .. math:: p = e^{-\lambda h/2}(q_k - \tfrac h2 \nabla f(x_k)) \
              (p = 0 \text{ at } k = 0), \quad
              q_{k+1} = e^{-\lambda h/2} p - \tfrac h2 \nabla f(x_k), \quad
              x_{k+1} = x_k + h\,q_{k+1}.

    References:
      G. Franca, J. Sulam, D. Robinson, R. Vidal, *Conformal symplectic and
      relativistic optimization*, NeurIPS 2020, arXiv:1903.04100.
    """

    name: ClassVar[str] = "conformal_symplectic"
    flows: ClassVar[tuple[type, ...]] = (HeavyBallFlow,)
    formula: ClassVar[str] = "D(h/2) K(h/2) X(h) K(h/2) D(h/2), D: p -> e^{-lam t} p"

    @property
    def order(self) -> int:
        return 2

    def coefficients(self, flow, h) -> dict:
        return {"h": h, "decay": jnp.exp(-0.5 * flow.friction * h)}

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        h, e = coefficients["h"], coefficients["decay"]
        s = StepScalars(h=h, half_h=h / 2, decay=e)
        first = count == 0

        def kick(q, g):
            c = s.at(q)
            g = g.astype(q.dtype)
            p = jnp.where(first, q, c["decay"] * (q - c["half_h"] * g))
            return c["decay"] * p - c["half_h"] * g

        q = tree_map(kick, buffers["velocity"], grad)
        delta = tree_map(lambda qi, g: (s.at(qi)["h"] * qi).astype(g.dtype), q, grad)
        return delta, {"velocity": q}


# ----------------------------------------------------------------------------
# Leapfrog in optax's coordinates (the buffer m = -V / lr of the velocity V on
# half steps), so that dynopt.momentum / nesterov are optax's arithmetic.


class Leapfrog(Scheme):
    r"""Leapfrog (Stormer-Verlet) with the velocity on half steps.

    On :math:`x' = v,\ v' = -\lambda v - \nabla f(x)` with step :math:`h`
    (friction by the trapezoid rule) and :math:`V = h v`:

    .. math:: V_{k+1/2} = \beta V_{k-1/2} - \alpha \nabla f(x_k), \qquad
              x_{k+1} = x_k + V_{k+1/2},

    :math:`\beta = (1-\lambda h/2)/(1+\lambda h/2)`,
    :math:`\alpha = h^2/(1+\lambda h/2)`. The buffer is optax's
    ``m = -V/lr``: ``m <- c g + beta m``, ``x <- x - lr m`` with ``c = 1``, or
    ``1 - dampening`` when a ``dampening`` coefficient is given (PyTorch).

    Attributes:
      start: ``"zero"`` (the buffer starts at zero, as in optax and PyTorch:
        order 1) or ``"half_step"`` (:math:`V_{-1/2}` set so that the first
        step is :math:`m_1 = g_0/(1+\beta)`: order 2).
    """

    name: ClassVar[str] = "leapfrog"
    flows: ClassVar[tuple[type, ...]] = (HeavyBallFlow,)
    formula: ClassVar[str] = (
        "V_{k+1/2} = beta V_{k-1/2} - lr grad f(x_k), x_{k+1} = x_k + V_{k+1/2}"
    )
    lookahead: ClassVar[bool] = False
    start: str = eqx.field(default="zero", static=True)

    def __check_init__(self):
        _check_start(type(self).__name__, self.start)

    @property
    def order(self) -> int:
        return 2 if self.start == "half_step" else 1

    def coefficients(self, flow, h) -> dict:
        u = flow.friction * h / 2
        return {"learning_rate": h * h / (1 + u), "beta": (1 - u) / (1 + u)}

    def init(self, flow, params, dtype=None) -> dict:
        return {"momentum": zeros_like_tree(params, dtype)}

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        lr, b = coefficients["learning_rate"], coefficients["beta"]
        d = coefficients.get("dampening", jnp.zeros_like(b))
        first = count == 0
        if self.start == "half_step":
            # m_1 = g_0 / (1 + beta) (heavy ball), -g_0 / (1 + beta) (look-ahead)
            c_first = (-1.0 if self.lookahead else 1.0) / (1 + b)
        else:
            c_first = jnp.ones_like(b)  # PyTorch: the first step is not dampened
        # From the zero start without dampening the gradient's coefficient is 1
        # at every step: optax's ``g + beta m`` exactly.
        plain = self.start == "zero" and "dampening" not in coefficients
        scalars = {"beta": b, "neg_lr": -lr}
        if not plain:
            scalars["c"] = jnp.where(first, c_first, 1 - d)
        s = StepScalars(**scalars)

        def buffer(gi, mi):
            k = s.at(mi)
            gi = gi.astype(mi.dtype)
            if plain:
                return gi + k["beta"] * mi
            return k["c"] * gi + k["beta"] * mi

        new_m = tree_map(buffer, grad, buffers["momentum"])
        if self.lookahead:
            direction = tree_map(
                lambda gi, mi: gi.astype(mi.dtype) + s.at(mi)["beta"] * mi,
                grad,
                new_m,
            )
        else:
            direction = new_m
        # The increment stays in the buffer's dtype, as optax's: with bf16
        # parameters and a float32 buffer, apply_updates rounds once.
        delta = tree_map(lambda u: s.at(u)["neg_lr"] * u, direction)
        return delta, {"momentum": new_m}


class Lookahead(Leapfrog):
    r"""Nesterov's look-ahead step, ``x <- x - lr (g + beta m_{k+1})``.

    As a two-step recursion it is heavy-ball leapfrog plus the gradient
    correction :math:`-\beta\,\mathrm{lr}(\nabla f_k - \nabla f_{k-1})`, a
    second-order scheme (from the half-step start) for the Hessian-damped flow
    with damping :math:`c = \beta h` (:class:`dynopt.HessianDampedFlow`).
    """

    name: ClassVar[str] = "lookahead"
    flows: ClassVar[tuple[type, ...]] = (HessianDampedFlow,)
    lookahead: ClassVar[bool] = True
    formula: ClassVar[str] = (
        "x_{k+1} = x_k + beta (x_k - x_{k-1}) - lr grad f(x_k) "
        "- beta lr (grad f(x_k) - grad f(x_{k-1}))"
    )
