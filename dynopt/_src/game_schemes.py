r"""Game schemes: code that advances a game's flow by one step of size ``h``.

Every named game scheme is a configuration of :class:`dynopt.SchemeOnGame`, a
minimisation scheme run on the game (its :meth:`~GameScheme.lowered`): the
code that moves the players is dynopt's minimisation schemes'. A game scheme
is an equinox Module with

* ``init(game, params) -> GameState``: the parameters and the scheme's memory
  (previous field value, momentum buffers, a running average);
* ``step(game, state, h) -> GameState``: one real step, usable as the update
  of a training loop (pure, jit-safe, differentiable: the spectral radius of a
  step is the one of ``jax.jacobian`` of this map);
* ``order``: the global order of accuracy against the game's flow
  :math:`z' = v(z)` (every named scheme here is first order).

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

from typing import Any

import equinox as eqx
import jax

from .base import check_choice, check_count, check_interval, check_nonnegative
from .flows import HeavyBallFlow
from .game_lifting import GameScheme, GameState, SchemeOnGame
from .games import Game
from .schemes import ExplicitEuler, Leapfrog
from .schemes_games import IMPLICIT_SOLVERS, ImplicitEuler, Korpelevich, Optimistic

tree_map = jax.tree_util.tree_map


def _two_players(fn: str, game: Game) -> None:
    if game.num_players != 2:
        raise ValueError(
            f"{fn}: the game must have 2 players (generator, discriminator), "
            f"got {game.num_players}"
        )


class _TwoPlayers(GameScheme):
    """A scheme of the two-player (generator, discriminator) games."""

    def check_game(self, game):
        _two_players(type(self).__name__, game)


class SimultaneousSteps(GameScheme):
    r"""Simultaneous gradient steps (explicit Euler): :math:`z^+ = z + h v(z)`.

    ``SchemeOnGame(ExplicitEuler())``.
    """

    def lowered(self):
        return SchemeOnGame(ExplicitEuler())


class AlternatingSteps(_TwoPlayers):
    r"""Alternating phases: ``n_d`` discriminator steps, then ``n_g`` generator steps.

    .. math:: \psi \leftarrow \psi + h v_\psi(\theta, \psi)\ (n_d\ \text{times}),
        \qquad \theta \leftarrow \theta + h v_\theta(\theta, \psi)\ (n_g\ \text{times}).

    ``SchemeOnGame(ExplicitEuler(), turns=((1, n_d), (0, n_g)))``.

    Attributes:
      n_d, n_g: steps per phase (static ints >= 1).
    """

    n_d: int = eqx.field(static=True, default=1)
    n_g: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_count("AlternatingSteps", "n_d", self.n_d)
        check_count("AlternatingSteps", "n_g", self.n_g)

    def lowered(self):
        return SchemeOnGame(ExplicitEuler(), turns=((1, self.n_d), (0, self.n_g)))


class ExtraGradient(GameScheme):
    r"""Extragradient (Korpelevich): a look-ahead step, then a step from the start.

    .. math:: \bar z = z + h v(z), \qquad z^+ = z + h v(\bar z).

    ``SchemeOnGame(Korpelevich())``.
    """

    def lowered(self):
        return SchemeOnGame(Korpelevich())


class OptimisticGradient(GameScheme):
    r"""Optimistic gradient (Daskalakis et al. 2018), the previous field in memory.

    .. math:: z_{k+1} = z_k + 2h\,v(z_k) - h\,v(z_{k-1}),

    with :math:`v(z_{-1}) = v(z_0)` (the first step is a plain gradient step).
    ``SchemeOnGame(Optimistic())``: the memory holds the previous gradient
    :math:`-v(z_{k-1})`.
    """

    def lowered(self):
        return SchemeOnGame(Optimistic())


class AlternatingMomentum(_TwoPlayers):
    r"""Alternating heavy ball; negative ``beta`` damps the rotation (Gidel et al.).

    Discriminator, then generator (with the new discriminator), each

    .. math:: z_i^+ = z_i + h\,v_i + \beta\,(z_i - z_i^-),

    Polyak's heavy ball: ``SchemeOnGame(Leapfrog(), HeavyBallFlow(0.0),
    turns=((1, 1), (0, 1)), coefficients={"beta": beta},
    step_coefficient="learning_rate")``, whose buffer (zero at the start) is
    optax's :math:`m = -(z_i - z_i^-)/h`.

    Attributes:
      beta: the momentum, :math:`-1 < \beta < 1`.
    """

    beta: Any = 0.0

    def __check_init__(self):
        check_interval("AlternatingMomentum", "beta", self.beta, -1.0, 1.0)

    def lowered(self):
        return SchemeOnGame(
            Leapfrog(),
            HeavyBallFlow(0.0),  # the coefficients are given: no friction used
            turns=((1, 1), (0, 1)),
            coefficients={"beta": self.beta},
            step_coefficient="learning_rate",
        )


class ConsensusOptimization(GameScheme):
    r"""Consensus optimisation (Mescheder, Nowozin, Geiger 2017), simultaneous.

    .. math:: z^+ = z + h\big(v(z) - \gamma\,\nabla\tfrac12|v(z)|^2\big)
                  = z + h\,(I - \gamma J^\top)\,v(z).

    ``SchemeOnGame(ExplicitEuler(), consensus=gamma)``.

    Attributes:
      gamma: :math:`\gamma \ge 0`.
    """

    gamma: Any = 0.1

    def __check_init__(self):
        check_nonnegative("ConsensusOptimization", "gamma", self.gamma)

    def lowered(self):
        return SchemeOnGame(ExplicitEuler(), consensus=self.gamma)


PROXIMAL_SOLVERS = IMPLICIT_SOLVERS


class ProximalPoint(GameScheme):
    r"""The implicit (proximal-point) step :math:`z^+ = z + h\,v(z^+)`.

    ``SchemeOnGame(ImplicitEuler(solver, iterations))``: the implicit equation
    :math:`F(w) = w - z - h v(w) = 0` is solved from :math:`w_0 = z` by
    ``iterations`` Newton steps :math:`w \leftarrow w - (I - hJ(w))^{-1} F(w)`
    on the flattened parameters (``solver="newton"``, dense Jacobian: small
    games; exact after one step for linear fields, quadratic convergence
    otherwise) or by the fixed-point iteration :math:`w \leftarrow z + h v(w)`
    (``"fixed_point"``, no Jacobian, converges when :math:`h\,\mathrm{Lip}(v)
    < 1`, error :math:`(h\,\mathrm{Lip}(v))^{k}`). Autodiff through the
    unrolled iterations gives the derivative of the implicit step (exactly at
    an equilibrium for Newton).

    Attributes:
      solver: ``"newton"`` or ``"fixed_point"``.
      iterations: solver steps (static, >= 1).
    """

    solver: str = eqx.field(static=True, default="newton")
    iterations: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        check_choice("ProximalPoint", "solver", self.solver, PROXIMAL_SOLVERS)
        check_count("ProximalPoint", "iterations", self.iterations)

    def lowered(self):
        return SchemeOnGame(ImplicitEuler(self.solver, self.iterations))


class SuProximal(_TwoPlayers):
    r"""Su's generator-side proximal regulariser, in phases of ``n_g`` steps.

    ``n_d`` discriminator gradient steps, a snapshot :math:`G_{old}` of the
    generator, then ``n_g`` gradient steps of the generator on

    .. math:: L_G(\theta, \psi) + \lambda\,\mathbb{E}|G_\theta(z) - G_{old}(z)|^2

    (the game's ``generator_distance``). With ``n_g = 1`` the regulariser's
    gradient is zero and this is :class:`AlternatingSteps`.
    ``SchemeOnGame(ExplicitEuler(), turns=((1, n_d), (0, n_g)),
    proximal_player=0, proximal_weight=reg_weight)``.

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

    def lowered(self):
        return SchemeOnGame(
            ExplicitEuler(),
            turns=((1, self.n_d), (0, self.n_g)),
            proximal_player=0,
            proximal_weight=self.reg_weight,
        )


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

    def lowered(self):
        """The lifting that moves the iterates (the average is read-out only)."""
        return self.scheme.lowered()

    @property
    def order(self) -> int:
        return self.scheme.order

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
