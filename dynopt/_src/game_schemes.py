r"""Game schemes: code that advances a game's flow by one step of size ``h``.

A game scheme is an equinox Module with

* ``init(game, params) -> GameState``: the parameters and the scheme's memory
  (previous field value, momentum buffers, a running average);
* ``step(game, state, h) -> GameState``: one real step, usable as the update
  of a training loop (pure, jit-safe, differentiable: the spectral radius of a
  step is the one of ``jax.jacobian`` of this map);
* ``order``: the global order of accuracy against the game's flow
  :math:`z' = v(z)` (every scheme here is first order).

``h`` may be a traced array; the schemes' own numbers (``beta``, ``gamma``,
``reg_weight``) are Module fields, i.e. array leaves, and their step counts
(``n_d``, ``n_g``, ``iterations``) static. Two-player schemes (alternating,
momentum, Su's) move the discriminator (player 1) first, then the generator
(player 0), as GAN training loops do.

References:
  C. Daskalakis, A. Ilyas, V. Syrgkanis, H. Zeng, *Training GANs with
  optimism*, ICLR 2018, arXiv:1711.00141.
  G. Gidel, R. Askari Hemmat, M. Pezeshki, R. Le Priol, G. Huang,
  S. Lacoste-Julien, I. Mitliagkas, *Negative momentum for improved game
  dynamics*, AISTATS 2019, arXiv:1807.04740.
  L. Mescheder, S. Nowozin, A. Geiger, *The numerics of GANs*, NeurIPS 2017,
  arXiv:1705.10461.
  G. Korpelevich, *The extragradient method for finding saddle points and
  other problems*, Matecon 1976.
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .base import check_choice, check_count, check_interval, check_nonnegative
from .games import Game, replace_player

tree_map = jax.tree_util.tree_map


class GameState(NamedTuple):
    """The state of a game scheme (a pytree of float arrays).

    Attributes:
      params: the players' parameters, a tuple ``(z_1, ..., z_n)``.
      memory: what the scheme carries between steps (None when nothing).
    """

    params: tuple
    memory: Any = None


def _axpy(h, v, z):
    """``z + h v`` leaf by leaf, in each leaf's dtype."""
    return tree_map(lambda zi, vi: zi + jnp.asarray(h, zi.dtype) * vi, z, v)


def _two_players(fn: str, game: Game) -> None:
    if game.num_players != 2:
        raise ValueError(
            f"{fn}: the game must have 2 players (generator, discriminator), "
            f"got {game.num_players}"
        )


def _player_steps(game, params, i, h, n, penalty=None):
    """``n`` gradient steps of player ``i`` with the others held fixed."""

    def body(p, _):
        return replace_player(
            p, i, _axpy(h, game.player_field(i, p, penalty), p[i])
        ), None

    return jax.lax.scan(body, tuple(params), None, length=n)[0]


class GameScheme(eqx.Module):
    """Base of the game schemes: ``init``, ``step``, ``order``, ``readout``."""

    order: ClassVar[int] = 1

    def init(self, game: Game, params) -> GameState:
        """The state at ``params`` (no memory)."""
        return GameState(tuple(params), None)

    def step(self, game: Game, state: GameState, h) -> GameState:
        raise NotImplementedError

    def readout(self, state: GameState):
        """The parameters a user reads (the average for :class:`GameEMA`)."""
        return state.params


class SimultaneousSteps(GameScheme):
    r"""SimultaneousSteps gradient steps (explicit Euler): :math:`z^+ = z + h v(z)`."""

    def step(self, game, state, h):
        return GameState(_axpy(h, game.field(state.params), state.params), None)


class AlternatingSteps(GameScheme):
    r"""Alternating phases: ``n_d`` discriminator steps, then ``n_g`` generator steps.

    .. math:: \psi \leftarrow \psi + h v_\psi(\theta, \psi)\ (n_d\ \text{times}),
        \qquad \theta \leftarrow \theta + h v_\theta(\theta, \psi)\ (n_g\ \text{times}).

    Attributes:
      n_d, n_g: steps per phase (static ints >= 1).
    """

    n_d: int = eqx.field(static=True, default=1)
    n_g: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_count("AlternatingSteps", "n_d", self.n_d)
        check_count("AlternatingSteps", "n_g", self.n_g)

    def step(self, game, state, h):
        _two_players("AlternatingSteps", game)
        p = _player_steps(game, state.params, 1, h, self.n_d)
        return GameState(_player_steps(game, p, 0, h, self.n_g), None)


