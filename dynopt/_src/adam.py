r"""Adam as a discretisation of an adaptive, bias-corrected gradient flow.

With ODE step ``h = lr`` and rates :math:`a = (1-\beta_1)/h`,
:math:`b = (1-\beta_2)/h`, Adam's moments are explicit Euler steps of
:math:`m' = a(g - m)`, :math:`v' = b(g^2 - v)`, and its parameter step is an
Euler step of :math:`x' = -\hat m / (\sqrt{\hat v} + \epsilon)` taken with the
moments just updated (a semi-implicit, symplectic-Euler-like order), where the
bias corrections :math:`1 - \beta^k` are the flow's :math:`1 - e^{-a t}`,
:math:`1 - e^{-b t}` at :math:`t = k h` to first order in ``h``.

Iterates equal ``optax.adam`` (same arithmetic; the tests check float64 to
round-off and float32 to one rounding per operation).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .alias import (
    LR_CLOCK,
    _check_optional_nonnegative,
    _current,
    _init_hyperparams,
    _optional,
    _or_zero,
    _preprocess,
    _split,
)
from .base import (
    Dynamics,
    Optimizer,
    Scheme,
    check_interval,
    check_learning_rate,
    check_nonnegative,
    clock_start,
    zeros_like_tree,
)
from .flows import objective

tree_map = jax.tree_util.tree_map


class AdamState(NamedTuple):
    """State of :func:`dynopt.adam`.

    Attributes:
      count: number of steps taken (int32).
      time: ODE time ``t_k = sum_j lr_j`` of the current iterate.
      hyperparams: dict of hyperparameter array leaves (``learning_rate``,
        ``b1``, ``b2``, ``eps``, ``eps_root``, and ``weight_decay`` unless it is
        None) given as numbers or schedules.
      mu: first moment ``m`` (EMA of gradients).
      nu: second moment ``v`` (EMA of squared gradients).
    """

    count: jax.Array
    time: jax.Array
    hyperparams: dict
    mu: Any
    nu: Any


SEMI_IMPLICIT_EULER = Scheme(
    "semi_implicit_euler",
    1,
    "m_{k+1} = b1 m_k + (1-b1) g_k, v_{k+1} = b2 v_k + (1-b2) g_k^2, "
    "x_{k+1} = x_k - lr mhat_{k+1} / (sqrt(vhat_{k+1} + eps_root) + eps)",
)


@dataclasses.dataclass(frozen=True)
class AdamFlow:
    r"""The continuous-time model of Adam on ``(x, m, v)``.

    .. math:: x' = -\frac{m / (1 - e^{-a t})}{\sqrt{v / (1 - e^{-b t})} + \epsilon},
              \quad m' = a(\nabla f(x) - m), \quad v' = b(\nabla f(x)^2 - v),

    started at ``m = v = 0``; at ``t = 0`` the bias-corrected moments take their
    limits ``g`` and ``g^2``.

    Attributes:
      a: first-moment rate :math:`(1 - \beta_1)/\mathrm{lr}`.
      b: second-moment rate :math:`(1 - \beta_2)/\mathrm{lr}`.
      eps: :math:`\epsilon` of the denominator.
      maximize, weight_decay: as in :func:`dynopt.objective`.

    References:
      A. Barakat, P. Bianchi, *Convergence and dynamical behavior of the ADAM
      algorithm for nonconvex stochastic optimization*, SIAM J. Optim. 2021,
      arXiv:1810.02263.
    """

    a: Any
    b: Any
    eps: Any = 1e-8
    maximize: bool = False
    weight_decay: Any = 0.0

    order: int = dataclasses.field(default=1, init=False)

    def initial_state(self, params):
        zeros = tree_map(jnp.zeros_like, params)
        return (params, zeros, zeros)

    def position(self, y):
        return y[0]

    def vector_field(self, loss_fn):
        grad = jax.grad(
            objective(loss_fn, maximize=self.maximize, weight_decay=self.weight_decay)
        )

        def field(t, y, args):
            x, m, v = y
            g = grad(x)
            at_start = t <= 0
            # 1 - e^{-a t} without cancellation; guarded so t = 0 gives no 0/0
            cm = -jnp.expm1(-self.a * jnp.where(at_start, 1.0, t))
            cv = -jnp.expm1(-self.b * jnp.where(at_start, 1.0, t))

            def dx(gi, mi, vi):
                m_hat = jnp.where(at_start, gi, mi / cm)
                v_hat = jnp.where(at_start, gi * gi, vi / cv)
                return -m_hat / (jnp.sqrt(v_hat) + self.eps)

            return (
                tree_map(dx, g, m, v),
                tree_map(lambda gi, mi: self.a * (gi - mi), g, m),
                tree_map(lambda gi, vi: self.b * (gi * gi - vi), g, v),
            )

        return field


def adam(
    learning_rate: float | jax.Array | optax.Schedule,
    b1: float | jax.Array = 0.9,
    b2: float | jax.Array = 0.999,
    eps: float | jax.Array = 1e-8,
    eps_root: float | jax.Array = 0.0,
    *,
    weight_decay: float | jax.Array | optax.Schedule | None = None,
    maximize: bool = False,
    accumulator_dtype: Any | None = None,
) -> Optimizer:
    r"""Adam: a semi-implicit Euler step of an adaptive gradient flow.

    .. math:: m_{k+1} = \beta_1 m_k + (1-\beta_1) g_k, \quad
              v_{k+1} = \beta_2 v_k + (1-\beta_2) g_k^2,

    .. math:: x_{k+1} = x_k - \eta\,\frac{m_{k+1}/(1-\beta_1^{k+1})}
              {\sqrt{v_{k+1}/(1-\beta_2^{k+1}) + \epsilon_r} + \epsilon}.

    Clock: ``t_{k+1} = t_k + lr_k``; the flow is :class:`AdamFlow` with
    :math:`a = (1-\beta_1)/\eta`, :math:`b = (1-\beta_2)/\eta`. Iterates equal
    ``optax.adam(lr, b1, b2, eps, eps_root)``.

    Args:
      learning_rate: :math:`\eta \ge 0`: a float, a scalar array or a schedule.
      b1: first-moment decay :math:`\beta_1 \in [0, 1)`.
      b2: second-moment decay :math:`\beta_2 \in [0, 1)`.
      eps: :math:`\epsilon \ge 0` added to the root.
      eps_root: :math:`\epsilon_r \ge 0` added inside the root.
      weight_decay: coupled L2 coefficient added to the gradient (PyTorch's
        ``Adam(weight_decay=...)``), kept in the state; needs ``params`` in
        ``update``. ``None`` (default): no decay term.
      maximize: ascend.
      accumulator_dtype: dtype of both moments (default: the parameters'); e.g.
        ``jnp.float32`` for bf16 parameters.

    Returns:
      An :class:`~dynopt.Optimizer` with :class:`AdamState`.

    Raises:
      ValueError / TypeError: a rate, decay or epsilon outside its range or
        not a scalar.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> opt = dynopt.adam(0.1)
      >>> state = opt.init(jnp.zeros(2))
      >>> u, state = opt.update(jnp.array([1.0, -2.0]), state)
      >>> u
      Array([-0.1,  0.1], dtype=float32)

    References:
      D. Kingma, J. Ba, *Adam: A method for stochastic optimization*, ICLR 2015,
      arXiv:1412.6980. A. Barakat, P. Bianchi, *Convergence and dynamical
      behavior of the ADAM algorithm for nonconvex stochastic optimization*,
      SIAM J. Optim. 2021, arXiv:1810.02263.
    """
    fn = "adam"
    check_learning_rate(fn, learning_rate)
    check_interval(fn, "b1", b1, 0.0, 1.0)
    check_interval(fn, "b2", b2, 0.0, 1.0)
    check_nonnegative(fn, "eps", eps)
    check_nonnegative(fn, "eps_root", eps_root)
    _check_optional_nonnegative(fn, "weight_decay", weight_decay)
    if not isinstance(maximize, bool):
        raise TypeError(f"{fn}: `maximize` must be a bool, got {maximize!r}")
    values = _optional(
        {
            "learning_rate": learning_rate,
            "b1": b1,
            "b2": b2,
            "eps": eps,
            "eps_root": eps_root,
        },
        weight_decay=weight_decay,
    )

    def init_fn(params):
        return AdamState(
            **clock_start(),
            hyperparams=_init_hyperparams(values),
            mu=zeros_like_tree(params, accumulator_dtype),
            nu=zeros_like_tree(params, accumulator_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        hp = _current(values, state)
        lr, d1, d2 = hp["learning_rate"], hp["b1"], hp["b2"]
        g = _preprocess(updates, params, maximize, hp, fn)
        count = optax.safe_increment(state.count)
        # optax's order of operations, so that the iterates agree to round-off
        mu = tree_map(
            lambda gi, mi: (
                (1 - d1).astype(mi.dtype) * gi.astype(mi.dtype)
                + d1.astype(mi.dtype) * mi
            ),
            g,
            state.mu,
        )
        nu = tree_map(
            lambda gi, vi: (
                (1 - d2).astype(vi.dtype) * jnp.square(gi.astype(vi.dtype))
                + d2.astype(vi.dtype) * vi
            ),
            g,
            state.nu,
        )
        # 1 - beta^k in the hyperparameters' precision (bf16 would round it to 0)
        c1 = 1 - d1**count
        c2 = 1 - d2**count

        def step(mi, vi, p):
            dt = mi.dtype
            m_hat = mi / c1.astype(dt)
            v_hat = vi / c2.astype(dt)
            u = m_hat / (
                jnp.sqrt(v_hat + hp["eps_root"].astype(dt)) + hp["eps"].astype(dt)
            )
            return (-lr).astype(u.dtype) * u

        new_updates = tree_map(step, mu, nu, updates)
        stored, _ = _split(values)
        new_state = AdamState(
            count=count,
            time=state.time + LR_CLOCK.step(hp).astype(state.time.dtype),
            hyperparams={k: hp[k] for k in stored},
            mu=mu,
            nu=nu,
        )
        return new_updates, new_state

    def to_ode(learning_rate, b1, b2, eps=1e-8, eps_root=0.0, weight_decay=None):
        del eps_root, weight_decay
        lr = jnp.asarray(learning_rate)
        return {"step": lr, "a": (1 - b1) / lr, "b": (1 - b2) / lr, "eps": eps}

    def make_flow(
        learning_rate, b1, b2, eps=1e-8, eps_root=0.0, weight_decay=None, **options
    ):
        ode = to_ode(learning_rate, b1, b2, eps, eps_root)
        return AdamFlow(
            a=ode["a"],
            b=ode["b"],
            eps=ode["eps"],
            maximize=options["maximize"],
            weight_decay=_or_zero(weight_decay),
        )

    dynamics = Dynamics(
        name="adam",
        scheme=SEMI_IMPLICIT_EULER,
        clock=LR_CLOCK,
        hyperparams=values,
        options={"maximize": maximize},
        make_flow=make_flow,
        to_ode=to_ode,
    )
    return Optimizer(init_fn, update_fn, dynamics)
