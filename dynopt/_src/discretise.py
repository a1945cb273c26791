r"""An optimiser from a flow, a scheme and a clock: :func:`dynopt.discretise`.

Every dynopt optimiser is built here: the scheme's ``step`` is the update, the
flow and the clock's step are functions of the hyperparameters held in the
state, and the returned :class:`~dynopt.Optimizer` carries its
:class:`~dynopt.Dynamics`. The named factories (:func:`dynopt.sgd`,
:func:`dynopt.momentum`, ...) map their usual hyperparameters onto a flow, a
clock step and the scheme's coefficients.

Hyperparameters given as Python numbers or schedules live in the state as array
leaves (``state.hyperparams``), so changing them with
:func:`dynopt.set_hyperparams` never recompiles a jitted step; a schedule's
current value is recorded there at every step. Hyperparameters given as jax
arrays (this is how ``optax.inject_hyperparams`` passes them) are used as given
and recorded in the state too, so that the state has the same structure
whichever way a value comes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .base import (
    Optimizer,
    StepScalars,
    as_hyperparam,
    check_learning_rate,
    clock_start,
    concrete_value,
    hyperparams_dict,
)
from .dynamics import Clock, Dynamics
from .schemes import Scheme

tree_map = jax.tree_util.tree_map


class DiscretisedState(NamedTuple):
    """State of an optimiser built by :func:`dynopt.discretise`.

    Attributes:
      count: number of steps taken (int32).
      time: ODE time ``t_k`` of the current iterate on the clock.
      hyperparams: dict of hyperparameter array leaves (``step_size`` and the
        flow's numeric constants).
      buffers: the scheme's buffers (e.g. ``velocity``), a dict.
    """

    count: jax.Array
    time: jax.Array
    hyperparams: dict
    buffers: dict


@dataclasses.dataclass(frozen=True)
class Spec:
    """How a factory maps its hyperparameters onto a flow, a clock and a scheme.

    Attributes:
      name: the method's name (function names in error messages, too).
      scheme: the scheme.
      values: hyperparameters as given (numbers, arrays, schedules).
      make_flow: ``hp -> flow`` (``hp`` a dict of values).
      clock: the clock; ``clock.step(hp)`` is the ODE time of one step.
      to_ode: ``hp -> dict`` of the flow's constants.
      coefficients: ``hp -> dict`` of the scheme's coefficients, or None for
        ``scheme.coefficients(flow, h)``.
      state_type: a NamedTuple with ``count``, ``time``, ``hyperparams`` and one
        field per buffer of the scheme, or None for :class:`DiscretisedState`.
      options: non-numeric options recorded in the dynamics.
      maximize: ascend instead of descend.
      accumulator_dtype: dtype of the buffers (None: the parameters').
      grad_fn: default gradient function for multi-stage schemes.
    """

    name: str
    scheme: Scheme
    values: dict
    make_flow: Callable[[dict], Any]
    clock: Clock
    to_ode: Callable[[dict], dict]
    coefficients: Callable[[dict], dict] | None = None
    state_type: type | None = None
    options: dict = dataclasses.field(default_factory=dict)
    maximize: bool = False
    accumulator_dtype: Any = None
    grad_fn: Callable | None = None


def optional(values: dict, **optional_values) -> dict:
    """``values`` plus the optional hyperparameters that are not None."""
    return {**values, **{k: v for k, v in optional_values.items() if v is not None}}


def or_zero(value):
    """An optional hyperparameter's value, 0.0 for None (off)."""
    return 0.0 if value is None else value


def _init_value(value):
    if isinstance(value, jax.Array):  # bound (inject_hyperparams): kept as given
        return value
    return as_hyperparam(value)


def current(values, state):
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


def preprocess(updates, params, maximize, hp, fn):
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
        s = StepScalars(wd=wd)
        updates = tree_map(lambda g, p: g + s.at(g)["wd"] * p, updates, params)
    return updates


def build(spec: Spec) -> Optimizer:
    """The :class:`~dynopt.Optimizer` that ``spec`` describes."""
    fn, scheme, values = spec.name, spec.scheme, spec.values
    # names a schedule drives: set_hyperparams refuses them
    scheduled = tuple(k for k, v in values.items() if callable(v))

    def make_state(count, time, hp, buffers):
        if spec.state_type is None:
            return DiscretisedState(count, time, hp, buffers)
        return spec.state_type(count=count, time=time, hyperparams=hp, **buffers)

    def get_buffers(state):
        if spec.state_type is None:
            return state.buffers
        fixed = ("count", "time", "hyperparams")
        return {k: getattr(state, k) for k in state._fields if k not in fixed}

    def init_fn(params):
        hp = {k: _init_value(v) for k, v in values.items()}
        flow = spec.make_flow(hp)
        buffers = scheme.init(flow, params, spec.accumulator_dtype)
        hp = hyperparams_dict(hp, scheduled)
        return make_state(hp=hp, buffers=buffers, **clock_start())

    def update_fn(updates, state, params=None, **extra_args):
        hp = current(values, state)
        g = preprocess(updates, params, spec.maximize, hp, fn)
        flow = spec.make_flow(hp)
        h = spec.clock.step(hp)
        if spec.coefficients is None:
            coefficients = scheme.coefficients(flow, h)
        else:
            coefficients = spec.coefficients(hp)
        grad_fn = extra_args.get("grad_fn", spec.grad_fn)
        grad_at = None
        if grad_fn is not None:

            def grad_at(x):
                return preprocess(grad_fn(x), x, spec.maximize, hp, fn)

        if scheme.stages > 1 and grad_fn is None:
            raise ValueError(
                f"{fn}: a gradient function is needed: pass `grad_fn` to {fn}() or "
                "to update(..., grad_fn=...), got None"
            )
        if scheme.stages > 1 and params is None:
            raise ValueError(f"{fn}: `params` must be given to update(), got None")
        delta, buffers = scheme.step(
            flow, coefficients, params, get_buffers(state), g, grad_at, state.count
        )
        new_state = make_state(
            count=optax.safe_increment(state.count),
            time=state.time + h.astype(state.time.dtype),
            hp=hyperparams_dict({k: hp[k] for k in values}, scheduled),
            buffers=buffers,
        )
        return delta, new_state

    dynamics = Dynamics(
        name=spec.name,
        scheme=scheme,
        clock=spec.clock,
        hyperparams=values,
        options={"maximize": spec.maximize, **spec.options},
        make_flow=spec.make_flow,
        to_ode=spec.to_ode,
    )
    # optax.chain keeps only the functions: they carry the dynamics too, for
    # dynopt.find_dynamics.
    init_fn.dynamics = update_fn.dynamics = dynamics
    return Optimizer(init_fn, update_fn, dynamics)


STEP_CLOCK = Clock("step_size", lambda hp: hp["step_size"], "t_{k+1} = t_k + h_k")


def _flow_constants(flow) -> dict:
    """The flow's numeric fields (its pytree leaves), by name; a weight decay
    only when it is not a plain zero (a zero term would need ``params``)."""
    out = {}
    for field in dataclasses.fields(flow):
        value = getattr(flow, field.name)
        if field.metadata.get("static", False) or value is None:
            continue
        if field.name == "weight_decay" and concrete_value(value) == 0:
            continue
        out[field.name] = value
    return out


def discretise(
    flow,
    scheme: Scheme,
    step_size: float | jax.Array | optax.Schedule,
    *,
    accumulator_dtype: Any | None = None,
    grad_fn: Callable | None = None,
) -> Optimizer:
    r"""The optimiser that advances ``flow`` by ``scheme`` with step ``step_size``.

    Each ``update`` takes the gradient :math:`\nabla f(x_k)` (optax's
    ``updates``) and returns :math:`x_{k+1} - x_k` for the scheme's step of size
    :math:`h_k` (the clock: :math:`t_{k+1} = t_k + h_k`); the scheme's other
    state (a velocity, ...) is kept in ``state.buffers``. ``step_size`` and the
    flow's numeric constants are hyperparameters held in the state (a flow's
    ``maximize`` and ``weight_decay`` act on the gradient as in
    :func:`dynopt.sgd`), so
    :func:`dynopt.set_hyperparams` changes them without recompiling, and
    ``opt.dynamics.at(state)`` gives the flow for the values held now.

    Args:
      flow: e.g. ``dynopt.GradientFlow()`` or ``dynopt.HeavyBallFlow(1.0)``.
      scheme: e.g. ``dynopt.RK4()``; it must support the flow's type.
      step_size: :math:`h \ge 0`: a float, a scalar array or an optax schedule.
      accumulator_dtype: dtype of the scheme's buffers (default: the
        parameters').
      grad_fn: ``params -> gradient`` for schemes with several stages (also
        accepted by ``update(..., grad_fn=...)``, which takes precedence).

    Returns:
      An :class:`~dynopt.Optimizer` with :class:`DiscretisedState`.

    Raises:
      TypeError: ``scheme`` is not a scheme, or does not support ``flow``.
      ValueError: a negative or non-finite ``step_size``.

    Example:
      >>> import dynopt, jax, jax.numpy as jnp
      >>> loss = lambda x: 0.5 * jnp.sum(x**2)
      >>> opt = dynopt.discretise(dynopt.GradientFlow(), dynopt.Heun(), 0.1)
      >>> x = jnp.ones(1)
      >>> u, _ = opt.update(jax.grad(loss)(x), opt.init(x), x, grad_fn=jax.grad(loss))
      >>> u  # -(h - h^2 / 2) x
      Array([-0.095], dtype=float32)
    """
    fn = "discretise"
    if not isinstance(scheme, Scheme):
        raise TypeError(f"{fn}: `scheme` must be a dynopt scheme, got {scheme!r}")
    scheme.check_flow(fn, flow)
    check_learning_rate(fn, step_size, name="step_size")
    if grad_fn is not None and not callable(grad_fn):
        raise TypeError(f"{fn}: `grad_fn` must be callable or None, got {grad_fn!r}")
    constants = _flow_constants(flow)
    values = {"step_size": step_size, **constants}

    def make_flow(hp):
        return eqx.tree_at(
            lambda f: [getattr(f, k) for k in constants],
            flow,
            [hp[k] for k in constants],
        )

    def to_ode(hp):
        return {"step": hp["step_size"], **{k: hp[k] for k in constants}}

    return build(
        Spec(
            name=scheme.name,
            scheme=scheme,
            values=values,
            make_flow=make_flow,
            clock=STEP_CLOCK,
            to_ode=to_ode,
            maximize=bool(getattr(flow, "maximize", False)),
            accumulator_dtype=accumulator_dtype,
            grad_fn=grad_fn,
        )
    )
