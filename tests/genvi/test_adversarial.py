"""Multi-player training: schedule, G_old snapshot, n_g = 1 no-op, EMA, R1, PacGAN."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import genvi
from tests import tolerances as tol

MIX = genvi.mixture("ring")


def _data(key, n):
    return genvi.sample_mixture(key, MIX, n)


def _gan(**kwargs):
    options = dict(
        latent_dim=2,
        batch_size=16,
        g_optimizer=optax.adam(1e-3),
        d_optimizer=optax.adam(1e-3),
    )
    options.update(kwargs)
    pack_size = options.get("pack_size", 1)
    return genvi.gan_trainer(
        lambda rngs: genvi.MLP((2, 8, 2), rngs=rngs),
        lambda rngs: genvi.MLP((2 * pack_size, 8, 1), rngs=rngs),
        _data,
        **options,
    )


def _run(trainer, state, cycles):
    return jax.jit(lambda s: genvi.run_cycles(trainer.step, s, cycles))(state)


def _with_reg(state, reg_weight):
    return state._replace(hyper={**state.hyper, "reg_weight": jnp.float32(reg_weight)})


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def ng1_runs():
    trainer = _gan(n_g=1)
    state = trainer.init(jax.random.PRNGKey(0))
    run = jax.jit(lambda s: genvi.run_cycles(trainer.step, s, 20))
    return run(_with_reg(state, 0.0)), run(_with_reg(state, 10.0))


def test_ng1_is_bit_identical_with_and_without_regulariser(ng1_runs):
    (a, ma), (b, mb) = ng1_runs
    for x, y in zip(_leaves(a.params), _leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(np.asarray(ma["g_loss"]), np.asarray(mb["g_loss"]))
    # G = G_old at the only generator step of each phase: the term is zero.
    assert np.all(np.asarray(mb["g_regularizer"]) == 0.0)


def test_ng5_differs_and_g_old_is_held_for_the_phase():
    trainer = _gan(n_g=5)
    state = trainer.init(jax.random.PRNGKey(0))
    run = jax.jit(lambda s: genvi.run_cycles(trainer.step, s, 4))
    (a, ma), (b, mb) = run(_with_reg(state, 0.0)), run(_with_reg(state, 10.0))
    differ = [
        not np.array_equal(x, y) for x, y in zip(_leaves(a.params), _leaves(b.params))
    ]
    assert any(differ)
    # G_old is snapshotted once per phase, so after the first of 5 steps the
    # generator has moved away from it and the regulariser is positive.
    assert np.all(np.asarray(ma["g_regularizer"]) > 0.0)
    assert np.all(np.asarray(mb["g_regularizer"]) > 0.0)
    # The discriminator sees the same first cycle in both runs.
    assert ma["d_loss"][0] == mb["d_loss"][0]


def test_ema_of_generator_weights():
    decay = 0.9
    one = _gan(n_g=1, ema_decay=decay)
    step = jax.jit(one.step)
    s0 = one.init(jax.random.PRNGKey(2))
    s1, _ = step(s0)
    assert int(s1.step) == 1
    # One generator step: ema = d g_0 + (1 - d) g_1 (float32 rounding).
    for e, g0, g1 in zip(
        _leaves(s1.ema),
        _leaves(s0.params["generator"]),
        _leaves(s1.params["generator"]),
    ):
        np.testing.assert_allclose(e, decay * g0 + (1 - decay) * g1, **tol.F32_ITERATES)
    # Decay 0: the EMA is the current weights (same compiled step: an array).
    zero, _ = step(s0._replace(hyper={**s0.hyper, "ema_decay": jnp.float32(0.0)}))
    for e, g in zip(_leaves(zero.ema), _leaves(zero.params["generator"])):
        np.testing.assert_array_equal(e, g)
    # Sampling from the EMA uses the EMA weights.
    key = jax.random.PRNGKey(3)
    assert not np.array_equal(
        np.asarray(one.sample(s1, key, 5)), np.asarray(one.sample(s1, key, 5, ema=True))
    )


def test_r1_penalty_matches_hand_computation():
    # A linear discriminator logit w . x + b has input gradient w: R1 = |w|^2.
    gamma = 4.0

    def make(**kwargs):
        return genvi.gan_trainer(
            lambda rngs: genvi.MLP((2, 8, 2), rngs=rngs),
            lambda rngs: nnx.Linear(2, 1, rngs=rngs),
            _data,
            latent_dim=2,
            batch_size=16,
            g_optimizer=optax.sgd(0.0),
            d_optimizer=optax.sgd(0.1),
            **kwargs,
        )

    trainer = make(r1_weight=gamma)
    state = trainer.init(jax.random.PRNGKey(4))
    new, metrics = jax.jit(trainer.step)(state)
    w = np.asarray(state.params["discriminator"]["kernel"][...])
    np.testing.assert_allclose(float(metrics["d_r1"]), np.sum(w**2), rtol=1e-6)
    np.testing.assert_allclose(
        float(metrics["d_loss"]),
        float(metrics["d_real"] + metrics["d_fake"]) + gamma / 2 * np.sum(w**2),
        rtol=1e-6,
    )
    # The penalty's gradient gamma * w enters the SGD step: compare with a run
    # without R1 from the same state and key.
    plain = make()
    new_plain, _ = jax.jit(plain.step)(state)
    w_r1 = np.asarray(new.params["discriminator"]["kernel"][...])
    w_plain = np.asarray(new_plain.params["discriminator"]["kernel"][...])
    np.testing.assert_allclose(w_plain - w_r1, 0.1 * gamma * w, rtol=1e-4, atol=1e-7)


def test_vmap_over_seeds_matches_single_runs():
    trainer = _gan(n_g=2, pack_size=2)
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    states = jax.jit(jax.vmap(trainer.init))(keys)
    run = jax.jit(jax.vmap(lambda s: genvi.run_cycles(trainer.step, s, 5)))
    batched, metrics = run(states)
    assert metrics["g_loss"].shape == (3, 5)
    single, _ = _run(trainer, trainer.init(keys[1]), 5)
    for x, y in zip(_leaves(single.params), _leaves(batched.params)):
        np.testing.assert_allclose(x, y[1], **tol.F32_ITERATES)


def _mlp(*sizes):
    return lambda rngs: genvi.MLP(sizes, rngs=rngs)


COMMON = dict(
    latent_dim=2,
    batch_size=16,
    g_optimizer=optax.adam(1e-3),
    d_optimizer=optax.adam(1e-3),
)


def _check_runs(trainer):
    state, metrics = _run(trainer, trainer.init(jax.random.PRNGKey(6)), 3)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
    assert trainer.sample(state, jax.random.PRNGKey(7), 11).shape == (11, 2)
    return metrics


@pytest.mark.parametrize("variant", ["derived", "minimax"])
def test_ali_trainer_runs(variant):
    trainer = genvi.ali_trainer(
        _mlp(2, 8, 2), _mlp(2, 8, 2), _mlp(4, 8, 1), _data, variant=variant, **COMMON
    )
    metrics = _check_runs(trainer)
    assert set(metrics) == {
        "d_loss",
        "d_encoder",
        "d_generator",
        "g_loss",
        "g_encoder",
        "g_generator",
    }


def test_aae_trainer_runs():
    trainer = genvi.aae_trainer(
        _mlp(2, 8, 2),
        _mlp(2, 8, 2),
        _mlp(2, 8, 1),
        _data,
        reg_weight=1.0,
        n_g=2,
        **COMMON,
    )
    metrics = _check_runs(trainer)
    assert float(metrics["g_reconstruction"][-1]) > 0.0
    # The proximal term to the encoder of the phase start is active (n_g = 2).
    assert np.all(np.asarray(metrics["g_regularizer"]) > 0.0)


def test_pack():
    x = jnp.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(genvi.pack(x, 3), np.arange(12.0).reshape(2, 6))
    assert genvi.pack(x, 1) is x
    with pytest.raises(
        ValueError, match=r"pack: the batch size must be a multiple of `m`=4, got "
    ):
        genvi.pack(x, 4)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_g=0), ValueError, r"gan_trainer: `n_g` must be >= 1, got 0"),
        (dict(n_d=1.5), TypeError, r"gan_trainer: `n_d` must be an int, got 1.5"),
        (
            dict(ema_decay=1.0),
            ValueError,
            r"gan_trainer: `ema_decay` must satisfy 0 <= ema_decay < 1, got 1.0",
        ),
        (
            dict(g_optimizer="adam"),
            TypeError,
            r"gan_trainer: `g_optimizer` must be an optax.GradientTransformation",
        ),
        (dict(reg_weight=-1.0), ValueError, r"gan_trainer: `reg_weight` must be >= 0"),
        (
            dict(pack_size=0),
            ValueError,
            r"gan_trainer: `pack_size` must be >= 1, got 0",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        _gan(**kwargs)


def test_bad_factories_and_variant():
    with pytest.raises(
        TypeError, match=r"gan_trainer: `make_generator` must be a callable rngs ->"
    ):
        genvi.gan_trainer(
            None,
            lambda rngs: genvi.MLP((2, 1), rngs=rngs),
            _data,
            latent_dim=2,
            batch_size=4,
            g_optimizer=optax.sgd(0.1),
            d_optimizer=optax.sgd(0.1),
        )
    with pytest.raises(
        ValueError,
        match=r"ali_trainer: `variant` must be one of "
        r"\('derived', 'minimax', 'swapped'\), "
        r"got 'x'",
    ):
        genvi.ali_trainer(
            None,
            None,
            None,
            _data,
            latent_dim=2,
            batch_size=4,
            g_optimizer=optax.sgd(0.1),
            d_optimizer=optax.sgd(0.1),
            variant="x",
        )


def test_data_in_state_matches_a_closed_over_sampler(ng1_runs):
    def from_state(key, n, data):
        return genvi.sample_mixture(key, genvi.Mixture("", data, MIX.std), n)

    with_data = genvi.gan_trainer(
        lambda rngs: genvi.MLP((2, 8, 2), rngs=rngs),
        lambda rngs: genvi.MLP((2, 8, 1), rngs=rngs),
        from_state,
        **COMMON,
    )
    state = with_data.init(jax.random.PRNGKey(0), jnp.asarray(MIX.means, jnp.float32))
    a, _ = _run(with_data, state, 20)
    (b, _), _ = ng1_runs  # the same key, network sizes, options and 20 cycles
    for x, y in zip(_leaves(a.params), _leaves(b.params)):
        np.testing.assert_allclose(x, y, **tol.F32_ITERATES)


def test_core_training_loop_runs_the_cycles(ng1_runs, tmp_path):
    """genvi.train scans the same step: 20 cycles equal run_cycles, checkpoints."""
    trainer = _gan(n_g=1)
    state = trainer.init(jax.random.PRNGKey(0))
    out, history = genvi.train(
        trainer.step,
        state,
        num_steps=20,
        steps_per_call=10,
        checkpoint_dir=tmp_path,
        checkpoint_every=10,
        progress=False,
    )
    (expected, _), _ = ng1_runs
    for x, y in zip(_leaves(out.params), _leaves(expected.params)):
        np.testing.assert_array_equal(x, y)
    assert len(history["g_loss"]) == 20
    assert genvi.latest_checkpoint(tmp_path) is not None


def test_core_training_loop_stops_on_nan():
    trainer = _gan(n_g=1)
    state = trainer.init(jax.random.PRNGKey(0))
    # A NaN regulariser weight makes the first step non-finite (NaN * 0 = NaN).
    bad = state._replace(hyper={**state.hyper, "reg_weight": jnp.float32(jnp.nan)})
    with pytest.warns(genvi.NonFiniteWarning):
        out, history = genvi.train(
            trainer.step, bad, num_steps=4, steps_per_call=2, progress=False
        )
    assert int(out.step) == 0  # the last good state is the initial one
    assert all(np.all(np.isfinite(x)) for x in _leaves(out.params))
