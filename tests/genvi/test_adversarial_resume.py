"""Adversarial trainers resume bit-exactly from a checkpoint under genvi.train.

2N cycles in one run must equal N cycles, a checkpoint, a restore into a fresh
state and N more cycles, leaf for leaf: both players' parameters, both optimiser
states, the generator EMA, the hyperparameters, the PRNG key, the cycle counter
and the data kept in the state. ``G_old`` is not part of the state: it is
snapshotted from the generator at the start of every generator phase, so a
checkpoint taken between cycles needs nothing more to restore it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genvi

MIX = genvi.mixture("ring")
N = 6  # cycles before the checkpoint (and after it)
STEPS_PER_CALL = 4  # does not divide N: the masked last step of a call is used too


def _data(key, n):
    return genvi.sample_mixture(key, MIX, n)


def _data_from_state(key, n, means):
    return genvi.sample_mixture(key, genvi.Mixture("", means, MIX.std), n)


def _mlp(*sizes):
    return lambda rngs: genvi.MLP(sizes, rngs=rngs)


COMMON = dict(
    latent_dim=2,
    batch_size=8,
    g_optimizer=optax.adam(1e-3),
    d_optimizer=optax.adam(1e-3),
    n_d=2,
    n_g=3,  # > 1, so that the regulariser to G_old acts
    ema_decay=0.9,
)


def _gan():
    # Every option that adds to the step: the regulariser, R1, packing, and the
    # data sampler reading its parameters from the state.
    trainer = genvi.gan_trainer(
        _mlp(2, 8, 2),
        _mlp(4, 8, 1),
        _data_from_state,
        reg_weight=1.0,
        r1_weight=1.0,
        pack_size=2,
        **COMMON,
    )
    means = jnp.asarray(MIX.means, jnp.float32)
    return trainer, lambda seed: trainer.init(jax.random.PRNGKey(seed), means)


def _aae():
    trainer = genvi.aae_trainer(
        _mlp(2, 8, 2), _mlp(2, 8, 2), _mlp(2, 8, 1), _data, reg_weight=1.0, **COMMON
    )
    return trainer, lambda seed: trainer.init(jax.random.PRNGKey(seed))


def _ali():
    # The variant changes only the loss formula, not the state: one suffices.
    trainer = genvi.ali_trainer(
        _mlp(2, 8, 2), _mlp(2, 8, 2), _mlp(4, 8, 1), _data, **COMMON
    )
    return trainer, lambda seed: trainer.init(jax.random.PRNGKey(seed))


def _train(trainer, state, num_steps, **kwargs):
    return genvi.train(
        trainer.step,
        state,
        num_steps=num_steps,
        steps_per_call=STEPS_PER_CALL,
        progress=False,
        **kwargs,
    )


def _assert_states_equal(a, b):
    paths_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
    paths_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
    assert tree_a == tree_b
    for (path, x), (_, y) in zip(paths_a, paths_b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("make", [_gan, _aae, _ali], ids=["gan", "aae", "ali"])
def test_resume_is_bit_exact(make, tmp_path):
    trainer, init = make()
    state = init(0)
    full, full_history = _train(trainer, state, 2 * N)

    ckpt = tmp_path / "ckpt"
    half, _ = _train(trainer, state, N, checkpoint_dir=ckpt)
    assert genvi.latest_checkpoint(ckpt).name == f"ckpt_{N:08d}"
    assert int(half.step) == N

    # A fresh state of another seed, with other hyperparameters, only gives the
    # structure: every leaf must come from the file.
    fresh = init(1)
    fresh = fresh._replace(hyper={k: v + 0.5 for k, v in fresh.hyper.items()})
    differs = [
        not np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(fresh), jax.tree.leaves(half))
    ]
    assert sum(differs) > len(differs) // 2
    resumed, history = _train(trainer, fresh, 2 * N, checkpoint_dir=ckpt, resume=True)

    assert int(resumed.step) == 2 * N
    _assert_states_equal(resumed, full)
    assert set(history) == set(full_history)
    for name in full_history:
        np.testing.assert_array_equal(history[name], full_history[name], err_msg=name)
    # The restored run went on training: the state moved after the checkpoint.
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(resumed.params)[0]),
        np.asarray(jax.tree.leaves(half.params)[0]),
    )
