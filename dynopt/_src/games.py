r"""Games as flows: n players, each minimising its own loss over its own parameters.

A game of :math:`n` players with parameters :math:`z = (z_1, \dots, z_n)` and
losses :math:`L_i(z)` has the vector field

.. math:: v(z) = \big(-\nabla_{z_1} L_1(z), \dots, -\nabla_{z_n} L_n(z)\big),

which is not a gradient: near a GAN's equilibrium its Jacobian has complex
eigenvalues and the flow rotates. :class:`Game` holds the losses and gives the
field, its Jacobian at a point and its eigenvalues; :func:`dynopt.game_trajectory`
integrates the flow, :mod:`dynopt`'s game schemes discretise it.

Built-in games: :func:`dirac_gan` (Mescheder, Geiger, Nowozin 2018) and
:func:`bilinear_game`.

References:
  L. Mescheder, A. Geiger, S. Nowozin, *Which training methods for GANs do
  actually converge?*, ICML 2018, arXiv:1801.04406.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

tree_map = jax.tree_util.tree_map


def _squared_distance(p, p_old):
    """``sum |p - p_old|^2`` over the leaves (the default generator distance)."""
    return sum(
        jnp.sum(jnp.square(a - b))
        for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(p_old))
    )


def replace_player(params: tuple, i: int, value) -> tuple:
    """``params`` with player ``i``'s parameters replaced by ``value``."""
    return params[:i] + (value,) + params[i + 1 :]


class Game(eqx.Module):
    r"""A game: one loss per player, each a function of every player's parameters.

    Parameters are a tuple ``(z_1, ..., z_n)`` of pytrees, one per player; player
    ``i`` minimises ``losses[i](params)`` over ``params[i]``. Player 0 is the
    generator side and the last player the discriminator in the two-player
    games of this library.

    Attributes:
      losses: ``n`` callables ``params -> scalar``.
      equilibrium: the equilibrium point (a params tuple) or None.
      generator_distance: ``(z_0, z_0_old) -> scalar``, the generator-side
        distance of Su's proximal regulariser (e.g.
        :math:`\mathbb{E}|G(z) - G_{old}(z)|^2`); None: the squared parameter
        distance.
      name: a short description.
    """

    losses: tuple = eqx.field(static=True)
    equilibrium: Any = None
    generator_distance: Callable | None = eqx.field(static=True, default=None)
    name: str = eqx.field(static=True, default="game")

    @property
    def num_players(self) -> int:
        """The number of players ``n``."""
        return len(self.losses)

    def player_loss(self, i: int, params: tuple):
        """Player ``i``'s loss as a function of its own parameters only."""
        return lambda p: self.losses[i](replace_player(tuple(params), i, p))

    def player_gradient(self, i: int, params: tuple):
        r""":math:`\nabla_{z_i} L_i(z)` (a pytree like ``params[i]``)."""
        return jax.grad(self.player_loss(i, params))(params[i])

    def precondition(self, i: int, tree):
        r"""Player ``i``'s metric :math:`P_i` applied to a gradient-like ``tree``.

        The identity here; a subclass may scale the players' gradients (e.g. a
        diagonal RMS preconditioner). :meth:`player_field` and the schemes'
        added terms (consensus) go through it.
        """
        return tree

    def player_field(self, i: int, params: tuple, penalty=None):
        r"""Player ``i``'s part of the field, :math:`-P_i\nabla_{z_i}(L_i + R)(z)`.

        ``penalty`` is an optional extra term :math:`R(z_i)` of that player's
        loss (e.g. Su's proximal term); :math:`P_i` is :meth:`precondition`
        (the identity unless a subclass sets a metric), and every scheme goes
        through it.
        """
        return self.precondition(i, self.loss_player_field(i, params, penalty))

    def loss_player_field(self, i: int, params: tuple, penalty=None):
        r""":math:`-\nabla_{z_i}(L_i + R)(z)`, the field before the metric."""
        params = tuple(params)
        loss = self.player_loss(i, params)
        if penalty is not None:
            base = loss
            loss = lambda p: base(p) + penalty(p)  # noqa: E731
        return tree_map(jnp.negative, jax.grad(loss)(params[i]))

    def field(self, params: tuple) -> tuple:
        r"""The vector field :math:`v(z) = (-P_i\nabla_{z_i} L_i(z))_i`."""
        params = tuple(params)
        return tuple(self.player_field(i, params) for i in range(self.num_players))

    def loss_field(self, params: tuple) -> tuple:
        r"""The losses' field :math:`(-\nabla_{z_i} L_i(z))_i`, without the metric.

        Equal to :meth:`field` unless a subclass sets :meth:`precondition`.
        """
        params = tuple(params)
        return tuple(self.loss_player_field(i, params) for i in range(self.num_players))

    def distance(self, p, p_old):
        """The generator-side distance (see ``generator_distance``)."""
        if self.generator_distance is None:
            return _squared_distance(p, p_old)
        return self.generator_distance(p, p_old)

    def jacobian(self, params: tuple) -> jax.Array:
        r"""The Jacobian :math:`\partial v / \partial z` of the flattened field.

        Rows and columns follow ``jax.flatten_util.ravel_pytree(params)``.
        """
        flat, unravel = ravel_pytree(tuple(params))
        return jax.jacfwd(lambda f: ravel_pytree(self.field(unravel(f)))[0])(flat)

    def eigenvalues(self, params: tuple) -> np.ndarray:
        """The eigenvalues of :meth:`jacobian` (complex NumPy array, unsorted)."""
        return np.linalg.eigvals(np.asarray(self.jacobian(params)))


# ----------------------------------------------------------------------------
# Built-in games.

DIRAC_LOSSES = ("standard", "nonsaturating", "wasserstein")


