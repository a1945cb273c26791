"""The optimiser type of dynopt and the checks shared by its factories.

An optimiser here is an ``optax.GradientTransformationExtraArgs`` that also carries
its :class:`~dynopt.Dynamics`: the continuous-time flow it discretises, the
numerical scheme, the clock mapping step ``k`` to ODE time ``t_k`` and the map
between its hyperparameters and the flow's constants.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .dynamics import Dynamics


class Optimizer(optax.GradientTransformationExtraArgs):
    """An optax transform that knows the differential equation it discretises.

    It is an ``optax.GradientTransformationExtraArgs`` (a NamedTuple of ``init``
    and ``update``), so it works wherever optax transforms do; the extra
    attribute :attr:`dynamics` holds its :class:`Dynamics`.
    """

    def __new__(cls, init, update, dynamics: Dynamics | None = None):
        self = super().__new__(cls, _float_params_only(init, dynamics), update)
        self.__dict__["_dynamics"] = dynamics
        return self

    @property
    def dynamics(self) -> Dynamics | None:
        """The optimiser's :class:`Dynamics` (flow, scheme, clock, map)."""
        return self.__dict__.get("_dynamics")


def _float_params_only(init, dynamics=None):
    """``init`` that refuses integer or boolean parameters with a clear error."""
    name = getattr(dynamics, "name", None)
    if name is None:
        name = getattr(init, "__qualname__", "init").split(".")[0]

    @functools.wraps(init)
    def checked(params):
        flat, _ = jax.tree_util.tree_flatten_with_path(params)
        for path, leaf in flat:
            dtype = jnp.result_type(leaf)
            if not jnp.issubdtype(dtype, jnp.inexact):
                raise TypeError(
                    f"dynopt.{name}: `params` leaf {jax.tree_util.keystr(path)!r} has "
                    f"dtype {dtype}; optimisers update floating-point parameters "
                    "only (an integer parameter would silently never move)"
                )
        return init(params)

    return checked


# ----------------------------------------------------------------------------
# Checks at construction time. Numbers are checked only when they are concrete
# Python / NumPy scalars: inside ``optax.inject_hyperparams`` they are tracers.


def _is_concrete_number(x) -> bool:
    return isinstance(x, int | float | np.number) and not isinstance(x, bool)


def concrete_value(x):
    """A Python float for concrete scalars (numbers or non-traced arrays), else None."""
    if _is_concrete_number(x):
        return float(x)
    if isinstance(x, np.ndarray | jax.Array) and not isinstance(x, jax.core.Tracer):
        if x.shape == ():
            return float(x)
    return None


def check_scalar_shape(fn: str, name: str, value) -> None:
    shape = getattr(value, "shape", ())
    if shape != ():
        raise ValueError(f"{fn}: `{name}` must be a scalar, got shape {shape}")


def check_learning_rate(fn: str, learning_rate, name: str = "learning_rate") -> None:
    """A rate must be a finite number >= 0, a scalar array or a schedule."""
    if callable(learning_rate):
        return
    if isinstance(learning_rate, bool) or not (
        _is_concrete_number(learning_rate) or hasattr(learning_rate, "shape")
    ):
        raise TypeError(
            f"{fn}: `{name}` must be a float, a scalar array or an optax "
            f"schedule, got {learning_rate!r}"
        )
    check_scalar_shape(fn, name, learning_rate)
    value = concrete_value(learning_rate)
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"{fn}: `{name}` must be finite and >= 0, got {learning_rate!r}"
        )


def check_interval(
    fn: str, name: str, value, low: float, high: float, high_open: bool = True
) -> None:
    """``low <= value < high`` (or ``<= high``) for concrete numbers; scalars only."""
    if callable(value):
        return
    if isinstance(value, bool) or not (
        _is_concrete_number(value) or hasattr(value, "shape")
    ):
        raise TypeError(f"{fn}: `{name}` must be a number, got {value!r}")
    check_scalar_shape(fn, name, value)
    v = concrete_value(value)
    if v is None:
        return
    ok = math.isfinite(v) and low <= v and (v < high if high_open else v <= high)
    if not ok:
        rel = "<" if high_open else "<="
        raise ValueError(
            f"{fn}: `{name}` must satisfy {low:g} <= {name} {rel} {high:g}, "
            f"got {value!r}"
        )


