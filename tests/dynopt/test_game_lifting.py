r"""Any minimisation scheme on a game (:class:`dynopt.SchemeOnGame`), float64.

The bilinear game :math:`\min_x\max_y a x y` has the linear field
:math:`v = Jz`, :math:`J = \begin{pmatrix} 0 & -a \\ a & 0\end{pmatrix}`, so
its flow is :math:`e^{tJ}z_0` and, on a second-order flow
:math:`z'' + \lambda z' = v(z)`, :math:`e^{tB}(z_0, 0)` with
:math:`B = \begin{pmatrix} 0 & I \\ J & -\lambda I\end{pmatrix}` (scipy's
``expm``, independent of dynopt). A Runge-Kutta scheme's one-step matrix is
its stability polynomial :math:`R(hJ)`, whose eigenvalues are :math:`R(\pm
iha)`: Heun's :math:`R(w) = 1 + w + w^2/2`, RK4's
:math:`\sum_{j \le 4} w^j/j!`.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import dynopt
from tests import tolerances as tol

A = 1.3
Z0 = (0.8, -0.3)
HORIZON = 2.0
STEPS = [0.1, 0.05, 0.025, 0.0125]
J = np.array([[0.0, -A], [A, 0.0]])


@eqx.filter_jit
def _final(lifted, game, z0, h, n):
    def body(_, state):
        return lifted.step(game, state, h)

    return jax.lax.fori_loop(0, n, body, lifted.init(game, z0)).params


def _errors(lifted, exact):
    game = dynopt.bilinear_game(A)
    z0 = tuple(jnp.asarray(c, jnp.float64) for c in Z0)
    errors = []
    for h in STEPS:
        n = int(round(HORIZON / h))
        z = np.asarray(_final(lifted, game, z0, jnp.float64(h), n))
        errors.append(np.max(np.abs(z - exact)))
    return errors


@pytest.mark.parametrize(
    "lifted",
    [
        dynopt.SchemeOnGame(dynopt.Heun()),
        dynopt.SchemeOnGame(dynopt.RK4()),
        dynopt.SchemeOnGame(dynopt.Korpelevich()),
        dynopt.SchemeOnGame(dynopt.Optimistic()),
    ],
    ids=lambda s: s.scheme.name,
)
def test_lifted_scheme_has_its_order_on_the_rotation(x64, lifted):
    exact = scipy.linalg.expm(HORIZON * J) @ np.asarray(Z0)
    measured = dynopt.empirical_order(STEPS, _errors(lifted, exact))
    assert abs(measured - lifted.order) < tol.ORDER_SLOPE, measured


def test_lifted_scheme_on_a_second_order_flow(x64):
    """Conformal symplectic on z'' + lam z' = v(z): order 2 against expm(tB)."""
    lam = 1.5
    lifted = dynopt.SchemeOnGame(
        dynopt.ConformalSymplectic(), flow=dynopt.HeavyBallFlow(friction=lam)
    )
    b = np.block([[np.zeros((2, 2)), np.eye(2)], [J, -lam * np.eye(2)]])
    exact = (scipy.linalg.expm(HORIZON * b) @ np.r_[Z0, 0.0, 0.0])[:2]
    measured = dynopt.empirical_order(STEPS, _errors(lifted, exact))
    assert lifted.order == 2
    assert abs(measured - 2) < tol.ORDER_SLOPE, measured


@pytest.mark.parametrize(
    "scheme, stability",
    [
        (dynopt.Heun(), lambda w: 1 + w + w**2 / 2),
        (dynopt.RK4(), lambda w: sum(w**j / math.factorial(j) for j in range(5))),
    ],
)
def test_spectral_radius_of_a_lifted_scheme_is_its_stability_polynomial(
    x64, scheme, stability
):
    """jax.jacfwd through the lifted step (h traced) gives max |R(+- i h a)|."""
    game = dynopt.bilinear_game(A)
    for h in (0.2, 0.9, 2.1):
        got = dynopt.game_spectral_radius(game, dynopt.SchemeOnGame(scheme), h)
        np.testing.assert_allclose(got, abs(stability(1j * h * A)), **tol.CLOSED_FORM)


def test_turns_are_the_alternating_phase_loop_bit_for_bit():
    """float32, off the equilibrium: the hand loop z_i <- z_i + h v_i(z)."""
    game = dynopt.dirac_gan("nonsaturating", r1_weight=0.3)
    z0 = (jnp.asarray(0.7, jnp.float32), jnp.asarray(-0.4, jnp.float32))
    h = jnp.asarray(0.37, jnp.float32)
    lifted = dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((1, 3), (0, 2)))

    @jax.jit
    def hand(z):
        for _ in range(4):
            for i, n in ((1, 3), (0, 2)):
                for _ in range(n):
                    new = z[i] + h * game.player_field(i, z)
                    z = (new, z[1]) if i == 0 else (z[0], new)
        return z

    @jax.jit
    def run(z):
        state = lifted.init(game, z)
        for _ in range(4):
            state = lifted.step(game, state, h)
        return state.params

    expected = hand(z0)
    for got in (run(z0), _final(dynopt.AlternatingSteps(3, 2), game, z0, h, 4)):
        assert all(bool(a == b) for a, b in zip(got, expected)), (got, expected)


