r"""Games as flows and game schemes against closed forms derived by hand (float64).

Near the equilibrium (0, 0) of the Dirac-GAN and of the bilinear game the field
is linear, :math:`v(z) = J z`. For the Dirac-GAN with parameters
:math:`(\theta, \psi)`, fake logit :math:`s = \psi\theta` and loss function
:math:`f` (:math:`L_D = f_D(s) + \frac{\gamma}{2}\psi^2`, :math:`L_G` as in
:func:`dynopt.dirac_gan`), differentiating :math:`v_\theta = -\partial_\theta
L_G` and :math:`v_\psi = -\partial_\psi L_D` at 0 gives

.. math:: J = \begin{pmatrix} 0 & c \\ -c & -\gamma \end{pmatrix},
    \qquad c = f'(0) = \sigma(0) = 1/2 \ \text{(standard, non-saturating)},
    \quad c = 1 \ \text{(Wasserstein)},

and :math:`\det(\lambda - J) = \lambda^2 + \gamma\lambda + c^2`, so
:math:`\lambda_\pm = -\gamma/2 \pm \sqrt{\gamma^2/4 - c^2}`. The bilinear game
:math:`\min_x\max_y a x y` has :math:`v = (-a y, a x)`, i.e. the same matrix
with :math:`c = -a`, :math:`\gamma = 0`. Each scheme's closed form is derived in
its test's docstring from this :math:`J`; the code under test differentiates the
real step with ``jax.jacobian``, so the two computations are independent.
"""

import math
import re

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import dynopt
from tests import tolerances as tol

C = 0.5  # f'(0) of the standard Dirac-GAN
STEPS = (0.1, 0.4, 0.9, 1.7)


def _rho(method, h, game=None, **options):
    game = dynopt.dirac_gan() if game is None else game
    return dynopt.game_spectral_radius(game, method, h, **options)


def _rho_2x2(matrix):
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(matrix)))))


def _check_boundary(method, limit, below, **options):
    """``below(rho)`` at 0.99 x the limit; divergence (rho > 1) at 1.01 x."""
    assert below(_rho(method, 0.99 * limit, **options))
    assert _rho(method, 1.01 * limit, **options) > 1 + 1e-6


@pytest.mark.parametrize(
    "loss, c", [("standard", 0.5), ("nonsaturating", 0.5), ("wasserstein", 1.0)]
)
@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.5])
def test_dirac_gan_jacobian_eigenvalues(x64, loss, c, gamma):
    """lambda = -gamma/2 +- sqrt(gamma^2/4 - c^2) (complex for gamma < 2c)."""
    game = dynopt.dirac_gan(loss, r1_weight=gamma)
    disc = complex(gamma**2 / 4 - c**2)
    expected = np.array([-gamma / 2 + disc**0.5, -gamma / 2 - disc**0.5])
    got = game.eigenvalues(game.equilibrium)
    key = lambda z: (round(z.real, 9), round(z.imag, 9))  # noqa: E731
    np.testing.assert_allclose(
        sorted(got, key=key), sorted(expected, key=key), **tol.CLOSED_FORM
    )
    np.testing.assert_allclose(
        game.jacobian(game.equilibrium), [[0, c], [-c, -gamma]], **tol.CLOSED_FORM
    )


def test_bilinear_flow_is_the_rotation(x64):
    """x(t) = x0 cos(at) - y0 sin(at), y(t) = y0 cos(at) + x0 sin(at)."""
    a, x0, y0 = 1.5, 0.8, -0.3
    t = np.linspace(0.0, 4.0, 9)
    traj = dynopt.game_trajectory(
        dynopt.bilinear_game(a), (jnp.array(x0), jnp.array(y0)), t
    )
    x, y = traj.params
    np.testing.assert_allclose(
        x, x0 * np.cos(a * t) - y0 * np.sin(a * t), **tol.ODE_SOLVE_F64
    )
    np.testing.assert_allclose(
        y, y0 * np.cos(a * t) + x0 * np.sin(a * t), **tol.ODE_SOLVE_F64
    )
    # The losses are a x y and -a x y.
    np.testing.assert_allclose(traj.losses[:, 0], a * x * y, **tol.CLOSED_FORM)
    np.testing.assert_allclose(traj.losses[:, 1], -a * x * y, **tol.CLOSED_FORM)


def test_simultaneous_steps_diverge_for_every_step(x64):
    """I + hJ has eigenvalues 1 +- i h c, modulus sqrt(1 + h^2 c^2) > 1."""
    for h in (1e-3, *STEPS, 10.0):
        rho = _rho("simultaneous", h)
        np.testing.assert_allclose(rho, math.sqrt(1 + h**2 * C**2), **tol.CLOSED_FORM)
        assert rho > 1


