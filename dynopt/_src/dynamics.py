r"""What an optimiser discretises: its flow, scheme and clock, read from its state.

:class:`Dynamics` is attached to every optimiser :func:`dynopt.discretise`
builds (``opt.dynamics``). The flow's constants and the clock's step are
functions of the hyperparameters, so :meth:`Dynamics.at` gives them for the
values a state holds now: after :func:`dynopt.set_hyperparams`, during a
schedule, under ``optax.inject_hyperparams``. :func:`find_dynamics` finds the
dynamics of a transform wrapped by ``optax.chain`` or
``optax.inject_hyperparams``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import optax


@dataclasses.dataclass(frozen=True)
class Clock:
    """Maps optimiser steps to ODE time: ``t_{k+1} = t_k + h_k``.

    Attributes:
      name: ``"learning_rate"`` (``h_k = lr_k``, SGD), ``"sqrt_learning_rate"``
        (``h_k = gamma_k``, momentum methods, NAG-C) or ``"step_size"``
        (:func:`dynopt.discretise`: ``h_k`` is the given step).
      step: function of the hyperparameter dict giving ``h_k``.
      formula: the rule in words.
    """

    name: str
    step: Callable[[Mapping[str, Any]], jax.Array]
    formula: str


class DynamicsAt(NamedTuple):
    """The dynamics of an optimiser for the hyperparameters a state holds.

    Attributes:
      flow: the flow (an ``equinox.Module``) with the constants of these values.
      ode_constants: the flow's constants and the clock's step, as a dict.
      step_size: the clock's step ``h`` (ODE time per optimiser step) now.
      time: the ODE time ``t_k`` of the current iterate (the state's clock).
      hyperparams: the hyperparameter values read from the state.
    """

    flow: Any
    ode_constants: dict
    step_size: jax.Array
    time: jax.Array
    hyperparams: dict


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """What an optimiser discretises and how.

    Attributes:
      name: the method's name, shared with :func:`dynopt.stability_limit`
        (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"nag_c"``,
        ``"heun"``, or the scheme's name for :func:`dynopt.discretise`).
      scheme: the scheme (an ``equinox.Module``) whose ``step`` is the update.
      clock: the :class:`Clock`.
      hyperparams: the hyperparameters the optimiser was built with (floats,
        arrays or schedules).
      options: the non-numeric options (``init_velocity``, ``maximize``, ...).
      make_flow: builds the flow from a dict of hyperparameter values.
      to_ode: maps a dict of hyperparameter values to the flow's constants
        (e.g. ``{"gamma": ..., "friction": ...}``).
    """

    name: str
    scheme: Any
    clock: Clock
    hyperparams: Mapping[str, Any]
    options: Mapping[str, Any]
    make_flow: Callable[[dict], Any]
    to_ode: Callable[[dict], dict]

    def initial_hyperparams(self) -> dict:
        """Hyperparameter values at step 0 (schedules evaluated at 0)."""
        return {k: v(0) if callable(v) else v for k, v in self.hyperparams.items()}

    @property
    def order(self) -> int:
        """The global order against the optimiser's own flow, for its start.

        Declared by the scheme (e.g. 1 for momentum from the zero buffer, 2
        from ``init_velocity="half_step"``) and measured by the order tests.
        """
        return self.scheme.order_for(self.flow())

    def flow(self, **overrides):
        """The flow for the given (default: initial) hyperparameters.

        Example: ``dynopt.momentum(0.1, 0.9).dynamics.flow()`` is a
        :class:`~dynopt.HeavyBallFlow` with friction ``2 (1 - beta) / ((1 + beta)
        gamma)``.
        """
        return self.make_flow({**self.initial_hyperparams(), **overrides})

    def ode_constants(self, **overrides) -> dict:
        """The flow's constants (step ``gamma``, friction, ...) for hyperparameters."""
        return self.to_ode({**self.initial_hyperparams(), **overrides})

    def step_size(self, **overrides) -> jax.Array:
        """The clock's step ``h`` (ODE time per optimiser step)."""
        return self.clock.step({**self.initial_hyperparams(), **overrides})

    def at(self, state) -> DynamicsAt:
        """The flow, ODE constants and clock for the hyperparameters in ``state``.

        ``state`` is the optimiser's state or any nest that holds it
        (``optax.chain``, ``optax.inject_hyperparams``,
        :func:`dynopt.master_weights`). Hyperparameters driven by a schedule
        hold the value the last step used.

        Raises:
          ValueError: ``state`` holds no state of this optimiser.

        Example:
          >>> import dynopt, jax.numpy as jnp
          >>> opt = dynopt.momentum(0.1, 0.9)
          >>> state = dynopt.set_hyperparams(
          ...     opt.init(jnp.zeros(2)), learning_rate=0.05, beta=0.95)
          >>> round(float(opt.dynamics.at(state).flow.friction), 4)
          0.2265
        """
        found = find_state(state, tuple(self.hyperparams))
        if found is None:
            raise ValueError(
                f"Dynamics.at: `state` must hold a state of this {self.name!r} "
                f"optimiser (a NamedTuple with count, time and hyperparams "
                f"{sorted(self.hyperparams)}), got {type(state).__name__}"
            )
        hp = dict(found.hyperparams)
        for k, v in self.hyperparams.items():
            if k not in hp:  # not stored: a bound value
                hp[k] = v
        return DynamicsAt(
            flow=self.make_flow(hp),
            ode_constants=self.to_ode(hp),
            step_size=self.clock.step(hp),
            time=found.time,
            hyperparams=hp,
        )


def find_first(state, match: Callable[[Any], bool]):
    """The first node of a nested state (tuples, lists, NamedTuples) that ``match``es.

    Depth first, as ``optax.chain`` and ``inject_hyperparams`` nest their states;
    None when no node matches.
    """
    if match(state):
        return state
    if isinstance(state, tuple | list):
        for child in state:
            found = find_first(child, match)
            if found is not None:
                return found
    return None


def find_state(state, names: tuple[str, ...] = ()):
    """The first NamedTuple in ``state`` with count, time and these hyperparams."""

    def match(s):
        if not (isinstance(s, tuple) and hasattr(s, "_fields")):
            return False
        fields = s._fields
        return (
            "hyperparams" in fields
            and "time" in fields
            and "count" in fields
            and isinstance(s.hyperparams, dict)
            and set(names) <= set(s.hyperparams)
        )

    return find_first(state, match)


def _closure_values(fn):
    cells = getattr(fn, "__closure__", None) or ()
    names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    out = {}
    for name, cell in zip(names, cells):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell
            pass
    return out


def find_dynamics(transform, _depth: int = 0) -> Dynamics | None:
    """The :class:`Dynamics` of a transform, looking through optax's wrappers.

    Returns ``transform.dynamics`` when it has one (dynopt optimisers,
    :func:`dynopt.flat_optimizer`, :func:`dynopt.master_weights`); otherwise
    looks into the closures of ``optax.chain`` (the first member that has
    dynamics: a dynopt ``update`` function carries them too),
    ``optax.inject_hyperparams`` (the dynamics of the inner factory built with
    the given values and schedules) and ``optax.with_extra_args_support``.
    ``None`` when no dynopt optimiser is inside.

    Example:
      >>> import dynopt, optax
      >>> tx = optax.chain(optax.clip(1.0), dynopt.momentum(0.1, 0.9))
      >>> dynopt.find_dynamics(tx).name
      'momentum'
      >>> tx = optax.inject_hyperparams(dynopt.sgd)(learning_rate=0.1)
      >>> dynopt.find_dynamics(tx).name
      'sgd'
    """
    dynamics = getattr(transform, "dynamics", None)
    if isinstance(dynamics, Dynamics):
        return dynamics
    if _depth > 8:
        return None
    if isinstance(transform, optax.GradientTransformation):
        functions = (transform.init, transform.update)
    elif callable(transform):
        functions = (transform,)
    else:
        return None
    for function in functions:
        cells = _closure_values(function)
        if "inner_factory" in cells:  # optax.inject_hyperparams
            kwargs = {**cells.get("other_hps", {}), **cells.get("numeric_hps", {})}
            for k, f in cells.get("sched_hps", {}).items():
                kwargs[k] = getattr(f, "schedule_fn", f)
            try:
                inner = cells["inner_factory"](**kwargs)
            except (TypeError, ValueError):
                return None
            return find_dynamics(inner, _depth + 1)
        for value in cells.values():
            members = value if isinstance(value, tuple | list) else (value,)
            for member in members:
                if callable(member):
                    found = find_dynamics(member, _depth + 1)
                    if found is not None:
                        return found
    return None
