r"""A minimisation scheme on a game: :class:`SchemeOnGame`.

A game of :math:`n` players has the field :math:`v(z) = (-\nabla_{z_i}
L_i(z))_i`; to a minimisation scheme (:class:`dynopt.Scheme`) it looks like a
problem whose "gradient" is :math:`-v`: player :math:`i`'s part of it is
``-game.player_field(i, z)``. :class:`SchemeOnGame` runs any scheme on that
gradient, either on all players at once (joint, simultaneous) or in turns
(Gauss-Seidel splitting: each player's steps see the others' latest values),
with optional changes of the players' losses (Su's proximal term on one
player's turn, the consensus term of Mescheder et al.). Every named game scheme
(:class:`dynopt.AlternatingSteps`, :class:`dynopt.ExtraGradient`, ...) is such
a lifting (its :meth:`GameScheme.lowered`).

References:
  L. Mescheder, S. Nowozin, A. Geiger, *The numerics of GANs*, NeurIPS 2017,
  arXiv:1705.10461.
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import check_nonnegative
from .flows import GradientFlow
from .games import Game, replace_player
from .schemes import Scheme

tree_map = jax.tree_util.tree_map


class GameState(NamedTuple):
    """The state of a game scheme (a pytree of arrays).

    Attributes:
      params: the players' parameters, a tuple ``(z_1, ..., z_n)``.
      memory: what the scheme carries between steps (None when nothing).
    """

    params: tuple
    memory: Any = None


class GameScheme(eqx.Module):
    """Base of the game schemes: ``init``, ``step``, ``order``, ``readout``.

    A named game scheme says which :class:`SchemeOnGame` it is
    (:meth:`lowered`); ``init`` and ``step`` run that lifting.
    """

    def lowered(self) -> SchemeOnGame:
        """The :class:`SchemeOnGame` this scheme stands for."""
        raise NotImplementedError(
            f"{type(self).__name__}.lowered: a game scheme says which SchemeOnGame "
            "it runs, or overrides init, step and order"
        )

    def check_game(self, game: Game) -> None:
        """Raises for a game the scheme cannot run (default: none)."""

    @property
    def order(self) -> int:
        """The declared global order against the game's flow."""
        return self.lowered().order

    def init(self, game: Game, params) -> GameState:
        """The state at ``params``: the parameters and the scheme's memory."""
        self.check_game(game)
        return self.lowered().init(game, params)

    def step(self, game: Game, state: GameState, h) -> GameState:
        """One step of size ``h`` (a float or a traced scalar)."""
        self.check_game(game)
        return self.lowered().step(game, state, h)

    def readout(self, state: GameState):
        """The parameters a user reads (the average for :class:`GameEMA`)."""
        return state.params


def _as_turns(turns):
    """Lists of pairs as tuples (static fields must hash); anything else as is."""
    if isinstance(turns, list | tuple):
        return tuple(tuple(t) if isinstance(t, list) else t for t in turns)
    return turns


def _is_index(value, minimum: int) -> bool:
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and value >= minimum
    )


def _neg(tree):
    return tree_map(jnp.negative, tree)


def _apply(params, delta):
    """``params + delta`` leaf by leaf, in each parameter's dtype (optax's)."""
    return tree_map(lambda p, u: (p + u).astype(p.dtype), params, delta)


def _squared_norm(tree):
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree))


