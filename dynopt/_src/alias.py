r"""SGD, momentum and Nesterov as discretisations of differential equations.

Each factory returns an :class:`~dynopt.Optimizer`: an
``optax.GradientTransformationExtraArgs`` (updates carry the minus sign and are
added with ``optax.apply_updates``) that also carries its
:class:`~dynopt.Dynamics`.

Hyperparameters given as Python numbers or schedules live in the state as array
leaves (``state.hyperparams``), so changing them with
:func:`dynopt.set_hyperparams` never recompiles a jitted step; a schedule's
current value is recorded there at every step. Hyperparameters given as jax
arrays (this is how ``optax.inject_hyperparams`` passes them) are used as given
and are not duplicated in the state.

``weight_decay`` and ``dampening`` default to ``None``: the term is left out of
the arithmetic and out of the state (a step that adds ``0 * p`` would read the
parameters for nothing). Any number, ``0.0`` included, makes it a leaf that can
be changed, swept or scheduled like the learning rate.

=====================  ==============================  =================
dynopt                 optax                           ODE
=====================  ==============================  =================
``sgd(lr)``            ``sgd(lr)``                     gradient flow
``momentum(lr, b)``    ``sgd(lr, momentum=b)``         heavy ball
``nesterov(lr, b)``    ``sgd(lr, b, nesterov=True)``   Hessian damped
=====================  ==============================  =================
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .base import (
    Clock,
    Dynamics,
    Optimizer,
    Scheme,
    as_hyperparam,
    check_choice,
    check_interval,
    check_learning_rate,
    check_nonnegative,
    clock_start,
    concrete_value,
    zeros_like_tree,
)
from .flows import GradientFlow, HeavyBallFlow, HessianDampedFlow
from .maps import momentum_to_ode

tree_map = jax.tree_util.tree_map


class SgdState(NamedTuple):
    """State of :func:`dynopt.sgd`.

    Attributes:
      count: number of steps taken (int32).
      time: ODE time ``t_k`` of the current iterate on the optimiser's clock.
      hyperparams: dict of hyperparameter array leaves (``learning_rate``, and
        ``weight_decay`` unless it is None).
    """

    count: jax.Array
    time: jax.Array
    hyperparams: dict


class MomentumState(NamedTuple):
    """State of :func:`dynopt.momentum` and :func:`dynopt.nesterov`.

    Attributes:
      count: number of steps taken (int32).
      time: ODE time ``t_k`` of the current iterate on the optimiser's clock.
      hyperparams: dict of hyperparameter array leaves (``learning_rate``,
        ``beta``, and ``dampening`` / ``weight_decay`` unless they are None).
      momentum: the buffer ``m`` (optax/PyTorch convention, ``m <- g + beta m``).
    """

    count: jax.Array
    time: jax.Array
    hyperparams: dict
    momentum: Any


EXPLICIT_EULER = Scheme(
    "explicit_euler", 1, "x_{k+1} = x_k - lr_k grad f(x_k); t_{k+1} = t_k + lr_k"
)
LEAPFROG = Scheme(
    "leapfrog",
    2,
    "V_{k+1/2} = beta V_{k-1/2} - lr grad f(x_k), x_{k+1} = x_k + V_{k+1/2} "
    "(velocity on half steps; order 2 from the half-step start, 1 from rest)",
)
LOOKAHEAD = Scheme(
    "lookahead",
    2,
    "x_{k+1} = x_k + beta (x_k - x_{k-1}) - lr grad f(x_k) "
    "- beta lr (grad f(x_k) - grad f(x_{k-1})) "
    "(order 2 for the Hessian-damped flow from the half-step start, 1 from rest)",
)
LR_CLOCK = Clock(
    "learning_rate", lambda hp: hp["learning_rate"], "t_{k+1} = t_k + lr_k"
)
SQRT_CLOCK = Clock(
    "sqrt_learning_rate",
    lambda hp: momentum_to_ode(
        hp["learning_rate"], hp["beta"], _or_zero(hp.get("dampening"))
    )[0],
    "t_{k+1} = t_k + gamma_k, gamma = sqrt(2 lr (1 - dampening) / (1 + beta))",
)


def _or_zero(value):
    """An optional hyperparameter's value, 0.0 for None (off)."""
    return 0.0 if value is None else value