def check_nonnegative(fn: str, name: str, value) -> None:
    check_interval(fn, name, value, 0.0, math.inf, high_open=True)


def check_count(fn: str, name: str, value, minimum: int = 1) -> None:
    """A Python int ``>= minimum`` (sizes and step counts are static)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{fn}: `{name}` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {value!r}")


def check_choice(fn: str, name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{fn}: `{name}` must be one of {allowed}, got {value!r}")


def clock_start() -> dict:
    """The ``count`` and ``time`` leaves every dynopt state starts with (0, 0)."""
    return {
        "count": jnp.zeros([], jnp.int32),
        "time": jnp.zeros([], jnp.result_type(float)),
    }


def zeros_like_tree(params, dtype=None):
    """A zero buffer per leaf, in ``dtype`` (default: each leaf's own dtype).

    Each buffer has its leaf's sharding, also under ``jax.jit(opt.init)``: there
    a plain ``zeros_like`` does not depend on the leaf, so XLA would place it on
    one device; ``0 * |p|`` (0 where ``p`` is not finite) carries the leaf's
    sharding for one elementwise pass at initialisation.
    """
    dtype = None if dtype is None else jnp.dtype(dtype)

    def zeros(p):
        z = jnp.zeros_like(p, dtype=dtype)
        if isinstance(p, jax.core.Tracer) and jnp.size(p):
            z = jnp.where(jnp.isfinite(p), jnp.abs(p) * 0, 0).astype(z.dtype)
        return z

    return jax.tree_util.tree_map(zeros, params)


@jax.custom_jvp
def _computed_once(values: tuple) -> tuple:
    """Floating scalars, unchanged, as outputs of one reduction.

    XLA copies cheap scalar arithmetic (a negation, ``1 - beta``, a cast) into
    every kernel that uses its result, so ``L`` leaves would compile ``L``
    copies of it; ``jax.lax.optimization_barrier`` does not stop this (XLA
    removes barriers before fusion). A reduction is not copied into its users,
    so values that come out of one reach each leaf's kernel as a parameter, as
    optax's compiled-in constants do. Each value is the maximum of
    ``[value, -inf]`` (from ``-inf``): exact, ``-0.0``, infinities and NaN
    included; a subnormal comes out as the backend's arithmetic reads it
    (XLA:CPU reads it as zero, as the products that use it would). The pair
    is a select, not a stack: XLA splits a reduction of a concatenation or a
    broadcast back into the scalar arithmetic. A tangent passes through
    unchanged.
    """
    first = jnp.arange(2) == 0
    lowest = tuple(jnp.array(-jnp.inf, v.dtype) for v in values)
    pairs = tuple(jnp.where(first, v, lo) for v, lo in zip(values, lowest))

    def larger(a, b):
        return tuple(jax.lax.max(x, y) for x, y in zip(a, b))

    return tuple(jax.lax.reduce(pairs, lowest, larger, (0,)))


@_computed_once.defjvp
def _computed_once_jvp(primals, tangents):
    return _computed_once(*primals), tangents[0]


# dtypes with an infinity, whose maximum XLA computes on every backend
_HELD_DTYPES = tuple(
    jnp.dtype(t) for t in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)
)


class StepScalars:
    """A step's scalar coefficients, each computed and cast once per dtype.

    ``StepScalars(name=value, ...).at(dtype)`` is a dict ``name -> value`` cast
    to ``dtype`` (an array works too: its dtype). The first request for a dtype
    casts every value; later requests (while tracing the same step) return the
    same arrays. Values of the usual floating dtypes (16, 32 and 64 bits) come
    out of one reduction that XLA does not copy into the leaves' kernels, so
    per leaf the program holds what optax's does with compiled-in constants
    (other dtypes are cast only). Values known while tracing (Python or
    numpy numbers, arrays that are not tracers) are constants that XLA
    compiles into each kernel, so they skip the reduction, which would make
    them buffers. No value changes: the per-leaf arithmetic sees exactly the
    scalars it would compute itself.
    """

    def __init__(self, **values):
        self._traced = tuple(
            k for k, v in values.items() if isinstance(v, jax.core.Tracer)
        )
        self._values = {k: jnp.asarray(v) for k, v in values.items()}
        self._cast: dict = {}

    def at(self, like) -> dict:
        """The values cast to ``like``'s dtype (``like``: a dtype or an array)."""
        dtype = jnp.dtype(getattr(like, "dtype", like))
        if dtype not in self._cast:
            cast = {k: v.astype(dtype) for k, v in self._values.items()}
            if dtype in _HELD_DTYPES and self._traced:
                held = _computed_once(tuple(cast[k] for k in self._traced))
                cast.update(zip(self._traced, held))
            self._cast[dtype] = cast
        return self._cast[dtype]


def _like(old, value):
    """``value`` with the dtype of ``old`` and, for a placed array, its sharding.

    Keeping the sharding keeps a jitted step that takes the state from
    recompiling (and from gathering the leaf onto one device).
    """
    new = jnp.asarray(value, dtype=jnp.asarray(old).dtype)
    if isinstance(old, jax.Array) and not isinstance(old, jax.core.Tracer):
        if isinstance(new, jax.Array) and not isinstance(new, jax.core.Tracer):
            new = jax.device_put(new, old.sharding)
    return new


def as_hyperparam(value, count=None):
    """A hyperparameter as a float array leaf (schedules evaluated at ``count``)."""
    if callable(value):
        value = value(0 if count is None else count)
    return jnp.asarray(value, dtype=jnp.result_type(float))


class ScheduledHyperparams(dict):
    """A state's hyperparameter dict that knows which names a schedule drives.

    A pytree like a dict (same keys and leaves); ``scheduled`` (static, part of
    the tree structure) names the hyperparameters whose values a schedule
    recomputes at every step, so that :func:`set_hyperparams` can refuse them.
    """

    scheduled: tuple = ()


def _flatten_scheduled(d):
    keys = tuple(sorted(d))
    children = [(jax.tree_util.DictKey(k), d[k]) for k in keys]
    return children, (keys, d.scheduled)


def _unflatten_scheduled(aux, children):
    keys, scheduled = aux
    return hyperparams_dict(dict(zip(keys, children)), scheduled)


jax.tree_util.register_pytree_with_keys(
    ScheduledHyperparams, _flatten_scheduled, _unflatten_scheduled
)


def hyperparams_dict(values: dict, scheduled: tuple = ()) -> dict:
    """A plain dict, or a :class:`ScheduledHyperparams` when a schedule drives
    some of the values."""
    if not scheduled:
        return dict(values)
    out = ScheduledHyperparams(values)
    out.scheduled = tuple(scheduled)
    return out


# The rule for each hyperparameter name that dynopt's factories use, with the
# constructors' checks (and so their messages).
def _rule(name):
    if name in ("beta", "b1", "b2", "dampening"):
        return lambda fn, v: check_interval(fn, name, v, 0.0, 1.0)
    if name in ("learning_rate", "step_size"):
        return lambda fn, v: check_learning_rate(fn, v, name)
    if name in ("weight_decay", "eps", "eps_root", "friction", "hessian_damping"):
        return lambda fn, v: check_interval(fn, name, v, 0.0, math.inf)
    return None


def set_hyperparams(state, **values):
    """Returns ``state`` with hyperparameter leaves replaced, wherever they are.

    Works on a dynopt state or any nest of tuples (``optax.chain``,
    ``inject_hyperparams``) that contains one. Values keep the dtype of the leaf
    they replace, so a jitted step does not retrace.

    Values are checked as the factories check them (a rate finite and
    ``>= 0``, ``beta`` in ``[0, 1)``, scalars only) when they are concrete:
    Python or NumPy numbers and jax arrays outside ``jit``. Traced values
    (inside ``jit`` / ``vmap``) are checked for shape only: a negative rate
    set inside ``jit`` is used as it is.

    A hyperparameter that a schedule drives (the optimiser was built with a
    schedule for it) is refused: the next step would overwrite it with the
    schedule's value. Build the optimiser with a number, or wrap it in
    ``optax.inject_hyperparams`` and change the wrapper's value.

    Raises:
      ValueError: no hyperparameter of that name; a value outside its range or
        not a scalar; a hyperparameter driven by a schedule.
      TypeError: a value that is not a number or an array.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> opt = dynopt.momentum(0.1, 0.9)
      >>> state = opt.init(jnp.zeros(3))
      >>> state = dynopt.set_hyperparams(state, learning_rate=0.05)
      >>> float(state.hyperparams["learning_rate"])
      0.05...
    """
    fn = "set_hyperparams"
    for k, v in values.items():
        if callable(v):
            raise TypeError(
                f"{fn}: `{k}` must be a number or a scalar array (a schedule is "
                f"given to the factory), got {v!r}"
            )
        rule = _rule(k)
        if rule is not None:
            rule(fn, v)
        elif isinstance(v, bool | str) or not (
            _is_concrete_number(v) or hasattr(v, "shape")
        ):
            raise TypeError(f"{fn}: `{k}` must be a number, got {v!r}")
    found, held = [], set()

    def visit(s):
        if isinstance(s, tuple) and hasattr(s, "_fields"):
            if "hyperparams" in s._fields and isinstance(s.hyperparams, dict):
                scheduled = getattr(s.hyperparams, "scheduled", ())
                hp = dict(s.hyperparams)
                held.update(hp)
                for k, v in values.items():
                    if k in hp:
                        if k in scheduled:
                            raise ValueError(
                                f"{fn}: `{k}` is driven by a schedule (the "
                                "optimiser was built with one), which would "
                                "overwrite it at the next step; build the "
                                "optimiser with a number or use "
                                f"optax.inject_hyperparams, got {k}={v!r}"
                            )
                        hp[k] = _like(hp[k], v)
                        found.append(k)
                s = s._replace(hyperparams=hyperparams_dict(hp, scheduled))
            return type(s)(*(visit(c) for c in s))
        if isinstance(s, tuple | list):
            return type(s)(visit(c) for c in s)
        return s

    new = visit(state)
    missing = set(values) - set(found)
    if missing:
        raise ValueError(
            f"set_hyperparams: no hyperparameter named {sorted(missing)} in the "
            f"state; it holds {sorted(held)}"
        )
    return new


def get_hyperparams(state) -> dict:
    """The hyperparameter leaves of the first dynopt state found in ``state``."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        if "hyperparams" in state._fields and isinstance(state.hyperparams, dict):
            return dict(state.hyperparams)
    if isinstance(state, tuple | list):
        for c in state:
            try:
                return get_hyperparams(c)
            except ValueError:
                pass
    raise ValueError("get_hyperparams: the state holds no dynopt hyperparameters")


def find_field(state, field: str, required: tuple[str, ...] = ()):
    """The ``field`` leaf of the first NamedTuple in a nested state, or None.

    Searches ``state`` depth first (``optax.chain`` and other tuple nests) for a
    NamedTuple that has ``field`` and every name in ``required`` among its
    fields.
    """
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        if field in state._fields and all(r in state._fields for r in required):
            return getattr(state, field)
    if isinstance(state, tuple | list):
        for child in state:
            found = find_field(child, field, required)
            if found is not None:
                return found
    return None