def test_simultaneous_steps_with_r1_converge_below_gamma_over_c2(x64):
    """gamma < 2c: |1 + h lambda|^2 = 1 - h gamma + h^2 c^2 < 1 iff h < gamma/c^2."""
    gamma = 0.4
    game = dynopt.dirac_gan(r1_weight=gamma)
    for h in STEPS[:2]:
        expected = math.sqrt(1 - h * gamma + h**2 * C**2)
        np.testing.assert_allclose(
            _rho("simultaneous", h, game), expected, **tol.CLOSED_FORM
        )
    limit = gamma / C**2
    assert _rho("simultaneous", 0.99 * limit, game) < 1
    assert _rho("simultaneous", 1.01 * limit, game) > 1


@pytest.mark.parametrize("n_d, n_g", [(1, 1), (2, 3)])
def test_alternating_steps_cycle_below_their_limit(x64, n_d, n_g):
    """Without R1 the discriminator's field depends on theta only, so n_d steps
    give psi+ = psi - n_d h c theta and n_g steps theta+ = theta + n_g h c psi+:
    M = [[1 - n_d n_g h^2 c^2, n_g h c], [-n_d h c, 1]], det M = 1, so the
    eigenvalues lie on the unit circle while |tr M| < 2, i.e. h < 2/(c sqrt(n_d n_g)).
    """
    for h in STEPS:
        m = [[1 - n_d * n_g * h**2 * C**2, n_g * h * C], [-n_d * h * C, 1]]
        got = _rho("alternating", h, n_d=n_d, n_g=n_g)
        np.testing.assert_allclose(got, _rho_2x2(m), **tol.CLOSED_FORM)
    limit = 2 / (C * math.sqrt(n_d * n_g))
    _check_boundary(
        "alternating",
        limit,
        lambda r: abs(r - 1) < tol.CLOSED_FORM["atol"],
        n_d=n_d,
        n_g=n_g,
    )


def test_extragradient_converges_below_one_over_c(x64):
    """I + hJ + h^2 J^2: mu = 1 - h^2 c^2 +- i h c, |mu|^2 = 1 - h^2c^2 + h^4c^4."""
    for h in STEPS:
        expected = math.sqrt(1 - (h * C) ** 2 + (h * C) ** 4)
        np.testing.assert_allclose(
            _rho("extragradient", h), expected, **tol.CLOSED_FORM
        )
    _check_boundary("extragradient", 1 / C, lambda r: r < 1)


def test_optimistic_gradient_converges_below_one_over_sqrt3_c(x64):
    """z+ = z + 2hJz - hJz_prev: mu^2 - (1 + 2h lam) mu + h lam = 0, lam = +-ic.

    Roots mu = ((1 + 2h lam) +- sqrt(1 + 4 h^2 lam^2)) / 2. For hc <= 1/2 the
    moduli are sqrt((1 +- s)/2) < 1 with s = sqrt(1 - 4h^2c^2); above, with
    t = sqrt(4h^2c^2 - 1), |mu|^2 = 1/4 + (hc + t/2)^2, equal to 1 at
    hc = 1/sqrt(3). The state is (z, v(z_prev)), so the step matrix is 4x4.
    """
    for h in STEPS:
        lam = 1j * C
        mus = np.roots([1, -(1 + 2 * h * lam), h * lam])
        expected = float(np.max(np.abs(mus)))
        np.testing.assert_allclose(_rho("optimistic", h), expected, **tol.CLOSED_FORM)
    assert dynopt.game_step_matrix(dynopt.dirac_gan(), "optimistic", 0.3).shape == (
        4,
        4,
    )
    _check_boundary("optimistic", 1 / (math.sqrt(3) * C), lambda r: r < 1)


def _momentum_rho(h, beta, c=C):
    """Roots of (mu^2 - (1+beta) mu + beta)^2 + h^2 c^2 mu^3 = 0."""
    p = np.array([1.0, -(1 + beta), beta])
    poly = np.polymul(p, p) + np.array([0, h**2 * c**2, 0, 0, 0])
    return float(np.max(np.abs(np.roots(poly))))