class ExtraGradient(GameScheme):
    r"""Extragradient (Korpelevich): a look-ahead step, then a step from the start.

    .. math:: \bar z = z + h v(z), \qquad z^+ = z + h v(\bar z).
    """

    def step(self, game, state, h):
        z = state.params
        look = _axpy(h, game.field(z), z)
        return GameState(_axpy(h, game.field(look), z), None)


class OptimisticGradient(GameScheme):
    r"""Optimistic gradient (Daskalakis et al. 2018), the previous field in memory.

    .. math:: z_{k+1} = z_k + 2h\,v(z_k) - h\,v(z_{k-1}),

    with :math:`v(z_{-1}) = v(z_0)` (the first step is a plain gradient step).
    """

    def init(self, game, params):
        params = tuple(params)
        return GameState(params, game.field(params))

    def step(self, game, state, h):
        v = game.field(state.params)
        z = _axpy(2 * h, v, state.params)
        return GameState(_axpy(-h, state.memory, z), v)


class AlternatingMomentum(GameScheme):
    r"""Alternating heavy ball; negative ``beta`` damps the rotation (Gidel et al.).

    Discriminator, then generator (with the new discriminator), each

    .. math:: z_i^+ = z_i + h\,v_i + \beta\,m_i, \qquad m_i^+ = z_i^+ - z_i,

    the momentum buffers :math:`m` (zero at the start) in memory.

    Attributes:
      beta: the momentum, :math:`-1 < \beta < 1`.
    """

    beta: Any = 0.0

    def __check_init__(self):
        check_interval("AlternatingMomentum", "beta", self.beta, -1.0, 1.0)

    def init(self, game, params):
        params = tuple(params)
        return GameState(params, tree_map(jnp.zeros_like, params))

    def step(self, game, state, h):
        _two_players("AlternatingMomentum", game)
        params, m = state.params, list(state.memory)
        for i in (1, 0):
            v = game.player_field(i, params)
            new = tree_map(
                lambda z, vi, mi: z + jnp.asarray(h, z.dtype) * vi + self.beta * mi,
                params[i],
                v,
                m[i],
            )
            m[i] = tree_map(jnp.subtract, new, params[i])
            params = replace_player(params, i, new)
        return GameState(params, tuple(m))


class ConsensusOptimization(GameScheme):
    r"""Consensus optimisation (Mescheder, Nowozin, Geiger 2017), simultaneous.

    .. math:: z^+ = z + h\big(v(z) - \gamma\,\nabla\tfrac12|v(z)|^2\big)
                  = z + h\,(I - \gamma J^\top)\,v(z).

    Attributes:
      gamma: :math:`\gamma \ge 0`.
    """

    gamma: Any = 0.1

    def __check_init__(self):
        check_nonnegative("ConsensusOptimization", "gamma", self.gamma)

    def step(self, game, state, h):
        v, pullback = jax.vjp(game.field, state.params)
        (jtv,) = pullback(v)
        direction = tree_map(lambda a, b: a - self.gamma * b, v, jtv)
        return GameState(_axpy(h, direction, state.params), None)


PROXIMAL_SOLVERS = ("newton", "fixed_point")


class ProximalPoint(GameScheme):
    r"""The implicit (proximal-point) step :math:`z^+ = z + h\,v(z^+)`.

    The implicit equation :math:`F(w) = w - z - h v(w) = 0` is solved from
    :math:`w_0 = z` by ``iterations`` Newton steps
    :math:`w \leftarrow w - (I - hJ(w))^{-1} F(w)` on the flattened parameters
    (``solver="newton"``, dense Jacobian: small games; exact after one step
    for linear fields, quadratic convergence otherwise) or by the fixed-point
    iteration :math:`w \leftarrow z + h v(w)` (``"fixed_point"``, no Jacobian,
    converges when :math:`h\,\mathrm{Lip}(v) < 1`, error
    :math:`(h\,\mathrm{Lip}(v))^{k}`). Autodiff through the unrolled iterations
    gives the derivative of the implicit step (exactly at an equilibrium for
    Newton).

    Attributes:
      solver: ``"newton"`` or ``"fixed_point"``.
      iterations: solver steps (static, >= 1).
    """

    solver: str = eqx.field(static=True, default="newton")
    iterations: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        check_choice("ProximalPoint", "solver", self.solver, PROXIMAL_SOLVERS)
        check_count("ProximalPoint", "iterations", self.iterations)

    def step(self, game, state, h):
        z = tuple(state.params)
        if self.solver == "fixed_point":

            def body(w, _):
                return _axpy(h, game.field(w), z), None

            return GameState(jax.lax.scan(body, z, None, self.iterations)[0], None)
        z_flat, unravel = ravel_pytree(z)

        def residual(w_flat):
            return w_flat - z_flat - h * ravel_pytree(game.field(unravel(w_flat)))[0]

        def newton(w, _):
            jac = jax.jacfwd(residual)(w)
            return w - jnp.linalg.solve(jac, residual(w)), None

        w = jax.lax.scan(newton, z_flat, None, self.iterations)[0]
        return GameState(unravel(w), None)


