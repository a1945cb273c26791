r"""NAG-C (Nesterov for convex functions) and Heun's method as optimisers.

Both are :class:`~dynopt.Optimizer` s (``optax.GradientTransformationExtraArgs``
carrying their :class:`~dynopt.Dynamics`), so they run in plain optax loops and
in :func:`dynopt.discrete_trajectory`.
"""

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .base import Optimizer, StepScalars, check_learning_rate, zeros_like_tree
from .discretise import Spec, build
from .dynamics import Clock, find_first
from .flows import GradientFlow, SuBoydCandesFlow
from .schemes import Heun, Scheme

tree_map = jax.tree_util.tree_map


class NagCState(NamedTuple):
    """State of :func:`dynopt.nag_c`.

    Attributes:
      count: number of steps taken ``k`` (int32).
      time: ODE time ``t_k = k sqrt(s)``.
      hyperparams: dict with the ``learning_rate`` leaf ``s``.
      delta: the last step of the ``x`` sequence, ``x_k - x_{k-1}`` (zero at
        ``k = 0``).
    """

    count: jax.Array
    time: jax.Array
    hyperparams: dict
    delta: Any


class HeunState(NamedTuple):
    """State of :func:`dynopt.heun`.

    Attributes:
      count: number of steps taken (int32).
      time: ODE time ``t_k = sum lr_j``.
      hyperparams: dict with the ``learning_rate`` leaf.
    """

    count: jax.Array
    time: jax.Array
    hyperparams: dict


ROOT_CLOCK = Clock(
    "sqrt_learning_rate",
    lambda hp: jnp.sqrt(hp["learning_rate"]),
    "t_{k+1} = t_k + sqrt(s)",
)
LR_CLOCK = Clock(
    "learning_rate", lambda hp: hp["learning_rate"], "t_{k+1} = t_k + lr_k"
)


class NesterovConvex(Scheme):
    r"""Nesterov's NAG-C recursion on the Su-Boyd-Candes flow (``r = 3``).

    .. math:: x_k = y_{k-1} - s\,\nabla f(y_{k-1}), \qquad
              y_k = x_k + \frac{k-1}{k+2}(x_k - x_{k-1}),

    with :math:`h = \sqrt s`; the buffer ``delta`` is :math:`x_k - x_{k-1}`.
    First order in :math:`h` for the ``x_k`` sequence.
    """

    name: ClassVar[str] = "nag_c"
    flows: ClassVar[tuple[type, ...]] = (SuBoydCandesFlow,)
    formula: ClassVar[str] = (
        "x_k = y_{k-1} - s grad f(y_{k-1}); y_k = x_k + (k-1)/(k+2) (x_k - x_{k-1})"
    )

    @property
    def order(self) -> int:
        return 1

    def coefficients(self, flow, h) -> dict:
        return {"learning_rate": h * h}

    def init(self, flow, params, dtype=None) -> dict:
        return {"delta": zeros_like_tree(params, dtype)}

    def step(self, flow, coefficients, params, buffers, grad, grad_fn, count):
        s = coefficients["learning_rate"]
        k = (count + 1).astype(s.dtype)
        # c_{k-1} multiplies d_{k-1}, which is zero at k = 1.
        c_prev = (k - 2) / (k + 1)
        c_k = (k - 1) / (k + 2)

        c = StepScalars(c_prev=c_prev, one_plus_c_k=1 + c_k, s=s)

        def delta(g, d):
            k = c.at(d)
            return k["c_prev"] * d - k["s"] * g.astype(d.dtype)

        def update(dn, d):
            k = c.at(d)
            return k["one_plus_c_k"] * dn - k["c_prev"] * d

        old = buffers["delta"]
        new_delta = tree_map(delta, grad, old)
        updates = tree_map(update, new_delta, old)
        return updates, {"delta": new_delta}


