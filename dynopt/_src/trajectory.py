r"""Discrete runs of an optimiser and the continuous flow it discretises.

:func:`discrete_trajectory` runs any optax transform in jitted ``lax.scan``
chunks and keeps every ``save_every``-th iterate with its loss and its ODE time
(read from the optimiser state's ``time`` leaf, i.e. from its clock).
:func:`continuous_trajectory` integrates the optimiser's own flow
(``optimizer.dynamics.flow()``) with diffrax at given times. Both return a
:class:`Trajectory`, so the two can be compared with
:func:`dynopt.trajectory_gap`.

Tight tolerances need float64: :func:`continuous_trajectory` solves in float64
by default (inside ``jax.enable_x64``) even when x64 is off globally; the
discrete run uses the optimiser's own dtypes.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .base import check_count, find_field
from .progress import progress_bar

tree_map = jax.tree_util.tree_map


class Trajectory(NamedTuple):
    """Iterates of a run (or samples of a flow) at their ODE times.

    Attributes:
      times: ``[n]`` ODE times of the kept points; ``times[0] = 0`` is the
        initial point for discrete runs.
      params: the kept parameters, a pytree whose leaves have a leading axis
        ``n``.
      loss: ``[n]`` loss at each kept point.
    """

    times: jax.Array
    params: Any
    loss: jax.Array


# ----------------------------------------------------------------------------
# Checks at the edges.


def check_params(fn: str, params) -> None:
    """Params must be a non-empty pytree of finite float arrays."""
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError(
            f"{fn}: `params` must contain at least one array, got {params!r}"
        )
    for leaf in leaves:
        arr = np.asarray(leaf)
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(
                f"{fn}: `params` leaves must be floating point, got dtype {arr.dtype}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{fn}: `params` must be finite, got a leaf of shape {arr.shape} "
                f"with {int(np.sum(~np.isfinite(arr)))} non-finite entries"
            )


def check_loss_fn(fn: str, loss_fn, params) -> None:
    """``loss_fn(params)`` must be a real scalar."""
    if not callable(loss_fn):
        raise TypeError(f"{fn}: `loss_fn` must be callable, got {loss_fn!r}")
    try:
        out = jax.eval_shape(loss_fn, params)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
        # Usually params that do not match the tree or shapes loss_fn expects.
        raise ValueError(
            f"{fn}: `loss_fn` cannot be evaluated at `params` (does the tree "
            f"match?): {type(err).__name__}: {err}"
        ) from err
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"{fn}: `loss_fn` must return a scalar, got output of shape {shape}"
        )


def _check_multiple(fn, name, value, save_every):
    if value % save_every:
        raise ValueError(
            f"{fn}: `{name}` must be a multiple of `save_every` = {save_every}, "
            f"got {value!r}"
        )


def find_time(state):
    """The ``time`` leaf of the first dynopt state inside ``state``, or None."""
    return find_field(state, "time", ("count",))


def find_count(state):
    """The step count of the first optax/dynopt state inside ``state``, or None."""
    return find_field(state, "count")


# ----------------------------------------------------------------------------
# Discrete runs.


def discrete_trajectory(
    optimizer: optax.GradientTransformation,
    loss_fn: Callable,
    params,
    num_steps: int,
    *,
    save_every: int = 1,
    steps_per_call: int | None = None,
    progress: bool = True,
    position: Callable | None = None,
) -> Trajectory:
    r"""Runs an optimiser on ``loss_fn`` and keeps its iterates with ODE times.

    Each step is the plain optax loop ``g = grad(loss_fn)(x)``,
    ``u, s = opt.update(g, s, x, **extra)``, ``x = optax.apply_updates(x, u)``;
    transforms that take extra arguments also get ``grad_fn=grad(loss_fn)``
    (used by :func:`dynopt.heun`). Steps run in jitted ``lax.scan`` chunks of
    ``steps_per_call`` steps, with progress reported once per chunk.

    The time of a kept iterate is the state's ``time`` leaf: the ODE time
    :math:`t_k` on the optimiser's clock (``sum lr`` for SGD, ``k gamma`` for
    momentum, ``k sqrt(s)`` for NAG-C). Transforms without a ``time`` leaf (plain
    optax) get the step count instead.

    Args:
      optimizer: any optax transform; dynopt optimisers give ODE times.
      loss_fn: ``params -> scalar``.
      params: initial parameters (a pytree of finite float arrays).
      num_steps: number of steps, a multiple of ``save_every``.
      save_every: keep every ``save_every``-th iterate (and the initial one).
      steps_per_call: steps per jitted chunk, a multiple of ``save_every``
        (default: about 1000 steps, at most ``num_steps``).
      progress: show progress: a tqdm bar on a terminal, a line about every
        ten seconds when stderr is a file (default True).
      position: optional ``(params, opt_state) -> pytree`` recorded instead of
        the parameters (default: the optimiser's ``ode_position`` if it has one,
        e.g. :func:`dynopt.nag_c_position`, else the parameters). The loss is
        evaluated at the recorded point.

    Returns:
      A :class:`Trajectory` with ``num_steps // save_every + 1`` points.

    Raises:
      ValueError / TypeError: non-finite or non-float ``params``, ``loss_fn``
        not returning a scalar, ``num_steps`` / ``save_every`` /
        ``steps_per_call`` not positive ints or not multiples of ``save_every``.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> traj = dynopt.discrete_trajectory(
      ...     dynopt.sgd(0.25), lambda x: 0.5 * jnp.sum(x**2), jnp.ones(2), 8,
      ...     save_every=4, progress=False)
      >>> traj.times
      Array([0., 1., 2.], dtype=float32)
    """
    fn = "discrete_trajectory"
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"{fn}: `optimizer` must be an optax GradientTransformation, "
            f"got {optimizer!r}"
        )
    check_params(fn, params)
    check_loss_fn(fn, loss_fn, params)
    check_count(fn, "num_steps", num_steps)
    check_count(fn, "save_every", save_every)
    _check_multiple(fn, "num_steps", num_steps, save_every)
    if steps_per_call is None:
        steps_per_call = min(
            num_steps, max(save_every, 1000 // save_every * save_every)
        )
    check_count(fn, "steps_per_call", steps_per_call)
    _check_multiple(fn, "steps_per_call", steps_per_call, save_every)
    if position is None:
        position = getattr(optimizer, "ode_position", None)
    if position is None:
        position = _own_params
    extra = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    try:
        hash((optimizer, loss_fn, position))
        run_chunk = _chunk
    except TypeError:  # an unhashable callable: compile for this call only
        run_chunk = jax.jit(
            _chunk.__wrapped__,
            static_argnames=("save_every", "num_saves", "extra"),
        )
    chunk = functools.partial(
        run_chunk,
        optimizer=optimizer,
        loss_fn=loss_fn,
        position=position,
        save_every=save_every,
        extra=extra,
    )
    observe = functools.partial(_observe, loss_fn=loss_fn, position=position)

    state = optimizer.init(params)
    carry = (params, state)
    pieces = [tree_map(lambda a: a[None], observe(params, state))]
    if find_time(state) is None:
        warnings.warn(
            f"{fn}: `optimizer` keeps no ODE time (not a dynopt optimiser); the "
            "trajectory's `times` are step counts"
            + (
                " (all zero: it keeps no step count either)"
                if find_count(state) is None
                else ""
            ),
            UserWarning,
            stacklevel=2,
        )
    bar = progress_bar(num_steps, progress, fn)
    done = 0
    while done < num_steps:
        n = min(steps_per_call, num_steps - done)
        carry, out = chunk(carry, num_saves=n // save_every)
        pieces.append(out)
        done += n
        bar.update(n)
    bar.close()
    times, xs, losses = tree_map(lambda *a: jnp.concatenate(a), *pieces)
    return Trajectory(times=times, params=xs, loss=losses)


def _own_params(params, state):
    del state
    return params


def _observe(p, s, *, loss_fn, position):
    t = find_time(s)
    if t is None:
        t = find_count(s)
    t = jnp.zeros([]) if t is None else t
    x = position(p, s)
    return t.astype(jnp.result_type(float)), x, loss_fn(x)


# One compiled chunk per (optimiser, loss, position, chunk length, shapes): the
# functions are static arguments, hashed by identity, so a second run with the
# same optimiser and loss reuses the program.
@functools.partial(
    jax.jit,
    static_argnames=(
        "optimizer",
        "loss_fn",
        "position",
        "save_every",
        "num_saves",
        "extra",
    ),
)
def _chunk(carry, *, optimizer, loss_fn, position, save_every, num_saves, extra):
    grad_fn = jax.grad(loss_fn)

    def one_step(carry, _):
        p, s = carry
        g = grad_fn(p)
        if extra:
            u, s = optimizer.update(g, s, p, grad_fn=grad_fn)
        else:
            u, s = optimizer.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    def one_save(carry, _):
        carry, _ = jax.lax.scan(one_step, carry, None, length=save_every)
        return carry, _observe(*carry, loss_fn=loss_fn, position=position)

    return jax.lax.scan(one_save, carry, None, length=num_saves)


# ----------------------------------------------------------------------------
# Continuous flows.


def _as_flow(fn, optimizer):
    if hasattr(optimizer, "vector_field") and hasattr(optimizer, "initial_state"):
        return optimizer
    dynamics = getattr(optimizer, "dynamics", None)
    if dynamics is None:
        raise TypeError(
            f"{fn}: `optimizer` must be a dynopt optimiser (with `.dynamics`) or a "
            f"flow (with `vector_field`), got {type(optimizer).__name__}"
        )
    scheduled = _scheduled_flow_constants(dynamics)
    if scheduled:
        raise ValueError(
            f"{fn}: `optimizer` has hyperparameters driven by a schedule "
            f"({', '.join(scheduled)}) that change its flow at every step; one "
            "flow cannot follow them. Pass the flow of one moment instead, "
            "e.g. `optimizer.dynamics.at(state).flow`, got schedules for "
            f"{scheduled}"
        )
    return dynamics.flow()


def _scheduled_flow_constants(dynamics) -> list[str]:
    """Scheduled hyperparameters that the flow depends on (e.g. momentum's
    learning rate sets the friction; SGD's only sets the clock)."""
    names = []
    hp0 = dynamics.initial_hyperparams()
    base = jax.tree_util.tree_leaves(dynamics.make_flow(hp0))
    for k, v in dynamics.hyperparams.items():
        if not callable(v):
            continue
        value = float(hp0[k])
        moved = {**hp0, k: 0.5 * value if value != 0 else 0.1}
        other = jax.tree_util.tree_leaves(dynamics.make_flow(moved))
        if len(base) != len(other) or any(
            not np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(base, other)
        ):
            names.append(k)
    return names


def check_times(fn: str, times) -> np.ndarray:
    """``times`` must be a 1-D, finite, non-negative, strictly increasing array."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(
            f"{fn}: `times` must be a non-empty 1-D array, got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)) or t[0] < 0:
        raise ValueError(f"{fn}: `times` must be finite and >= 0, got {t[:5]}...")
    if np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise ValueError(
            f"{fn}: `times` must be strictly increasing, got times[{i}] = "
            f"{float(t[i])!r} >= times[{i + 1}] = {float(t[i + 1])!r}"
        )
    return t


def continuous_trajectory(
    optimizer,
    loss_fn: Callable,
    params,
    times,
    *,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    dt0: float | None = None,
    max_steps: int = 1_000_000,
    x64: bool = True,
    progress: bool = True,
) -> Trajectory:
    r"""Integrates the flow an optimiser discretises, sampled at ``times``.

    The flow is ``optimizer.dynamics.flow()`` (e.g. the gradient flow for
    :func:`dynopt.sgd`, the heavy-ball ODE for :func:`dynopt.momentum`, the
    Hessian-damped ODE for :func:`dynopt.nesterov`, Su-Boyd-Candes for
    :func:`dynopt.nag_c`); a flow object can be passed instead of an optimiser
    (e.g. :class:`dynopt.ModifiedGradientFlow`). It starts at ``t = 0`` from
    ``params`` at rest (flows singular at 0 start at their ``start_time`` from
    a series, see :class:`dynopt.SuBoydCandesFlow`) and is solved with diffrax,
    by default Dopri8 (8th order) with a PID step-size controller that also
    steps to each of ``times`` (so the saved values are step ends, not
    interpolated between steps).

    Precision: by default (``x64=True``) the flow's constants, ``params`` and
    the whole solve are float64, inside ``jax.enable_x64(True)``, whether or not
    ``jax_enable_x64`` is on globally, so the default tolerances are reachable.
    The result is float64: jax arrays when x64 is on globally, NumPy arrays
    when it is off (jax would truncate float64 arrays to float32, with a
    warning, in every operation outside x64 mode; NumPy keeps them, and jax
    takes them as float32 silently). ``x64=False`` solves in jax's default
    float dtype (float32 unless x64 is on), where a relative tolerance below
    about 1e-6 is not reachable.

    Hyperparameters changed during a run (:func:`dynopt.set_hyperparams`) are
    not known to the optimiser object: pass the flow of the state instead,
    ``optimizer.dynamics.at(state).flow``. A schedule that changes the flow's
    constants (momentum's learning rate sets its friction) is refused; one
    that only moves the clock (SGD's learning rate) is followed, since the
    clock's times are the state's ``time`` leaves.

    Args:
      optimizer: a dynopt optimiser or a flow.
      loss_fn: ``params -> scalar``.
      params: the initial point.
      times: 1-D, non-negative, strictly increasing times, e.g. the ``times``
        of a :class:`Trajectory` from :func:`discrete_trajectory`.
      solver: a diffrax solver (default ``diffrax.Dopri8()``).
      rtol, atol: tolerances of the PID controller.
      dt0: initial step (default: chosen by diffrax).
      max_steps: diffrax's step budget.
      x64: solve in float64 even when x64 is off globally (default True).
      progress: report the solve (a line when it starts and when it ends on a
        file, a bar on a terminal; default True).

    Returns:
      A :class:`Trajectory` at ``times`` (float64 unless ``x64=False``).

    Raises:
      ValueError / TypeError: bad ``times``, non-finite ``params``, ``loss_fn``
        not returning a scalar, an object that is neither optimiser nor flow,
        an optimiser whose flow a schedule changes.
      RuntimeError: the solver ran out of its ``max_steps`` steps (the message
        names ``max_steps`` first) or failed otherwise.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> traj = dynopt.continuous_trajectory(
      ...     dynopt.sgd(0.1), lambda x: 0.5 * jnp.sum(x**2), jnp.ones(1),
      ...     jnp.array([0.0, 1.0]), rtol=1e-6, atol=1e-6)
      >>> round(float(traj.params[1, 0]), 5)  # exp(-1)
      0.36788
    """
    fn = "continuous_trajectory"
    if not isinstance(x64, bool):
        raise TypeError(f"{fn}: `x64` must be a bool, got {x64!r}")
    bar = progress_bar(1, progress, fn, unit="solves", interval=0.0)
    try:
        if not x64:
            traj = _continuous_trajectory(
                optimizer, loss_fn, params, times, solver, rtol, atol, dt0, max_steps
            )
            bar.update(1)
            return traj
        global_x64 = bool(jax.config.jax_enable_x64)
        with jax.enable_x64(True):
            traj = _continuous_trajectory(
                optimizer, loss_fn, params, times, solver, rtol, atol, dt0, max_steps
            )
            if not global_x64:  # keep float64 outside x64 mode: NumPy arrays
                traj = Trajectory(*jax.device_get(tuple(traj)))
        bar.update(1)
        return traj
    finally:
        bar.close()


def _continuous_trajectory(
    optimizer, loss_fn, params, times, solver, rtol, atol, dt0, max_steps
) -> Trajectory:
    fn = "continuous_trajectory"
    # Inside jax.enable_x64 the flow's constants are computed in float64 too.
    flow = _as_flow(fn, optimizer)
    check_params(fn, params)
    check_loss_fn(fn, loss_fn, params)
    t = check_times(fn, times)
    check_count(fn, "max_steps", max_steps)
    dtype = jnp.result_type(float)
    params = tree_map(lambda a: jnp.asarray(a, dtype), params)
    start = float(getattr(flow, "start_time", 0.0))
    solver = diffrax.Dopri8() if solver is None else solver
    # Requested times before a singular flow's start are reported at its start.
    ts = np.maximum(t, start)
    # Pad the save times (repeating the last one) to a power of two, at least
    # 4096 while the padded output stays small, so that runs of different
    # lengths share one compiled solve.
    n = ts.shape[0]
    size = 1 << (n - 1).bit_length()
    num_params = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
    if num_params * 4096 <= 10_000_000:
        size = max(size, 4096)
    ts = jnp.asarray(np.concatenate([ts, np.full(size - n, ts[-1])]), dtype)
    # The flow is a pytree: its constants are traced arrays, so one compiled
    # solve serves every flow of the same type and options.
    if isinstance(flow, eqx.Module):
        flow = tree_map(lambda a: jnp.asarray(a, dtype), flow)
    xs, losses, status = _solve(
        flow,
        params,
        ts,
        jnp.asarray(start, dtype),
        loss_fn=loss_fn,
        solver=solver,
        rtol=float(rtol),
        atol=float(atol),
        dt0=dt0,
        max_steps=int(max_steps),
    )
    out_of_steps, failed = (bool(x) for x in jax.device_get(status))
    if out_of_steps:
        raise RuntimeError(
            f"{fn}: the solver used all `max_steps`={max_steps} steps before "
            f"reaching t={float(t[-1])!r}; increase `max_steps`, loosen "
            f"`rtol`/`atol` (now {rtol!r}/{atol!r}) or shorten `times`"
        )
    if failed:
        raise RuntimeError(
            f"{fn}: the solver failed before t={float(t[-1])!r} (a non-finite "
            "vector field or a step size below the solver's minimum); check "
            "`loss_fn` and `params`"
        )
    xs, losses = tree_map(lambda a: a[:n], (xs, losses))
    return Trajectory(times=jnp.asarray(t, dtype), params=xs, loss=losses)


@eqx.filter_jit
def _solve(flow, params, ts, start, *, loss_fn, solver, rtol, atol, dt0, max_steps):
    if hasattr(flow, "series_start"):
        y0 = flow.series_start(loss_fn, params)
    else:
        y0 = flow.initial_state(params)

    def integrate(y0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(flow.vector_field(loss_fn)),
            solver,
            t0=start,
            t1=ts[-1],
            dt0=dt0,
            y0=y0,
            saveat=diffrax.SaveAt(ts=ts),
            # Step to every save time: a saved value is then the end of a
            # step, held to rtol/atol, not the dense interpolant between
            # steps (Dopri8's is off by ~3e-9 on exp(-t) at rtol 1e-10).
            stepsize_controller=diffrax.ClipStepSizeController(
                diffrax.PIDController(rtol=rtol, atol=atol), step_ts=ts
            ),
            max_steps=max_steps,
            throw=False,  # reported by the caller with a short, clear message
        )
        out_of_steps = sol.result == diffrax.RESULTS.max_steps_reached
        failed = sol.result != diffrax.RESULTS.successful
        return sol.ys, jnp.stack([out_of_steps, failed & ~out_of_steps])

    def constant(y0):
        ys = tree_map(lambda a: jnp.broadcast_to(a, (ts.shape[0], *a.shape)), y0)
        return ys, jnp.zeros(2, bool)

    ys, status = jax.lax.cond(ts[-1] > start, integrate, constant, y0)
    xs = jax.vmap(flow.position)(ys)
    return xs, jax.vmap(loss_fn)(xs), status


def _check_same_tree(fn, a, b, name_a="a", name_b="b"):
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:
        raise ValueError(
            f"{fn}: `{name_a}` and `{name_b}` must have the same tree structure, "
            f"got {ta} and {tb}"
        )


def num_steps_for(fn: str, horizon: float, step: float) -> int:
    """The number of steps ``k`` with ``k * step <= horizon`` (rounding allowed)."""
    k = int(math.floor(horizon / step * (1 + 1e-9)))
    if k < 1:
        raise ValueError(
            f"{fn}: `horizon` must be at least one clock step {step!r}, got {horizon!r}"
        )
    return k