class SuProximal(GameScheme):
    r"""Su's generator-side proximal regulariser, in phases of ``n_g`` steps.

    ``n_d`` discriminator gradient steps, a snapshot :math:`G_{old}` of the
    generator, then ``n_g`` gradient steps of the generator on

    .. math:: L_G(\theta, \psi) + \lambda\,\mathbb{E}|G_\theta(z) - G_{old}(z)|^2

    (the game's ``generator_distance``). With ``n_g = 1`` the regulariser's
    gradient is zero and this is :class:`AlternatingSteps`.

    Attributes:
      reg_weight: :math:`\lambda \ge 0`.
      n_d, n_g: steps per phase (static ints >= 1).
    """

    reg_weight: Any = 1.0
    n_d: int = eqx.field(static=True, default=1)
    n_g: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_nonnegative("SuProximal", "reg_weight", self.reg_weight)
        check_count("SuProximal", "n_d", self.n_d)
        check_count("SuProximal", "n_g", self.n_g)

    def step(self, game, state, h):
        _two_players("SuProximal", game)
        p = _player_steps(game, state.params, 1, h, self.n_d)
        old = p[0]

        def penalty(g):
            return self.reg_weight * game.distance(g, old)

        return GameState(_player_steps(game, p, 0, h, self.n_g, penalty), None)


class GameEMA(GameScheme):
    r"""Any scheme with an exponential moving average of its iterates as read-out.

    :math:`\bar z^+ = \delta\,\bar z + (1 - \delta)\,z^+`; :meth:`readout`
    returns :math:`\bar z`. The average does not feed back into the iterates.

    Attributes:
      scheme: the game scheme that moves the iterates.
      decay: :math:`0 \le \delta < 1`.
    """

    scheme: GameScheme
    decay: Any = 0.999

    def __check_init__(self):
        if not isinstance(self.scheme, GameScheme):
            raise TypeError(
                f"GameEMA: `scheme` must be a game scheme, got {self.scheme!r}"
            )
        check_interval("GameEMA", "decay", self.decay, 0.0, 1.0)

    def init(self, game, params):
        inner = self.scheme.init(game, params)
        return GameState(inner.params, (inner.memory, inner.params))

    def step(self, game, state, h):
        memory, average = state.memory
        inner = self.scheme.step(game, GameState(state.params, memory), h)
        average = tree_map(
            lambda a, z: self.decay * a + (1 - self.decay) * z, average, inner.params
        )
        return GameState(inner.params, (inner.memory, average))

    def readout(self, state):
        return state.memory[1]


# Method names of :func:`dynopt.game_scheme` and the options each takes.
GAME_METHODS = {
    "simultaneous": (SimultaneousSteps, ()),
    "alternating": (AlternatingSteps, ("n_d", "n_g")),
    "extragradient": (ExtraGradient, ()),
    "optimistic": (OptimisticGradient, ()),
    "alternating_momentum": (AlternatingMomentum, ("beta",)),
    "consensus": (ConsensusOptimization, ("gamma",)),
    "proximal_point": (ProximalPoint, ("solver", "iterations")),
    "su_proximal": (SuProximal, ("reg_weight", "n_d", "n_g")),
}


def game_scheme(method: str, **options) -> GameScheme:
    """The game scheme named ``method`` with its options.

    Args:
      method: one of ``"simultaneous"``, ``"alternating"`` (``n_d``, ``n_g``),
        ``"extragradient"``, ``"optimistic"``, ``"alternating_momentum"``
        (``beta``), ``"consensus"`` (``gamma``), ``"proximal_point"``
        (``solver``, ``iterations``), ``"su_proximal"`` (``reg_weight``,
        ``n_d``, ``n_g``).
      **options: the options of that method (see each class).

    Returns:
      A :class:`GameScheme`.

    Raises:
      ValueError: unknown ``method``, an option the method does not take, or a
        bad option value.

    Example:
      >>> import dynopt
      >>> dynopt.game_scheme("alternating", n_d=5)
      AlternatingSteps(n_d=5)
    """
    fn = "game_scheme"
    if method not in GAME_METHODS:
        raise ValueError(
            f"{fn}: `method` must be one of {tuple(GAME_METHODS)}, got {method!r}"
        )
    cls, allowed = GAME_METHODS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{fn}: method {method!r} takes the options {allowed}, got {unknown}"
        )
    return cls(**options)
