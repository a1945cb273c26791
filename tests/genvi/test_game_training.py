"""genvi's trainers with dynopt game schemes.

The default path (no ``game_scheme``) is the phase engine, unchanged; its bit
parity with earlier runs is held by tests/genvi/test_adversarial.py and
test_adversarial_resume.py. Here: the scheme path reproduces the phase engine
exactly where the two must agree (alternating single steps with plain SGD),
real GANs train with extragradient, optimistic, consensus and negative momentum
steps, and bad arguments are named.
"""

import jax
import numpy as np
import optax
import pytest

import dynopt
import genvi

MIX = genvi.mixture("ring")


def _data(key, n):
    return genvi.sample_mixture(key, MIX, n)


def _gan(**kwargs):
    return genvi.gan_trainer(
        lambda rngs: genvi.MLP((2, 8, 2), rngs=rngs),
        lambda rngs: genvi.MLP((2, 8, 1), rngs=rngs),
        _data,
        latent_dim=2,
        batch_size=16,
        **kwargs,
    )


def _run(trainer, cycles, step=None):
    state = trainer.init(jax.random.PRNGKey(0))
    step = trainer.step if step is None else step
    return jax.jit(lambda s: genvi.run_cycles(step, s, cycles))(state)


def test_alternating_scheme_is_the_phase_engine_with_sgd():
    """One discriminator then one generator gradient step per cycle on the same
    batches: AlternatingSteps(1, 1) with step h is the default loop with
    optax.sgd(h) for both players, bit for bit (-(h g) = h (-g) exactly)."""
    h, cycles = 0.05, 8
    phases, m_phases = _run(
        _gan(g_optimizer=optax.sgd(h), d_optimizer=optax.sgd(h), r1_weight=0.2),
        cycles,
    )
    scheme, m_scheme = _run(
        _gan(game_scheme=dynopt.AlternatingSteps(), step_size=h, r1_weight=0.2),
        cycles,
    )
    for a, b in zip(
        jax.tree.leaves((phases.params, phases.ema)),
        jax.tree.leaves((scheme.params, scheme.ema)),
    ):
        np.testing.assert_array_equal(a, b)
    # Discriminator metrics are taken at the cycle's start on both paths (the
    # scheme path reports the generator's there too, the phases after D's step).
    for k in ("d_loss", "d_r1", "d_real", "d_fake"):
        np.testing.assert_array_equal(m_phases[k], m_scheme[k])


@pytest.mark.parametrize(
    "scheme",
    [
        dynopt.ExtraGradient(),
        dynopt.OptimisticGradient(),
        dynopt.ConsensusOptimization(0.1),
        dynopt.AlternatingMomentum(-0.3),
    ],
    ids=lambda s: type(s).__name__,
)
def test_a_gan_trains_with_game_schemes_and_records_its_trajectory(scheme):
    cycles = 6
    trainer = _gan(game_scheme=scheme, step_size=1e-2, rms_decay=0.9)
    state, metrics = _run(trainer, cycles, genvi.record_params(trainer.step))
    traj = metrics["params"]["discriminator"]
    assert all(leaf.shape[0] == cycles for leaf in jax.tree.leaves(traj))
    # The last recorded point is the final state; every step moves the weights.
    for a, b in zip(
        jax.tree.leaves(traj), jax.tree.leaves(state.params["discriminator"])
    ):
        np.testing.assert_array_equal(a[-1], b)
    first = jax.tree.leaves(traj)[0]
    assert all(not np.array_equal(first[k], first[k + 1]) for k in range(cycles - 1))
    assert np.all(np.isfinite(metrics["d_loss"])) and metrics["d_loss"].shape == (
        cycles,
    )
    if isinstance(scheme, dynopt.OptimisticGradient | dynopt.AlternatingMomentum):
        assert set(state.opt_states) == {"game", "second_moment"}
        assert state.opt_states["game"] is not None


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(game_scheme="extragradient", step_size=0.1), TypeError,
         r"gan_trainer: `game_scheme` must be a dynopt game scheme .*"
         r"got 'extragradient'"),
        (dict(game_scheme=dynopt.ExtraGradient(), step_size=0.1,
              g_optimizer=optax.sgd(0.1)), ValueError,
         r"gan_trainer: `g_optimizer` must be None with `game_scheme` .*got "
         r"GradientTransformation.*\)"),
        (dict(game_scheme=dynopt.ExtraGradient(), step_size=-1.0), ValueError,
         r"gan_trainer: `step_size` must be > 0, got -1\.0"),
        (dict(game_scheme=dynopt.ExtraGradient(), step_size=0.1, rms_decay=1.0),
         ValueError, r"gan_trainer: `rms_decay` must satisfy 0 <= rms_decay < 1, "
         r"got 1\.0"),
        (dict(game_scheme=dynopt.ExtraGradient(), step_size=0.1, n_d=5), ValueError,
         r"gan_trainer: `n_d` must be 1 with `game_scheme` .*got 5"),
        (dict(g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1),
              step_size=0.1), ValueError,
         r"gan_trainer: `step_size` is used only with `game_scheme`, got 0\.1"),
    ],
)  # fmt: skip
def test_bad_game_arguments(kwargs, error, match):
    with pytest.raises(error, match=match + "$"):
        _gan(**kwargs)


@pytest.mark.parametrize("joint", [True, False], ids=["joint", "turns"])
def test_consensus_step_of_the_rms_metric_game_is_rmsprop_on_consensus_losses(
    x64, joint
):
    # The bilinear game L_0 = x'Ay = -L_1 has v = (-Ay, A'x) and
    # J'v = (AA'x, A'Ay): consensus (Mescheder et al.) under the metric P is
    # z + h P (v - gamma J'v), the consensus term being |v|^2 of the losses'
    # field (RMSProp on the consensus losses), not |Pv|^2.
    from genvi._src.game_training import _PreconditionedGame

    rng = np.random.default_rng(0)
    a, x, y = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=2)
    px, py, h, gamma = 40.0, 0.25, 0.01, 0.3
    game = _PreconditionedGame(
        losses=(lambda z: z[0] @ a @ z[1], lambda z: -(z[0] @ a @ z[1])),
        scale=(np.float64(px), np.float64(py)),
    )
    if joint:
        scheme = dynopt.ConsensusOptimization(gamma)
        x_new = x + h * px * (-a @ y - gamma * a @ a.T @ x)
        y_new = y + h * py * (a.T @ x - gamma * a.T @ a @ y)
    else:  # discriminator (player 1) first, then the generator
        scheme = dynopt.SchemeOnGame(
            dynopt.ExplicitEuler(), turns=((1, 1), (0, 1)), consensus=gamma
        )
        y_new = y + h * py * (a.T @ x - gamma * a.T @ a @ y)
        x_new = x + h * px * (-a @ y_new - gamma * a @ a.T @ x)
    z = (jax.numpy.asarray(x), jax.numpy.asarray(y))
    out = jax.jit(lambda s: scheme.step(game, s, h))(scheme.init(game, z))
    assert out.params[0].dtype == np.float64
    np.testing.assert_allclose(out.params[0], x_new, rtol=1e-12)
    np.testing.assert_allclose(out.params[1], y_new, rtol=1e-12)