def _optional(values: dict, **optional) -> dict:
    """``values`` plus the optional hyperparameters that are not None."""
    return {**values, **{k: v for k, v in optional.items() if v is not None}}


def _split(values: dict):
    """Separate hyperparameters kept in the state from those bound by the caller."""
    stored = {k: v for k, v in values.items() if not isinstance(v, jax.Array)}
    bound = {k: v for k, v in values.items() if isinstance(v, jax.Array)}
    return stored, bound


def _current(values, state):
    """Hyperparameters for this step: state leaves, bound arrays, schedules."""
    hp = {}
    for k, v in values.items():
        if callable(v):
            hp[k] = as_hyperparam(v, state.count)
        elif isinstance(v, jax.Array):
            hp[k] = v
        else:
            hp[k] = state.hyperparams[k]
    return hp


def _preprocess(updates, params, maximize, hp, fn):
    """PyTorch order: negate for ``maximize``, then add coupled weight decay.

    The decay is applied whenever ``hp`` holds one (its value may change between
    steps); ``weight_decay=None`` at construction leaves it out statically.
    """
    if maximize:
        updates = tree_map(jnp.negative, updates)
    wd = hp.get("weight_decay")
    if wd is not None:
        if params is None:
            raise ValueError(
                f"{fn}: `weight_decay` needs `params` in update(), got params=None"
            )
        updates = tree_map(lambda g, p: g + wd.astype(g.dtype) * p, updates, params)
    return updates


def _check_optional_nonnegative(fn, name, value):
    if value is not None:
        check_nonnegative(fn, name, value)


def _init_hyperparams(values):
    stored, _ = _split(values)
    return {k: as_hyperparam(v) for k, v in stored.items()}