def nag_c(learning_rate: optax.ScalarOrSchedule) -> Optimizer:
    r"""Nesterov's method for convex functions (NAG-C), the Su-Boyd-Candes scheme.

    .. math:: x_k = y_{k-1} - s\,\nabla f(y_{k-1}), \qquad
              y_k = x_k + \frac{k-1}{k+2}(x_k - x_{k-1}), \qquad
              x_0 = y_0.

    The parameters the optimiser updates are the look-ahead points :math:`y_k`
    (the gradient is taken there, as optax expects). With
    :math:`d_k = x_k - x_{k-1}` kept in the state, :math:`d_k = c_{k-1}
    d_{k-1} - s\,g` and the update is :math:`y_k - y_{k-1} = (1 + c_k) d_k -
    c_{k-1} d_{k-1}`, :math:`c_k = (k-1)/(k+2)`. Its limit for small
    :math:`s` with clock :math:`t_k = k\sqrt s` is the ODE
    :math:`x'' + \frac{3}{t}x' + \nabla f = 0` (:class:`SuBoydCandesFlow`),
    which the :math:`x_k` sequence follows to first order in :math:`\sqrt s`
    (docs/reference.md R2). :func:`nag_c_position` recovers :math:`x_k` from
    ``(params, state)``; :func:`dynopt.discrete_trajectory` records it.

    Args:
      learning_rate: step :math:`s \ge 0`, a float, scalar array or schedule.

    Returns:
      An :class:`~dynopt.Optimizer` with :class:`NagCState`.

    Raises:
      ValueError / TypeError: for a negative, non-finite or non-scalar step.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> opt = dynopt.nag_c(0.5)
      >>> state = opt.init(jnp.ones(1))
      >>> u, state = opt.update(jnp.ones(1), state)
      >>> u, float(state.time)
      (Array([-0.5], dtype=float32), 0.7071...)

    References:
      Y. Nesterov, *A method for solving a convex programming problem with
      convergence rate O(1/k^2)*, Soviet Math. Dokl. 1983. W. Su, S. Boyd,
      E. Candes, *A differential equation for modeling Nesterov's accelerated
      gradient method*, JMLR 2016, arXiv:1503.01243.
    """
    fn = "nag_c"
    check_learning_rate(fn, learning_rate)

    opt = build(
        Spec(
            name="nag_c",
            scheme=NesterovConvex(),
            values={"learning_rate": learning_rate},
            make_flow=lambda hp: SuBoydCandesFlow(),
            clock=ROOT_CLOCK,
            to_ode=lambda hp: {"step": jnp.sqrt(jnp.asarray(hp["learning_rate"]))},
            coefficients=lambda hp: {"learning_rate": hp["learning_rate"]},
            state_type=NagCState,
        )
    )
    opt.__dict__["ode_position"] = nag_c_position
    return opt


def nag_c_position(params, state):
    r"""The :math:`x_k` of NAG-C from its parameters :math:`y_k` and state.

    :math:`x_k = y_k - \frac{k-1}{k+2}\,(x_k - x_{k-1})`; this is the sequence
    that follows the Su-Boyd-Candes ODE in docs/reference.md R2.

    Raises:
      ValueError: if ``state`` holds no :class:`NagCState`.
    """
    s = find_first(state, lambda s: isinstance(s, NagCState))
    if s is None:
        raise ValueError(
            "nag_c_position: `state` must hold a NagCState (from dynopt.nag_c), "
            f"got {type(state).__name__}"
        )
    k = s.count.astype(jnp.result_type(float))
    c = (k - 1) / (k + 2)
    return tree_map(lambda y, d: y - c.astype(d.dtype) * d, params, s.delta)


def heun(
    learning_rate: optax.ScalarOrSchedule,
    *,
    grad_fn: Callable | None = None,
) -> Optimizer:
    r"""Heun's method (explicit trapezoid, RK2) on the gradient flow.

    .. math:: \tilde x = x_k - \eta\,\nabla f(x_k), \qquad
              x_{k+1} = x_k - \frac{\eta}{2}\big(\nabla f(x_k) + \nabla f(\tilde x)
              \big), \qquad t_{k+1} = t_k + \eta.

    Second order for :math:`x' = -\nabla f(x)`, at the price of a second
    gradient per step. optax passes the optimiser one gradient; the second one
    comes from a gradient function, given either here (``grad_fn``) or at each
    call as an extra argument, ``opt.update(g, state, params,
    grad_fn=jax.grad(loss))``, which takes precedence.
    :func:`dynopt.discrete_trajectory` passes ``grad_fn`` itself. ``params`` is
    required in ``update``.

    Args:
      learning_rate: :math:`\eta \ge 0`, a float, scalar array or schedule.
      grad_fn: optional ``params -> gradient`` (e.g. ``jax.grad(loss_fn)``).

    Returns:
      An :class:`~dynopt.Optimizer` with :class:`HeunState`.

    Raises:
      ValueError / TypeError: bad ``learning_rate``; ``grad_fn`` not callable;
        in ``update``, no gradient function or no ``params``.

    Example:
      >>> import dynopt, jax, jax.numpy as jnp
      >>> loss = lambda x: 0.5 * jnp.sum(x**2)
      >>> opt = dynopt.heun(0.1, grad_fn=jax.grad(loss))
      >>> x = jnp.ones(1)
      >>> u, _ = opt.update(jax.grad(loss)(x), opt.init(x), x)
      >>> u  # -(0.1 - 0.1**2 / 2) x
      Array([-0.095], dtype=float32)

    References:
      E. Hairer, S. Norsett, G. Wanner, *Solving Ordinary Differential
      Equations I*, Springer 1993, sec. II.1.
    """
    fn = "heun"
    check_learning_rate(fn, learning_rate)
    if grad_fn is not None and not callable(grad_fn):
        raise TypeError(f"{fn}: `grad_fn` must be callable or None, got {grad_fn!r}")

    return build(
        Spec(
            name="heun",
            scheme=Heun(),
            values={"learning_rate": learning_rate},
            make_flow=lambda hp: GradientFlow(),
            clock=LR_CLOCK,
            to_ode=lambda hp: {"step": jnp.asarray(hp["learning_rate"])},
            coefficients=lambda hp: {"h": hp["learning_rate"]},
            state_type=HeunState,
            grad_fn=grad_fn,
        )
    )