def test_consensus_term_gives_v_minus_gamma_jt_v(x64):
    """Each player's loss + gamma/2 |v|^2 (per-player gradients, turns path) and
    the joint v - gamma J^T v (one vjp) agree off the equilibrium; on the
    bilinear game J^T v = a^2 z, so the field is (-a y - g a^2 x, a x - g a^2 y).
    """
    gamma = 0.7
    lifted = dynopt.SchemeOnGame(dynopt.ExplicitEuler(), consensus=gamma)
    game = dynopt.dirac_gan("nonsaturating", r1_weight=0.2)
    z = (jnp.asarray(0.9), jnp.asarray(-0.6))
    joint = lifted.gradient(game, z)
    per_player = [lifted.player_gradient(game, i, z) for i in range(2)]
    np.testing.assert_allclose(joint, per_player, **tol.CLOSED_FORM)
    x, y = 0.9, -0.6
    expected = [A * y + gamma * A**2 * x, -A * x + gamma * A**2 * y]
    bilinear = dynopt.bilinear_game(A)
    np.testing.assert_allclose(
        lifted.gradient(bilinear, z), expected, **tol.CLOSED_FORM
    )
    np.testing.assert_allclose(
        [lifted.player_gradient(bilinear, i, z) for i in range(2)],
        expected,
        **tol.CLOSED_FORM,
    )


def test_named_schemes_say_which_scheme_runs():
    lowered = {
        dynopt.SimultaneousSteps(): (dynopt.ExplicitEuler, None),
        dynopt.AlternatingSteps(n_d=5): (dynopt.ExplicitEuler, ((1, 5), (0, 1))),
        dynopt.ExtraGradient(): (dynopt.Korpelevich, None),
        dynopt.OptimisticGradient(): (dynopt.Optimistic, None),
        dynopt.AlternatingMomentum(-0.5): (dynopt.Leapfrog, ((1, 1), (0, 1))),
        dynopt.ConsensusOptimization(0.3): (dynopt.ExplicitEuler, None),
        dynopt.ProximalPoint(): (dynopt.ImplicitEuler, None),
        dynopt.SuProximal(n_g=4): (dynopt.ExplicitEuler, ((1, 1), (0, 4))),
    }
    for named, (scheme, turns) in lowered.items():
        low = named.lowered()
        assert type(low.scheme) is scheme and low.turns == turns, named
        assert named.order == 1
    assert dynopt.SuProximal().lowered().proximal_player == 0
    assert dynopt.GameEMA(dynopt.ExtraGradient()).lowered() == (
        dynopt.ExtraGradient().lowered()
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: dynopt.SchemeOnGame("heun"), TypeError,
         r"SchemeOnGame: `scheme` must be a dynopt Scheme \(e\.g\. dynopt\.Heun\(\)\), "
         r"got 'heun'"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExtraGradient()), TypeError,
         r"SchemeOnGame: `scheme` must be a dynopt Scheme .*got ExtraGradient\(\)"),
        (lambda: dynopt.SchemeOnGame(dynopt.Leapfrog()), TypeError,
         r"SchemeOnGame: `flow` must be one of \('HeavyBallFlow',\) for Leapfrog, "
         r"got GradientFlow"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=(1, 2)),
         ValueError, r"SchemeOnGame: `turns` must be None or a non-empty tuple of "
         r"\(player, n_steps\) pairs, got \(1, 2\)"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=()),
         ValueError, r"SchemeOnGame: `turns` must be None or a non-empty tuple .*"
         r"got \(\)"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((-1, 2),)),
         ValueError, r"SchemeOnGame: each player in `turns` must be an int >= 0, "
         r"got -1"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=[(1, 0)]),
         ValueError, r"SchemeOnGame: each n_steps in `turns` must be an int >= 1, "
         r"got 0"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((2, 1),)).init(
            dynopt.bilinear_game(), (jnp.ones(()), jnp.ones(()))),
         ValueError, r"SchemeOnGame: each player in `turns` must be < the game's "
         r"number of players \(2\), got 2"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((1, 1),),
                                     proximal_player=0),
         ValueError, r"SchemeOnGame: `proximal_player` must be a player that moves "
         r"\(an int >= 0, in `turns` when given\), got 0"),
        (lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), consensus=-0.1),
         ValueError, r"SchemeOnGame: `consensus` must satisfy 0 <= consensus < inf, "
         r"got -0\.1"),
        (lambda: dynopt.SchemeOnGame(dynopt.Leapfrog(), dynopt.HeavyBallFlow(0.0),
                                     step_coefficient="learning_rate"),
         ValueError, r"SchemeOnGame: `step_coefficient` goes with `coefficients`, "
         r"got step_coefficient='learning_rate' and coefficients=None"),
    ],
)  # fmt: skip
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match + "$"):
        call()