def sgd(
    learning_rate: float | jax.Array | optax.Schedule,
    *,
    weight_decay: float | jax.Array | optax.Schedule | None = None,
    maximize: bool = False,
) -> Optimizer:
    r"""Gradient descent: explicit Euler on the gradient flow.

    .. math:: x' = -\nabla f(x), \qquad x_{k+1} = x_k - \eta_k \nabla f(x_k),
              \qquad t_{k+1} = t_k + \eta_k.

    The error against the flow at fixed time is first order in :math:`\eta`;
    GD follows the modified flow :math:`-\nabla(f + \frac{\eta}{4}|\nabla f|^2)`
    to second order.

    Args:
      learning_rate: :math:`\eta \ge 0`: a float, a scalar array or an optax
        schedule of the step count.
      weight_decay: coupled L2 coefficient :math:`w \ge 0` added to the
        gradient, :math:`g + w x` (PyTorch's ``weight_decay``): a float, array or
        schedule, kept in the state; needs ``params`` in ``update``. ``None``
        (default): no decay term at all.
      maximize: ascend (PyTorch's ``maximize``).

    Returns:
      An :class:`~dynopt.Optimizer` with :class:`SgdState`.

    Raises:
      ValueError / TypeError: for a negative, non-finite or non-scalar rate.

    Example:
      >>> import dynopt, jax.numpy as jnp, optax
      >>> opt = dynopt.sgd(0.1)
      >>> state = opt.init(jnp.ones(2))
      >>> u, state = opt.update(jnp.ones(2), state)
      >>> u
      Array([-0.1, -0.1], dtype=float32)

    References:
      Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive stochastic
      gradient algorithms*, ICML 2017, arXiv:1511.06251.
    """
    fn = "sgd"
    check_learning_rate(fn, learning_rate)
    _check_optional_nonnegative(fn, "weight_decay", weight_decay)
    values = _optional({"learning_rate": learning_rate}, weight_decay=weight_decay)

    def init_fn(params):
        del params
        return SgdState(
            **clock_start(),
            hyperparams=_init_hyperparams(values),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        hp = _current(values, state)
        g = _preprocess(updates, params, maximize, hp, fn)
        lr = hp["learning_rate"]
        new_updates = tree_map(lambda x: (-lr).astype(x.dtype) * x, g)
        stored, _ = _split(values)
        new_state = SgdState(
            count=optax.safe_increment(state.count),
            time=state.time + LR_CLOCK.step(hp).astype(state.time.dtype),
            hyperparams={k: hp[k] for k in stored},
        )
        return new_updates, new_state

    def make_flow(learning_rate, weight_decay=None, maximize=False):
        del learning_rate
        return GradientFlow(maximize=maximize, weight_decay=_or_zero(weight_decay))

    def to_ode(learning_rate, weight_decay=None):
        del weight_decay
        return {"step": jnp.asarray(learning_rate)}

    dynamics = Dynamics(
        name="sgd",
        scheme=EXPLICIT_EULER,
        clock=LR_CLOCK,
        hyperparams=values,
        options={"maximize": maximize},
        make_flow=make_flow,
        to_ode=to_ode,
    )
    return Optimizer(init_fn, update_fn, dynamics)


def momentum(
    learning_rate: float | jax.Array | optax.Schedule,
    beta: float | jax.Array = 0.9,
    *,
    dampening: float | jax.Array | None = None,
    nesterov: bool = False,
    init_velocity: str = "zero",
    weight_decay: float | jax.Array | optax.Schedule | None = None,
    maximize: bool = False,
    accumulator_dtype: Any | None = None,
) -> Optimizer:
    r"""Heavy-ball momentum: leapfrog on the damped heavy-ball ODE.

    .. math:: x'' + \lambda x' + \nabla f(x) = 0

    Scheme (optax / PyTorch convention, identical iterates to
    ``optax.sgd(lr, momentum=beta)`` and ``torch.optim.SGD``):

    .. math:: m_{k+1} = \beta m_k + (1-d)\,g_k, \qquad x_{k+1} = x_k - \eta m_{k+1}

    which is leapfrog with step :math:`\gamma = \sqrt{2\eta(1-d)/(1+\beta)}` and
    friction :math:`\lambda = 2(1-\beta)/((1+\beta)\gamma)`; the clock is
    :math:`t_k = \sum \gamma_j`.

    Starts (``init_velocity``):

    * ``"zero"`` (default, optax/PyTorch): the buffer starts at zero; PyTorch's
      first step copies the gradient without dampening. First order in
      :math:`\gamma` against the ODE started at rest.
    * ``"half_step"``: the velocity starts where leapfrog wants it, at
      :math:`t = -\gamma/2`: :math:`V_{-1/2} = \frac{\gamma^2}{2}\nabla f(x_0)`,
      i.e. :math:`m_0 = -\nabla f(x_0)/(1+\beta)` so that the first step is
      :math:`m_1 = g_0/(1+\beta)`. Second order.

    Args:
      learning_rate: :math:`\eta \ge 0`, a float, scalar array or schedule.
      beta: momentum :math:`\beta \in [0, 1)`.
      dampening: PyTorch's dampening :math:`d \in [0, 1)` (not with Nesterov),
        kept in the state; ``None`` (default) is ``d = 0`` left out of the
        arithmetic, so it cannot be changed later.
      nesterov: use Nesterov's look-ahead (see :func:`dynopt.nesterov`).
      init_velocity: ``"zero"`` or ``"half_step"``.
      weight_decay: coupled L2 coefficient (PyTorch's ``weight_decay``), as in
        :func:`dynopt.sgd`: ``None`` (default) for none, else a state leaf.
      maximize: ascend (PyTorch's ``maximize``).
      accumulator_dtype: dtype of the buffer (default: the parameters'); e.g.
        ``jnp.float32`` for bf16 parameters.

    Returns:
      An :class:`~dynopt.Optimizer` with :class:`MomentumState`.

    Raises:
      ValueError: ``learning_rate < 0``, ``beta`` or ``dampening`` outside
        ``[0, 1)``, ``nesterov`` with dampening, unknown ``init_velocity``.

    Example:
      >>> import dynopt
      >>> opt = dynopt.momentum(0.1, 0.9)
      >>> type(opt.dynamics.flow()).__name__, float(opt.dynamics.flow().friction)
      ('HeavyBallFlow', 0.32444...)

    References:
      B. Polyak, *Some methods of speeding up the convergence of iteration
      methods*, 1964. I. Sutskever et al., *On the importance of initialization
      and momentum in deep learning*, ICML 2013.
    """
    fn = "nesterov" if nesterov is True else "momentum"
    return _momentum_family(
        fn,
        learning_rate,
        beta,
        dampening,
        nesterov,
        init_velocity,
        weight_decay,
        maximize,
        accumulator_dtype,
        "hvp",
    )


def nesterov(
    learning_rate: float | jax.Array | optax.Schedule,
    beta: float | jax.Array = 0.9,
    *,
    dampening: float | jax.Array | None = None,
    init_velocity: str = "zero",
    weight_decay: float | jax.Array | optax.Schedule | None = None,
    maximize: bool = False,
    accumulator_dtype: Any | None = None,
    hessian: str = "hvp",
) -> Optimizer:
    r"""Nesterov's momentum: the look-ahead discretisation of a Hessian-damped ODE.

    Same buffer as :func:`dynopt.momentum`, but the step uses the look-ahead
    ``x_{k+1} = x_k - lr (g_k + beta m_{k+1})`` (optax/PyTorch). As a two-step
    recursion,

    .. math:: x_{k+1} = x_k + \beta(x_k - x_{k-1}) - \eta\nabla f(x_k)
              - \beta\eta(\nabla f(x_k) - \nabla f(x_{k-1})),

    whose gradient correction is Hessian damping: with the heavy-ball
    :math:`\gamma, \lambda` it is a second-order scheme for the
    high-resolution ODE

    .. math:: x'' + (\lambda + \beta\gamma\,\nabla^2 f(x))\,x' + \nabla f(x) = 0.

    ``init_velocity="half_step"`` makes the first step
    :math:`x_1 = x_0 - \frac{\gamma^2}{2}\nabla f(x_0)` (buffer
    :math:`m_1 = -g_0/(1+\beta)`), which is what second order needs.

    Args:
      learning_rate: :math:`\eta \ge 0`, a float, scalar array or schedule.
      beta: momentum :math:`\beta \in [0, 1)`.
      dampening: None or 0 (PyTorch forbids dampening with Nesterov).
      init_velocity: ``"zero"`` or ``"half_step"``.
      weight_decay, maximize, accumulator_dtype: as in :func:`dynopt.momentum`.
      hessian: how the flow computes Hessian-vector products: ``"hvp"`` or
        ``"finite_difference"``.

    Example:
      >>> import dynopt
      >>> float(dynopt.nesterov(0.1, 0.9).dynamics.flow().hessian_damping)
      0.29199...

    References:
      Y. Nesterov, *A method for solving a convex programming problem with
      convergence rate O(1/k^2)*, 1983. B. Shi, S. Du, M. Jordan, W. Su,
      *Understanding the acceleration phenomenon via high-resolution differential
      equations*, Math. Prog. 2021, arXiv:1810.08907.
    """
    return _momentum_family(
        "nesterov",
        learning_rate,
        beta,
        dampening,
        True,
        init_velocity,
        weight_decay,
        maximize,
        accumulator_dtype,
        hessian,
    )


def _momentum_family(
    fn,
    learning_rate,
    beta,
    dampening,
    nesterov,
    init_velocity,
    weight_decay,
    maximize,
    accumulator_dtype,
    hessian,
) -> Optimizer:
    check_learning_rate(fn, learning_rate)
    check_interval(fn, "beta", beta, 0.0, 1.0)
    if dampening is not None:
        check_interval(fn, "dampening", dampening, 0.0, 1.0)
    _check_optional_nonnegative(fn, "weight_decay", weight_decay)
    check_choice(fn, "init_velocity", init_velocity, ("zero", "half_step"))
    check_choice(fn, "hessian", hessian, ("hvp", "finite_difference"))
    if not isinstance(nesterov, bool):
        raise TypeError(f"{fn}: `nesterov` must be a bool, got {nesterov!r}")
    d_value = concrete_value(dampening)  # None when traced: cannot be checked
    nonzero_d = d_value is not None and d_value != 0
    if nesterov and nonzero_d:
        raise ValueError(
            f"{fn}: `dampening` must be 0 with Nesterov momentum "
            f"(as in torch.optim.SGD), got {dampening!r}"
        )
    if init_velocity == "half_step" and nonzero_d:
        raise ValueError(
            f"{fn}: `init_velocity='half_step'` needs `dampening` = 0, "
            f"got {dampening!r}"
        )
    values = _optional(
        {"learning_rate": learning_rate, "beta": beta},
        dampening=dampening,
        weight_decay=weight_decay,
    )
    # Without dampening and from the zero start the gradient's coefficient is 1 at
    # every step: optax's ``g + beta m`` exactly (the same fused multiply-add where
    # the backend contracts one). A dampening leaf, even 0, keeps the general form
    # so that changing it takes effect.
    plain_buffer = init_velocity == "zero" and dampening is None

    def init_fn(params):
        return MomentumState(
            **clock_start(),
            hyperparams=_init_hyperparams(values),
            momentum=zeros_like_tree(params, accumulator_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        hp = _current(values, state)
        lr, b = hp["learning_rate"], hp["beta"]
        d = hp.get("dampening", jnp.zeros_like(b))
        g = _preprocess(updates, params, maximize, hp, fn)
        first = state.count == 0
        if init_velocity == "half_step":
            # m_1 = g_0 / (1 + beta) (heavy ball), -g_0 / (1 + beta) (look-ahead)
            c_first = (-1.0 if nesterov else 1.0) / (1 + b)
        else:
            c_first = jnp.ones_like(b)  # PyTorch: the first step is not dampened
        c = jnp.where(first, c_first, 1 - d)

        def buffer(gi, mi):
            dt = mi.dtype
            gi = gi.astype(dt)
            if plain_buffer:  # c == 1 at every step: skip a multiply per leaf
                return gi + b.astype(dt) * mi
            return c.astype(dt) * gi + b.astype(dt) * mi

        new_m = tree_map(buffer, g, state.momentum)
        if nesterov:
            direction = tree_map(
                lambda gi, mi: gi.astype(mi.dtype) + b.astype(mi.dtype) * mi, g, new_m
            )
        else:
            direction = new_m
        new_updates = tree_map(
            lambda u, p: (-lr).astype(u.dtype) * u, direction, updates
        )
        stored, _ = _split(values)
        new_state = MomentumState(
            count=optax.safe_increment(state.count),
            time=state.time + SQRT_CLOCK.step(hp).astype(state.time.dtype),
            hyperparams={k: hp[k] for k in stored},
            momentum=new_m,
        )
        return new_updates, new_state

    def to_ode(learning_rate, beta, dampening=None, weight_decay=None):
        del weight_decay
        gamma, friction = momentum_to_ode(learning_rate, beta, _or_zero(dampening))
        out = {"gamma": gamma, "friction": friction}
        if nesterov:
            out["hessian_damping"] = jnp.asarray(beta) * gamma
        return out

    def make_flow(learning_rate, beta, dampening=None, weight_decay=None, **options):
        ode = to_ode(learning_rate, beta, dampening)
        common = dict(
            friction=ode["friction"],
            maximize=options["maximize"],
            weight_decay=_or_zero(weight_decay),
        )
        if nesterov:
            return HessianDampedFlow(
                **common, hessian_damping=ode["hessian_damping"], hessian=hessian
            )
        return HeavyBallFlow(**common)

    dynamics = Dynamics(
        name=fn,
        scheme=LOOKAHEAD if nesterov else LEAPFROG,
        clock=SQRT_CLOCK,
        hyperparams=values,
        options={"maximize": maximize, "init_velocity": init_velocity},
        make_flow=make_flow,
        to_ode=to_ode,
    )
    return Optimizer(init_fn, update_fn, dynamics)