def test_alternating_negative_momentum(x64):
    """Discriminator first, psi+ = psi - hc theta + beta m_psi, then theta+ =
    theta + hc psi+ + beta m_theta, m = z - z_prev. With z_t = mu^t z and
    q = mu - (1 + beta) + beta/mu: psi q = -hc theta, theta q = hc mu psi, hence
    (mu^2 - (1+beta) mu + beta)^2 + h^2 c^2 mu^3 = 0 (4 roots: the state is
    (theta, psi, m_theta, m_psi)). beta = 0 gives back alternating steps
    (modulus 1); beta < 0 converges for small h (Gidel et al. 2019).
    """
    for beta in (-0.5, -0.2, 0.3):
        for h in STEPS[:3]:
            got = _rho("alternating_momentum", h, beta=beta)
            np.testing.assert_allclose(got, _momentum_rho(h, beta), **tol.CLOSED_FORM)
    assert _rho("alternating_momentum", 0.4, beta=-0.5) < 1
    assert _rho("alternating_momentum", 0.4, beta=0.3) > 1
    np.testing.assert_allclose(
        _rho("alternating_momentum", 0.4, beta=0.0), 1.0, **tol.CLOSED_FORM
    )
    # mu = -1 is a root iff (2 + 2 beta)^2 = h^2 c^2: for -1 < beta < 0 the
    # step converges for 0 < h < 2 (1 + beta) / c, where a root leaves at -1.
    beta = -0.5
    limit = 2 * (1 + beta) / C
    _check_boundary("alternating_momentum", limit, lambda r: r < 1, beta=beta)


def test_consensus_converges_below_its_limit(x64):
    """v - gamma J^T v with J^T J = c^2 I: z+ = (I + h(J - gamma c^2 I)) z,
    |mu|^2 = (1 - h gamma c^2)^2 + h^2 c^2 < 1 iff h < 2 gamma / (1 + gamma^2 c^2).
    """
    gamma = 0.8
    for h in STEPS:
        expected = math.hypot(1 - h * gamma * C**2, h * C)
        got = _rho("consensus", h, gamma=gamma)
        np.testing.assert_allclose(got, expected, **tol.CLOSED_FORM)
    limit = 2 * gamma / (1 + gamma**2 * C**2)
    _check_boundary("consensus", limit, lambda r: r < 1, gamma=gamma)


@pytest.mark.parametrize("options", [{}, {"solver": "fixed_point", "iterations": 80}])
def test_proximal_point_converges_for_every_step(x64, options):
    """(I - hJ)^{-1}: mu = 1/(1 -+ i h c), |mu| = 1/sqrt(1 + h^2 c^2) < 1 (no limit).

    Newton is exact at the equilibrium after one iteration. The fixed-point
    iteration contracts by hc per iteration (its derivative too), so it is
    checked for hc <= 0.5 only, where 80 iterations leave 0.5^80 ~ 1e-24.
    """
    for h in STEPS if not options else STEPS[:3]:
        expected = 1 / math.sqrt(1 + (h * C) ** 2)
        np.testing.assert_allclose(
            _rho("proximal_point", h, **options), expected, **tol.CLOSED_FORM
        )


def test_proximal_point_solves_the_implicit_equation_off_equilibrium(x64):
    """Newton's answer w satisfies w = z + h v(w) on the nonlinear Dirac-GAN."""
    game = dynopt.dirac_gan("nonsaturating")
    scheme = dynopt.ProximalPoint()
    z = (jnp.array(0.7), jnp.array(-0.4))
    w = scheme.step(game, scheme.init(game, z), 0.9).params
    rhs = [zi + 0.9 * vi for zi, vi in zip(z, game.field(w))]
    np.testing.assert_allclose(w, rhs, **tol.CLOSED_FORM)


def test_su_proximal_rescales_the_generator_step_and_does_not_damp(x64):
    """One discriminator step, psi+ = psi - hc theta; then n_g generator steps on
    L_G + lam (theta - theta_old)^2: e_{j+1} = r e_j + hc psi+ with r = 1 - 2h lam,
    e_0 = 0, so theta+ = theta + h S c psi+ with S = sum_{j<n_g} r^j. The map is
    alternating steps with generator step h S: [[1 - h^2 S c^2, h S c], [-hc, 1]],
    determinant 1: modulus exactly 1 below the limit h^2 S c^2 = 4, no damping.
    """
    lam, n_g = 2.0, 5
    S = lambda h: sum((1 - 2 * h * lam) ** j for j in range(n_g))  # noqa: E731
    for h in (0.05, 0.1, 0.2, 0.4):
        m = [[1 - h**2 * S(h) * C**2, h * S(h) * C], [-h * C, 1]]
        got = _rho("su_proximal", h, reg_weight=lam, n_g=n_g)
        np.testing.assert_allclose(got, _rho_2x2(m), **tol.CLOSED_FORM)
    limit = scipy.optimize.brentq(
        lambda h: h**2 * S(h) * C**2 - 4, 0.5, 0.9, xtol=1e-14
    )
    _check_boundary(
        "su_proximal",
        limit,
        lambda r: abs(r - 1) < tol.CLOSED_FORM["atol"],
        reg_weight=lam,
        n_g=n_g,
    )