def _check_real(fn: str, name: str, value, minimum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: `{name}` must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{fn}: `{name}` must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum:g}, got {value!r}")


def dirac_gan(loss: str = "standard", r1_weight: float = 0.0) -> Game:
    r"""The Dirac-GAN: data at 0, generator :math:`\theta`, :math:`D(x) = \psi x`.

    The generator is a point mass at :math:`\theta`, the discriminator's logit
    (critic) is :math:`D_\psi(x) = \psi x`; the real data are a point mass at 0.
    With :math:`s = \psi\theta` the logit of the fake sample, the players'
    losses are

    * ``"standard"`` (minimax): :math:`L_D = \mathrm{softplus}(s) + \log 2`,
      :math:`L_G = -\mathrm{softplus}(s)`;
    * ``"nonsaturating"``: the same :math:`L_D`,
      :math:`L_G = \mathrm{softplus}(-s) = -\log \sigma(s)`;
    * ``"wasserstein"``: :math:`L_D = s`, :math:`L_G = -s` (no clipping),

    and the zero-centred penalty :math:`\frac{\gamma}{2}|\nabla_x D(0)|^2 =
    \frac{\gamma}{2}\psi^2` on the real data is added to :math:`L_D`. Parameters
    are ``(theta, psi)``, scalar arrays; the equilibrium is (0, 0). There the
    Jacobian of the field is

    .. math:: J = \begin{pmatrix} 0 & f'(0) \\ -f'(0) & -\gamma \end{pmatrix},
        \qquad \lambda_\pm = -\frac{\gamma}{2} \pm \sqrt{\frac{\gamma^2}{4} - f'(0)^2},

    with :math:`f'(0) = \sigma(0) = 1/2` for the two cross-entropy losses and 1
    for the Wasserstein loss: purely imaginary without the penalty.

    Args:
      loss: ``"standard"``, ``"nonsaturating"`` or ``"wasserstein"``.
      r1_weight: :math:`\gamma \ge 0`.

    Returns:
      A :class:`Game` with two players (generator, discriminator); its
      generator distance is :math:`(\theta - \theta_{old})^2`, i.e.
      :math:`\mathbb{E}|G(z) - G_{old}(z)|^2` for a point-mass generator.

    Raises:
      ValueError, TypeError: unknown ``loss``; ``r1_weight`` not a finite
        number >= 0.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> game = dynopt.dirac_gan()
      >>> [float(v) for v in game.field((jnp.array(1.0), jnp.array(0.0)))]
      [0.0, -0.5]

    References:
      L. Mescheder, A. Geiger, S. Nowozin, *Which training methods for GANs do
      actually converge?*, ICML 2018, arXiv:1801.04406.
    """
    fn = "dirac_gan"
    if not isinstance(loss, str) or loss not in DIRAC_LOSSES:
        raise ValueError(f"{fn}: `loss` must be one of {DIRAC_LOSSES}, got {loss!r}")
    _check_real(fn, "r1_weight", r1_weight, 0.0)
    gamma = float(r1_weight)
    return Game(
        losses=(_DiracLoss(loss, 0, gamma), _DiracLoss(loss, 1, gamma)),
        equilibrium=(jnp.zeros(()), jnp.zeros(())),
        generator_distance=_squared_distance,
        name=f"dirac_gan(loss={loss!r}, r1_weight={gamma!r})",
    )


class _DiracLoss(eqx.Module):
    """A Dirac-GAN player's loss; equal constants compare (and hash) equal, so
    games built twice share compiled code."""

    kind: str = eqx.field(static=True)
    player: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)

    def __call__(self, params):
        theta, psi = params
        s = psi * theta  # the fake sample's logit; the real one is psi * 0
        if self.player == 1:
            penalty = 0.5 * self.gamma * jnp.square(psi)
            if self.kind == "wasserstein":
                return s - psi * 0.0 + penalty
            return jax.nn.softplus(s) + jax.nn.softplus(-psi * 0.0) + penalty
        if self.kind == "wasserstein":
            return -s
        if self.kind == "standard":
            return -jax.nn.softplus(s)
        return jax.nn.softplus(-s)


class _BilinearLoss(eqx.Module):
    """``sign * a * x * y`` (hashable by value, as :class:`_DiracLoss`)."""

    coupling: float = eqx.field(static=True)

    def __call__(self, params):
        x, y = params
        return self.coupling * x * y


def bilinear_game(a: float = 1.0) -> Game:
    r"""The bilinear game :math:`\min_x \max_y\, a\,x\,y`.

    Player 0 (``x``) minimises :math:`a x y`, player 1 (``y``) minimises
    :math:`-a x y`; the field is :math:`v = (-a y, a x)`, a rotation with
    Jacobian eigenvalues :math:`\pm i a`, and the flow from
    :math:`(x_0, y_0)` is

    .. math:: x(t) = x_0\cos(at) - y_0\sin(at), \qquad
              y(t) = y_0\cos(at) + x_0\sin(at).

    Args:
      a: the coupling, a finite real number.

    Returns:
      A two-player :class:`Game` with equilibrium (0, 0).

    Raises:
      ValueError, TypeError: ``a`` not a finite real number.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> game = dynopt.bilinear_game(2.0)
      >>> [float(v) for v in game.field((jnp.array(1.0), jnp.array(0.5)))]
      [-1.0, 2.0]
    """
    fn = "bilinear_game"
    _check_real(fn, "a", a)
    coupling = float(a)
    return Game(
        losses=(_BilinearLoss(coupling), _BilinearLoss(-coupling)),
        equilibrium=(jnp.zeros(()), jnp.zeros(())),
        generator_distance=_squared_distance,
        name=f"bilinear_game(a={coupling!r})",
    )