class SchemeOnGame(GameScheme):
    r"""Any minimisation scheme run on a game, whose gradient is minus its field.

    Player :math:`i` descends :math:`L_i + R_i` over :math:`z_i`, so the scheme
    sees the gradient :math:`g_i(z) = -v_i(z) + \nabla_{z_i} R_i(z)`, with

    * the proximal term :math:`R_k = w\,d(z_k, z_k^{snap})` on player
      :math:`k` = ``proximal_player`` (``d`` the game's ``distance``, the
      snapshot taken at the start of that player's turn; Su's regulariser);
    * the consensus term :math:`R_i = \frac{\gamma}{2}|v(z)|^2` on every player
      (``consensus`` = :math:`\gamma`), whose joint gradient is
      :math:`-v + \gamma J^\top v`: the field becomes :math:`(I - \gamma
      J^\top) v` (Mescheder et al. 2017). With a game metric :math:`P`
      (:meth:`dynopt.Game.precondition`), :math:`v` is the losses' field
      (:meth:`~dynopt.Game.loss_field`) and the step's field is
      :math:`P (I - \gamma J^\top) v`, as an RMSProp step on the consensus
      losses.

    With ``turns=None`` the scheme advances all players at once (its buffers
    are pytrees of the whole parameter tuple). With ``turns``, a tuple of
    ``(player, n_steps)`` pairs, one step runs ``n_steps`` steps of each
    listed player in order, the others held at their latest values; each
    player has its own buffers and step count (a player may take several
    turns). ``((1, n_d), (0, n_g))`` is the alternating GAN loop,
    discriminator first.

    The memory is ``{"buffers": ..., "count": ...}``: the scheme's buffers and
    the int32 step count passed to its ``step`` (joint: one of each; turns: a
    tuple over the players). The joint lifting starts from
    :meth:`~dynopt.Scheme.init_at` (e.g. :class:`dynopt.Optimistic` with the
    previous gradient equal to the first), turns from ``init`` and count 0.

    Attributes:
      scheme: a :class:`dynopt.Scheme`.
      flow: a flow the scheme supports (default ``GradientFlow()``); a
        second-order flow such as ``HeavyBallFlow`` gives every player a
        velocity.
      turns: None (joint) or a tuple of ``(player, n_steps)`` pairs (static).
      coefficients: scheme coefficients given directly (numbers or arrays,
        e.g. ``{"beta": -0.5}`` for :class:`dynopt.Leapfrog`), as dynopt's
        factories give them; they replace ``scheme.coefficients(flow, h)``.
      step_coefficient: with ``coefficients``, the name of the coefficient the
        step ``h`` sets (e.g. ``"learning_rate"``); None: ``"h"``. Without
        ``coefficients``: None, the scheme maps ``h`` itself.
      proximal_player: the player with the proximal term, or None.
      proximal_weight: its weight :math:`w \ge 0`.
      consensus: :math:`\gamma \ge 0`, or None for no consensus term.

    Raises:
      TypeError: ``scheme`` is not a dynopt scheme, or ``flow`` is not one the
        scheme supports.
      ValueError: a bad ``turns`` value (not pairs, a player < 0 or one the
        game does not have, ``n_steps < 1``), a ``proximal_player`` that has
        no turn, a negative ``proximal_weight`` or ``consensus``.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> lifted = dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((1, 5), (0, 1)))
      >>> game, z = dynopt.dirac_gan(), (jnp.array(1.0), jnp.array(0.5))
      >>> a = lifted.step(game, lifted.init(game, z), 0.1).params
      >>> b = dynopt.AlternatingSteps(n_d=5).step(game, lifted.init(game, z), 0.1)
      >>> all(bool(x == y) for x, y in zip(a, b.params))
      True
    """

    scheme: Scheme
    flow: Any = eqx.field(default_factory=GradientFlow)
    turns: tuple | None = eqx.field(static=True, default=None, converter=_as_turns)
    coefficients: dict | None = None
    step_coefficient: str | None = eqx.field(static=True, default=None)
    proximal_player: int | None = eqx.field(static=True, default=None)
    proximal_weight: Any = 0.0
    consensus: Any = None

    def __check_init__(self):
        fn = "SchemeOnGame"
        if not isinstance(self.scheme, Scheme):
            raise TypeError(
                f"{fn}: `scheme` must be a dynopt Scheme (e.g. dynopt.Heun()), "
                f"got {self.scheme!r}"
            )
        self.scheme.check_flow(fn, self.flow)
        turns = self.turns
        if turns is not None:
            pairs = isinstance(turns, tuple) and turns
            if not pairs or not all(
                isinstance(t, tuple) and len(t) == 2 for t in turns
            ):
                raise ValueError(
                    f"{fn}: `turns` must be None or a non-empty tuple of (player, "
                    f"n_steps) pairs, got {turns!r}"
                )
            for player, n in turns:
                if not _is_index(player, 0):
                    raise ValueError(
                        f"{fn}: each player in `turns` must be an int >= 0, "
                        f"got {player!r}"
                    )
                if not _is_index(n, 1):
                    raise ValueError(
                        f"{fn}: each n_steps in `turns` must be an int >= 1, got {n!r}"
                    )
        if self.proximal_player is not None:
            p = self.proximal_player
            if not _is_index(p, 0) or (
                turns is not None and p not in {t[0] for t in turns}
            ):
                raise ValueError(
                    f"{fn}: `proximal_player` must be a player that moves (an int "
                    f">= 0, in `turns` when given), got {p!r}"
                )
        check_nonnegative(fn, "proximal_weight", self.proximal_weight)
        if self.consensus is not None:
            check_nonnegative(fn, "consensus", self.consensus)
        if self.step_coefficient is not None and self.coefficients is None:
            raise ValueError(
                f"{fn}: `step_coefficient` goes with `coefficients`, got "
                f"step_coefficient={self.step_coefficient!r} and coefficients=None"
            )

    def lowered(self) -> SchemeOnGame:
        return self

    @property
    def order(self) -> int:
        """The scheme's order on its flow when joint; 1 with turns (splitting).

        Against the flow of the field the scheme sees (with consensus,
        :math:`(I - \\gamma J^\\top)v`); with turns, against the flow in which
        player ``i`` runs ``n_steps`` times as fast.
        """
        if self.turns is None:
            return self.scheme.order_for(self.flow)
        return min(1, self.scheme.order_for(self.flow))

    def check_game(self, game: Game) -> None:
        if self.turns is None:
            return
        n = game.num_players
        for player, _ in self.turns:
            if player >= n:
                raise ValueError(
                    f"SchemeOnGame: each player in `turns` must be < the game's "
                    f"number of players ({n}), got {player!r}"
                )

    # -- the gradient the scheme sees ----------------------------------------

    def _penalty(self, game, i, params, snapshot):
        """Player ``i``'s extra loss term as a function of its own parameters."""
        terms = []
        if self.proximal_player == i:
            w = self.proximal_weight
            terms.append(lambda p: w * game.distance(p, snapshot))
        if self.consensus is not None:
            gamma = self.consensus
            terms.append(
                lambda p: (
                    0.5
                    * gamma
                    * _squared_norm(game.loss_field(replace_player(params, i, p)))
                )
            )
        if not terms:
            return None
        return lambda p: sum(t(p) for t in terms)

    def player_gradient(self, game: Game, i: int, params, snapshot=None):
        r"""Player ``i``'s gradient :math:`-v_i + \nabla_{z_i} R_i` at ``params``.

        ``snapshot`` is the proximal term's anchor (default: ``params[i]``).
        """
        params = tuple(params)
        snapshot = params[i] if snapshot is None else snapshot
        penalty = self._penalty(game, i, params, snapshot)
        return _neg(game.player_field(i, params, penalty))

    def gradient(self, game: Game, params, snapshot=None) -> tuple:
        r"""The joint gradient :math:`(P_i(-v_i + \nabla_{z_i} R_i))_i` at ``params``.

        The consensus term goes through one vector-Jacobian product,
        :math:`P(-v + \gamma J^\top v)` (:math:`P` the game's
        :meth:`~dynopt.Game.precondition`, the identity by default);
        ``snapshot`` is the proximal term's anchor (default: the proximal
        player's ``params``).
        """
        params = tuple(params)
        k = self.proximal_player
        if k is None:
            field = None
        else:
            anchor = params[k] if snapshot is None else snapshot
            field = tuple(
                game.player_field(
                    i,
                    params,
                    (lambda p: self.proximal_weight * game.distance(p, anchor))
                    if i == k
                    else None,
                )
                for i in range(game.num_players)
            )
        if self.consensus is None:
            return _neg(game.field(params) if field is None else field)
        # The consensus term is one of the losses: |v|^2 of the losses' field,
        # its gradient through the game's metric like theirs.
        v, pullback = jax.vjp(game.loss_field, params)
        (jtv,) = pullback(v)
        if field is None:
            field = tuple(game.precondition(i, vi) for i, vi in enumerate(v))
        jtv = tuple(game.precondition(i, t) for i, t in enumerate(jtv))
        gamma = self.consensus
        return tree_map(lambda a, b: gamma * b - a, field, jtv)

    # -- the scheme ----------------------------------------------------------

    def _coefficients(self, h) -> dict:
        if self.coefficients is None:
            return self.scheme.coefficients(self.flow, h)
        out = {k: jnp.asarray(v) for k, v in self.coefficients.items()}
        out[self.step_coefficient or "h"] = h
        return out

    def init(self, game: Game, params) -> GameState:
        self.check_game(game)
        params = tuple(params)
        if self.turns is None:
            k = self.proximal_player
            anchor = None if k is None else params[k]
            buffers, count = self.scheme.init_at(
                self.flow, params, lambda z: self.gradient(game, z, anchor)
            )
            memory = {"buffers": buffers, "count": jnp.asarray(count, jnp.int32)}
            return GameState(params, memory)
        moving = {t[0] for t in self.turns}
        buffers = tuple(
            self.scheme.init(self.flow, p) if i in moving else {}
            for i, p in enumerate(params)
        )
        count = tuple(jnp.zeros((), jnp.int32) for _ in params)
        return GameState(params, {"buffers": buffers, "count": count})

    def step(self, game: Game, state: GameState, h) -> GameState:
        self.check_game(game)
        h = jnp.asarray(h)
        coefficients = self._coefficients(h)
        z, memory = tuple(state.params), state.memory
        if self.turns is None:
            k = self.proximal_player
            anchor = None if k is None else z[k]

            def grad_fn(w):
                return self.gradient(game, w, anchor)

            delta, buffers = self.scheme.step(
                self.flow,
                coefficients,
                z,
                memory["buffers"],
                grad_fn(z),
                grad_fn,
                memory["count"],
            )
            memory = {"buffers": buffers, "count": memory["count"] + 1}
            return GameState(_apply(z, delta), memory)
        buffers, count = list(memory["buffers"]), list(memory["count"])
        for i, n in self.turns:
            snapshot = z[i]

            def body(carry, _, i=i, snapshot=snapshot):
                z, b, c = carry

                def grad_fn(p):
                    return self.player_gradient(
                        game, i, replace_player(z, i, p), snapshot
                    )

                delta, b = self.scheme.step(
                    self.flow, coefficients, z[i], b, grad_fn(z[i]), grad_fn, c
                )
                return (replace_player(z, i, _apply(z[i], delta)), b, c + 1), None

            carry = (z, buffers[i], count[i])
            z, buffers[i], count[i] = jax.lax.scan(body, carry, None, length=n)[0]
        return GameState(z, {"buffers": tuple(buffers), "count": tuple(count)})