def test_bilinear_game_matches_the_same_closed_forms(x64):
    """The bilinear game is the R1-free Dirac-GAN matrix with c = -a."""
    a = 1.3
    game = dynopt.bilinear_game(a)
    h = 0.5
    np.testing.assert_allclose(
        _rho("extragradient", h, game),
        math.sqrt(1 - (h * a) ** 2 + (h * a) ** 4),
        **tol.CLOSED_FORM,
    )
    np.testing.assert_allclose(
        _rho("simultaneous", h, game), math.sqrt(1 + (h * a) ** 2), **tol.CLOSED_FORM
    )


def test_run_and_ema_readout(x64):
    """game_run keeps every iterate; GameEMA's read-out is the hand recursion."""
    game = dynopt.bilinear_game()
    z0 = (jnp.array(1.0), jnp.array(0.0))
    traj = dynopt.game_run(game, dynopt.SimultaneousSteps(), z0, 0.1, 3)
    x, y = np.asarray(traj.params[0]), np.asarray(traj.params[1])
    for k in range(3):  # x+ = x - h y, y+ = y + h x
        np.testing.assert_allclose(
            [x[k + 1], y[k + 1]],
            [x[k] - 0.1 * y[k], y[k] + 0.1 * x[k]],
            **tol.CLOSED_FORM,
        )
    decay = 0.5
    ema = dynopt.game_run(
        game, dynopt.GameEMA(dynopt.SimultaneousSteps(), decay), z0, 0.1, 3
    )
    avg = x[0]
    for k in range(1, 4):
        avg = decay * avg + (1 - decay) * x[k]
        np.testing.assert_allclose(ema.params[0][k], avg, **tol.CLOSED_FORM)


def _got(value):
    return "got " + re.escape(repr(value))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: dynopt.dirac_gan("hinge"), ValueError,
         r"dirac_gan: `loss` must be one of \('standard', 'nonsaturating', "
         r"'wasserstein'\), got 'hinge'"),
        (lambda: dynopt.dirac_gan(r1_weight=-1.0), ValueError,
         r"dirac_gan: `r1_weight` must be >= 0, got -1\.0"),
        (lambda: dynopt.dirac_gan(r1_weight="1"), TypeError,
         r"dirac_gan: `r1_weight` must be a real number, got '1'"),
        (lambda: dynopt.bilinear_game(math.inf), ValueError,
         r"bilinear_game: `a` must be finite, got inf"),
        (lambda: dynopt.game_scheme("adam"), ValueError,
         r"game_scheme: `method` must be one of \('simultaneous', .*got 'adam'"),
        (lambda: dynopt.game_scheme("consensus", beta=0.1), ValueError,
         r"game_scheme: method 'consensus' takes the options \('gamma',\), "
         r"got \['beta'\]"),
        (lambda: dynopt.game_scheme("alternating_momentum", beta=1.0), ValueError,
         r"AlternatingMomentum: `beta` must satisfy -1 <= beta < 1, got 1\.0"),
        (lambda: dynopt.game_scheme("alternating", n_d=0), ValueError,
         r"AlternatingSteps: `n_d` must be >= 1, got 0"),
        (lambda: dynopt.game_scheme("proximal_point", solver="cg"), ValueError,
         r"ProximalPoint: `solver` must be one of \('newton', 'fixed_point'\), "
         r"got 'cg'"),
        (lambda: dynopt.game_spectral_radius(dynopt.dirac_gan(), "optimistic", 0.0),
         ValueError,
         r"game_spectral_radius: `step_size` must be finite and > 0, got 0\.0"),
        (lambda: dynopt.game_spectral_radius("dirac", "optimistic", 0.1), TypeError,
         r"game_spectral_radius: `game` must be a dynopt\.Game, got 'dirac'"),
        (lambda: dynopt.GameEMA(dynopt.ExtraGradient(), decay=1.0), ValueError,
         r"GameEMA: `decay` must satisfy 0 <= decay < 1, got 1\.0"),
    ],
)  # fmt: skip
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match + "$"):
        call()
