r"""Studying games: one-step spectral radii, discrete runs and continuous flows.

:func:`game_spectral_radius` linearises one real step of a game scheme at the
game's equilibrium by differentiating the step map itself (``jax.jacobian``
of ``state -> scheme.step(game, state, h)`` on the flattened parameters *and*
memory), so what it reports is what the code does. :func:`game_trajectory`
integrates the game's flow with diffrax in float64, :func:`game_run` runs a
scheme in ``lax.scan``.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .base import check_count
from .game_lifting import GameScheme, GameState
from .game_schemes import game_scheme
from .games import Game
from .trajectory import check_times

tree_map = jax.tree_util.tree_map


class GameTrajectory(NamedTuple):
    """Points of a game's flow or of a scheme's run.

    Attributes:
      times: ``[n]`` times (ODE times ``k h`` for a run).
      params: the players' parameters, leaves with a leading axis ``n``.
      losses: ``[n, num_players]`` each player's loss at each point.
    """

    times: jax.Array
    params: tuple
    losses: jax.Array


def _check_game(fn: str, game) -> None:
    if not isinstance(game, Game):
        raise TypeError(f"{fn}: `game` must be a dynopt.Game, got {game!r}")


def _check_step(fn: str, step_size) -> float:
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real):
        raise TypeError(f"{fn}: `step_size` must be a real number, got {step_size!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"{fn}: `step_size` must be finite and > 0, got {step_size!r}")
    return float(step_size)


def _as_scheme(fn: str, method, options) -> GameScheme:
    if isinstance(method, GameScheme):
        if options:
            raise ValueError(
                f"{fn}: options go with a method name, not a scheme object, "
                f"got {sorted(options)}"
            )
        return method
    if not isinstance(method, str):
        raise TypeError(
            f"{fn}: `method` must be a method name or a game scheme, got {method!r}"
        )
    return game_scheme(method, **options)


def _losses(game: Game, params) -> jax.Array:
    return jnp.stack([loss(tuple(params)) for loss in game.losses])


def game_step_matrix(
    game: Game, method, step_size: float, *, at=None, **options
) -> np.ndarray:
    r"""The Jacobian of one step of a game scheme, memory included (float64).

    Rows and columns follow ``ravel_pytree`` of the scheme's state
    ``(params, memory)`` at ``at`` (default: the game's equilibrium), the
    memory being the scheme's own ``init`` there (zero momentum; the previous
    gradient equal to the current one); integer step counts are left out.

    Args:
      game: a :class:`~dynopt.Game`.
      method: a method name of :func:`dynopt.game_scheme` or a scheme object.
      step_size: :math:`h > 0`.
      at: the point (a params tuple); default ``game.equilibrium``.
      **options: the method's options.

    Returns:
      A square float64 NumPy matrix.

    Raises:
      ValueError, TypeError: a bad game, method, option or step size, or no
        point to linearise at.
    """
    fn = "game_step_matrix"
    return _step_matrix(fn, game, method, step_size, at, options)


def _step_matrix(fn, game, method, step_size, at, options):
    _check_game(fn, game)
    h = _check_step(fn, step_size)
    scheme = _as_scheme(fn, method, options)
    point = game.equilibrium if at is None else at
    if point is None:
        raise ValueError(f"{fn}: the game has no equilibrium; pass `at`, got None")
    with jax.enable_x64(True):
        point = tree_map(lambda a: jnp.asarray(a, jnp.float64), tuple(point))
        state0 = scheme.init(game, point)
        return np.asarray(_jacobian(game, scheme, state0, jnp.float64(h)), np.float64)


@eqx.filter_jit
def _jacobian(game, scheme, state0, h):
    # The floating-point state only: step counts are integers, not coordinates.
    floats, ints = eqx.partition(tuple(state0), eqx.is_inexact_array)
    flat, unravel = ravel_pytree(floats)

    def step(f):
        new = scheme.step(game, GameState(*eqx.combine(unravel(f), ints)), h)
        return ravel_pytree(eqx.partition(tuple(new), eqx.is_inexact_array)[0])[0]

    # Forward mode: small states, and it compiles faster through lax.scan.
    return jax.jacfwd(step)(flat)


def game_spectral_radius(game: Game, method, step_size: float, **options) -> float:
    r"""The spectral radius of one real step of a game scheme at the equilibrium.

    :math:`\rho = \max |\mathrm{eig}(\partial S / \partial s)|` where :math:`S`
    is the scheme's step map on its whole state :math:`s` (parameters and
    floating-point memory: the previous gradient for ``"optimistic"``, the
    momentum buffers for ``"alternating_momentum"``; step counts are integers,
    not coordinates), differentiated by ``jax.jacfwd`` in float64
    (:func:`game_step_matrix`). :math:`\rho < 1`: the step converges locally;
    :math:`\rho > 1`: it spirals out.

    Args:
      game: a :class:`~dynopt.Game` with an equilibrium.
      method: ``"simultaneous"``, ``"alternating"`` (``n_d``, ``n_g``),
        ``"extragradient"``, ``"optimistic"``, ``"alternating_momentum"``
        (``beta``), ``"consensus"`` (``gamma``), ``"proximal_point"``
        (``solver``, ``iterations``), ``"su_proximal"`` (``reg_weight``,
        ``n_g``, ``n_d``), or a game scheme object.
      step_size: :math:`h > 0`.
      **options: the method's options.

    Returns:
      :math:`\rho` as a Python float.

    Raises:
      ValueError, TypeError: as :func:`game_step_matrix`.

    Example:
      >>> import dynopt
      >>> game = dynopt.dirac_gan()  # J = [[0, 1/2], [-1/2, 0]]
      >>> round(dynopt.game_spectral_radius(game, "simultaneous", 0.5), 6)
      1.030776
      >>> round(dynopt.game_spectral_radius(game, "alternating", 0.5), 6)
      1.0
    """
    fn = "game_spectral_radius"
    matrix = _step_matrix(fn, game, method, step_size, None, options)
    return float(np.max(np.abs(np.linalg.eigvals(matrix))))


def game_run(
    game: Game, scheme: GameScheme, params, step_size, num_steps: int
) -> GameTrajectory:
    """Runs ``num_steps`` steps of ``scheme`` from ``params`` (jit + ``lax.scan``).

    Keeps every iterate (the scheme's :meth:`~GameScheme.readout`, e.g. the EMA)
    with its time ``k h`` and the players' losses; computed in the dtype of
    ``params``.

    Args:
      game: a :class:`~dynopt.Game`.
      scheme: a game scheme (e.g. from :func:`dynopt.game_scheme`).
      params: the starting point, a tuple of per-player pytrees.
      step_size: :math:`h > 0`.
      num_steps: the number of steps (>= 1).

    Returns:
      A :class:`GameTrajectory` with ``num_steps + 1`` points.

    Raises:
      ValueError, TypeError: a bad game, scheme, step size or step count.
    """
    fn = "game_run"
    _check_game(fn, game)
    if not isinstance(scheme, GameScheme):
        raise TypeError(f"{fn}: `scheme` must be a game scheme, got {scheme!r}")
    h = _check_step(fn, step_size)
    check_count(fn, "num_steps", num_steps)
    params = tuple(params)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    return _run(game, scheme, params, jnp.asarray(h, dtype), num_steps)


@eqx.filter_jit
def _run(game, scheme, params, h, num_steps):
    def body(state, _):
        state = scheme.step(game, state, h)
        out = scheme.readout(state)
        return state, out

    state0 = scheme.init(game, params)
    _, outs = jax.lax.scan(body, state0, None, length=num_steps)
    points = tree_map(lambda a, b: jnp.concatenate([a[None], b]), params, outs)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    times = jnp.arange(num_steps + 1, dtype=dtype) * jnp.asarray(h, dtype)
    return GameTrajectory(times, points, jax.vmap(lambda p: _losses(game, p))(points))


def game_trajectory(
    game: Game,
    params,
    times,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
) -> GameTrajectory:
    r"""Integrates the game's flow :math:`z' = v(z)` in float64 at ``times``.

    diffrax's Dopri8 with a PID controller that steps to every requested time
    (saved values are step ends), inside ``jax.enable_x64`` whatever the global
    setting, as :func:`dynopt.continuous_trajectory`. The result is float64
    (NumPy arrays when x64 is off globally).

    Args:
      game: a :class:`~dynopt.Game`.
      params: the point at ``t = 0``.
      times: 1-D, non-negative, strictly increasing.
      rtol, atol: tolerances of the controller.
      max_steps: diffrax's step budget.

    Returns:
      A :class:`GameTrajectory` at ``times``.

    Raises:
      ValueError, TypeError: a bad game or bad ``times``.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> traj = dynopt.game_trajectory(
      ...     dynopt.bilinear_game(), (jnp.array(1.0), jnp.array(0.0)), [0.0, 1.0])
      >>> round(float(traj.params[0][1]), 8)  # cos(1)
      0.54030231
    """
    fn = "game_trajectory"
    _check_game(fn, game)
    t = check_times(fn, times)
    check_count(fn, "max_steps", max_steps)
    global_x64 = bool(jax.config.jax_enable_x64)
    with jax.enable_x64(True):
        y0 = tree_map(lambda a: jnp.asarray(a, jnp.float64), tuple(params))
        ts = jnp.asarray(t, jnp.float64)
        out = _solve(game, y0, ts, float(rtol), float(atol), int(max_steps))
        if not global_x64:
            out = GameTrajectory(*jax.device_get(tuple(out)))
    return out


@eqx.filter_jit
def _solve(game, y0, ts, rtol, atol, max_steps):
    def integrate(y0):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: game.field(y)),
            diffrax.Dopri8(),
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=y0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.ClipStepSizeController(
                diffrax.PIDController(rtol=rtol, atol=atol), step_ts=ts
            ),
            max_steps=max_steps,
        ).ys

    def constant(y0):
        return tree_map(lambda a: jnp.broadcast_to(a, (ts.shape[0], *a.shape)), y0)

    ys = jax.lax.cond(ts[-1] > ts[0], integrate, constant, y0)
    return GameTrajectory(ts, ys, jax.vmap(lambda p: _losses(game, p))(ys))
