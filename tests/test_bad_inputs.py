"""One bad input per case: the library raises or warns, naming what is wrong.

Each case is a row of the table in docs/bad_inputs.md (the table's test column
names ``tests/test_bad_inputs.py::test_bad_input[<id>]``; a test below checks
that every id here has its row). Cases that need a training run or a
checkpoint folder live in tests/genvi/test_train_runs.py and
tests/genvi/test_train_checkpoint.py and have their own rows.
"""

import re
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import dynopt
import genvi

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


def _quadratic(x):
    return 0.5 * jnp.sum(x**2)


def _example_loss(x, z):
    return 0.5 * jnp.sum((x - z) ** 2)


def _enc_dec():
    enc = genvi.MLPEncoder((4,), (8,), 2, rngs=nnx.Rngs(0))
    dec = genvi.MLPDecoder(2, (8,), (4,), likelihood="bernoulli", rngs=nnx.Rngs(1))
    return enc, dec


def _vae(key, x, likelihood="bernoulli"):
    enc, dec = _enc_dec()
    return genvi.vae_loss(key, x, enc, dec, likelihood=likelihood)


def _vae_jit_on_pixels():
    enc, dec = _enc_dec()
    f = jax.jit(
        lambda x: (
            genvi.vae_loss(jax.random.key(0), x, enc, dec, likelihood="bernoulli").loss
        )
    )
    jax.block_until_ready(f(jnp.full((3, 4), 16.0)))
    jax.effects_barrier()


def _pacgan_wrong_width():
    trainer = genvi.gan_trainer(
        lambda r: genvi.MLP((2, 8, 3), rngs=r),
        lambda r: genvi.MLP((3, 8, 1), rngs=r),  # needs 2 * 3 inputs
        lambda k, n: jax.random.normal(k, (n, 3)),
        latent_dim=2,
        batch_size=4,
        g_optimizer=optax.sgd(0.1),
        d_optimizer=optax.sgd(0.1),
        pack_size=2,
    )
    trainer.step(trainer.init(jax.random.key(0)))


class _Stop(Exception):
    pass


def _raise_stop(optimizer):
    raise _Stop


def _order_study_not_dividing():
    # The warning comes before any solve; stop there (no ODE solve to compile).
    try:
        dynopt.order_study(
            dynopt.sgd,
            _quadratic,
            jnp.ones(1),
            [0.3, 0.15],
            1.0,
            flow=_raise_stop,
            progress=False,
        )
    except _Stop:
        pass


def _noisy_batch():
    # Per-example gradients x - z_i: a mean of 0.05 under noise of variance ~1.
    z = jax.random.normal(jax.random.key(3), (8, 2)) + 0.05
    return jnp.zeros(2) + jnp.mean(z, 0) - 0.01, z


# fmt: off
# (id, thunk, exception or warning class, regex the message must match)
CASES = [
    # dynopt: construction
    ("sgd-negative-learning-rate", lambda: dynopt.sgd(-1.0), ValueError,
     r"sgd: `learning_rate` must be finite and >= 0, got -1.0"),
    ("sgd-nan-learning-rate", lambda: dynopt.sgd(float("nan")), ValueError,
     r"sgd: `learning_rate` must be finite and >= 0, got nan"),
    ("sgd-string-learning-rate", lambda: dynopt.sgd("0.1"), TypeError,
     r"sgd: `learning_rate` must be a float, a scalar array or an optax schedule"),
    ("sgd-vector-learning-rate", lambda: dynopt.sgd(jnp.ones(2)), ValueError,
     r"sgd: `learning_rate` must be a scalar, got shape \(2,\)"),
    ("adam-b1-one", lambda: dynopt.adam(0.1, b1=1.0), ValueError,
     r"adam: `b1` must satisfy 0 <= b1 < 1, got 1.0"),
    ("adam-maximize-int", lambda: dynopt.adam(0.1, maximize=1), TypeError,
     r"adam: `maximize` must be a bool, got 1"),
    ("momentum-beta-string", lambda: dynopt.momentum(0.1, "0.9"), TypeError,
     r"momentum: `beta` must be a number, got '0.9'"),
    ("scheme-on-game-not-a-scheme", lambda: dynopt.SchemeOnGame("heun"), TypeError,
     r"SchemeOnGame: `scheme` must be a dynopt Scheme \(e.g. dynopt.Heun\(\)\), "
     r"got 'heun'"),
    ("scheme-on-game-unsupported-flow",
     lambda: dynopt.SchemeOnGame(dynopt.Optimistic(), dynopt.HeavyBallFlow(1.0)),
     TypeError, r"SchemeOnGame: `flow` must be one of \('GradientFlow',\) for "
     r"Optimistic, got HeavyBallFlow"),
    ("scheme-on-game-turns-not-pairs",
     lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=(1, 5)), ValueError,
     r"SchemeOnGame: `turns` must be None or a non-empty tuple of \(player, "
     r"n_steps\) pairs, got \(1, 5\)"),
    ("scheme-on-game-zero-steps",
     lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((1, 0),)),
     ValueError, r"SchemeOnGame: each n_steps in `turns` must be an int >= 1, got 0"),
    ("scheme-on-game-unknown-player",
     lambda: dynopt.SchemeOnGame(dynopt.ExplicitEuler(), turns=((2, 1),)).init(
         dynopt.bilinear_game(), (jnp.ones(()), jnp.ones(()))),
     ValueError, r"SchemeOnGame: each player in `turns` must be < the game's number "
     r"of players \(2\), got 2"),
    ("implicit-euler-unknown-solver", lambda: dynopt.ImplicitEuler(solver="cg"),
     ValueError, r"ImplicitEuler: `solver` must be one of \('newton', "
     r"'fixed_point'\), got 'cg'"),
    # dynopt: run time
    ("integer-parameters", lambda: dynopt.sgd(0.1).init({"w": jnp.arange(3)}),
     TypeError, r"dynopt.sgd: `params` leaf \"\['w'\]\" has dtype int32; optimisers "
     r"update floating-point parameters only"),
    ("boolean-parameters", lambda: dynopt.adam(0.1).init(jnp.ones(2, bool)),
     TypeError, r"dynopt.adam: `params` leaf '' has dtype bool"),
    ("set-hyperparams-unknown-name",
     lambda: dynopt.set_hyperparams(dynopt.sgd(0.1).init(jnp.ones(2)), lr=0.2),
     ValueError, r"set_hyperparams: no hyperparameter named \['lr'\]"),
    ("discrete-trajectory-plain-optax",
     lambda: dynopt.discrete_trajectory(optax.sgd(0.1), _quadratic, jnp.ones(2), 2,
                                        progress=False),
     UserWarning, r"discrete_trajectory: `optimizer` keeps no ODE time .* `times` "
     r"are step counts"),
    ("discrete-trajectory-float-steps",
     lambda: dynopt.discrete_trajectory(dynopt.sgd(0.1), _quadratic, jnp.ones(2),
                                        2.0, progress=False),
     TypeError, r"discrete_trajectory: `num_steps` must be an int, got 2.0"),
    ("discrete-trajectory-integer-params",
     lambda: dynopt.discrete_trajectory(dynopt.sgd(0.1), _quadratic, jnp.arange(2),
                                        2, progress=False),
     TypeError, r"discrete_trajectory: .*params"),
    ("continuous-trajectory-out-of-steps",
     lambda: dynopt.continuous_trajectory(dynopt.sgd(0.1), _quadratic, jnp.ones(2),
                                          jnp.array([0.0, 50.0]), max_steps=4,
                                          solver=diffrax.Heun(), x64=False,
                                          progress=False),
     RuntimeError, r"^continuous_trajectory: the solver used all `max_steps`=4 "
     r"steps before reaching t=50.0; increase `max_steps`"),
    ("continuous-trajectory-unsorted-times",
     lambda: dynopt.continuous_trajectory(dynopt.sgd(0.1), _quadratic, jnp.ones(2),
                                          jnp.array([0.0, 2.0, 1.0]), progress=False),
     ValueError, r"continuous_trajectory: `times` must be strictly increasing, got "
     r"times\[1\] = 2.0 >= times\[2\] = 1.0"),
    ("order-study-step-not-dividing-horizon",
     _order_study_not_dividing, UserWarning,
     r"order_study: the clock step h=0.3 of step_sizes\[0\]=0.3 does "
     r"not divide `horizon`=1.0 \(horizon / h = 3.33333\); this run stops at t=0.9"),
    ("order-study-bad-reduce",
     lambda: dynopt.order_study(dynopt.sgd, _quadratic, jnp.ones(1), [0.1], 1.0,
                                reduce="mean"),
     ValueError,
     r"order_study: `reduce` must be one of \('max', 'final'\), got 'mean'"),
    ("gradient-noise-negative-signal",
     lambda: dynopt.gradient_noise(_example_loss, *_noisy_batch()),
     RuntimeWarning, r"gradient_noise: the estimated \|G\|\^2 = -.* is not positive: "
     r"the batch of 8 examples cannot resolve the gradient"),
    ("gradient-noise-exact-minimum",
     lambda: dynopt.gradient_noise(_example_loss, jnp.ones(2), jnp.ones((4, 2))),
     RuntimeWarning, r"gradient_noise: the gradient and its noise are both zero "
     r"\(an exact minimum\); critical_batch_size is undefined \(nan\)"),
    ("gradient-covariance-too-large",
     lambda: dynopt.gradient_covariance(_example_loss, jnp.zeros(20_000),
                                        jnp.zeros((2, 20_000))),
     ValueError, r"gradient_covariance: kind='full' would build a 20000 x 20000 "
     r"matrix \(1526 MiB\) above `max_bytes`=1073741824; use kind='diagonal'"),
    ("gradient-covariance-one-example",
     lambda: dynopt.gradient_covariance(_example_loss, jnp.zeros(2),
                                        jnp.zeros((1, 2))),
     ValueError, r"gradient_covariance: `batch` must hold at least 2 examples"),
    ("critical-batch-size-zero-signal",
     lambda: dynopt.critical_batch_size(1.0, 0.0), ValueError,
     r"critical_batch_size: `grad_sq_norm`"),
    ("noise-scale-zero-batch", lambda: dynopt.noise_scale(0.1, 100, 0), ValueError,
     r"noise_scale: `batch_size`"),
    ("sharpness-along-zero-iterations",
     lambda: dynopt.sharpness_along(
         _quadratic,
         dynopt.discrete_trajectory(dynopt.sgd(0.1), _quadratic, jnp.ones(2), 1,
                                    progress=False),
         num_iters=0),
     ValueError, r"sharpness_along: `num_iters` must be an int >= 1, got 0"),
    # genvi: building blocks
    ("gaussian-kl-shapes", lambda: genvi.gaussian_kl(jnp.ones(3), jnp.ones(4)),
     ValueError, r"gaussian_kl: the shapes do not broadcast together: `mean_p` "
     r"\(3,\), `logvar_p` \(4,\)"),
    ("gaussian-kl-string", lambda: genvi.gaussian_kl("a", 0.0), TypeError,
     r"gaussian_kl: `mean_p` must be a number or an array, got 'a'"),
    ("gaussian-kl-event-ndims",
     lambda: genvi.gaussian_kl(jnp.ones(3), jnp.ones(3), event_ndims=2),
     ValueError, r"gaussian_kl: `event_ndims`"),
    ("gaussian-log-prob-none", lambda: genvi.gaussian_log_prob(None, 0.0, 0.0),
     TypeError, r"gaussian_log_prob: `x` must be a number or an array, got None"),
    ("gaussian-log-prob-shapes",
     lambda: genvi.gaussian_log_prob(jnp.ones(3), jnp.ones(4), 0.0), ValueError,
     r"gaussian_log_prob: the shapes do not broadcast together: `x` \(3,\), "
     r"`mean` \(4,\)"),
    ("bernoulli-log-prob-string", lambda: genvi.bernoulli_log_prob("x", 0.0),
     TypeError, r"bernoulli_log_prob: `x` must be a number or an array"),
    ("log-mean-exp-empty", lambda: genvi.log_mean_exp(jnp.array([])), ValueError,
     r"log_mean_exp: `log_weights` has no samples along axis 0 \(shape \(0,\)\)"),
    ("log-mean-exp-axis", lambda: genvi.log_mean_exp(jnp.ones(3), axis=1),
     ValueError, r"log_mean_exp: `axis`=1 is out of range for `log_weights` of "
     r"shape \(3,\)"),
    ("mlp-encoder-hidden-int",
     lambda: genvi.MLPEncoder((4,), 8, 2, rngs=nnx.Rngs(0)), TypeError,
     r"MLPEncoder: `hidden_sizes` must be a sequence of ints .*, got 8"),
    ("mlp-decoder-hidden-zero",
     lambda: genvi.MLPDecoder(2, (0,), (4,), likelihood="bernoulli",
                              rngs=nnx.Rngs(0)),
     ValueError, r"MLPDecoder: `hidden_sizes` must hold ints >= 1, got \(0,\)"),
    ("mlp-sizes-int", lambda: genvi.MLP(8, rngs=nnx.Rngs(0)), TypeError,
     r"MLP: `sizes` must be a sequence of ints"),
    ("mlp-encoder-event-shape-int",
     lambda: genvi.MLPEncoder(4, (8,), 2, rngs=nnx.Rngs(0)), TypeError,
     r"MLPEncoder: `event_shape` must be a tuple of ints, got 4"),
    ("vae-loss-int-key", lambda: _vae(0, jnp.full((3, 4), 0.5)), TypeError,
     r"vae_loss: `key` must be a PRNG key such as jax.random.key\(0\), got 0"),
    ("vae-loss-unknown-likelihood",
     lambda: _vae(jax.random.key(0), jnp.ones((3, 4)), "poisson"), ValueError,
     r"vae_loss: `likelihood` must be"),
    ("bernoulli-vae-on-pixels",
     lambda: _vae(jax.random.key(0), jnp.full((3, 4), 16.0)),
     UserWarning, r"vae_loss: likelihood='bernoulli' needs data in \[0, 1\], got "
     r"values in \[16, 16\]"),
    ("bernoulli-vae-on-pixels-under-jit", _vae_jit_on_pixels, UserWarning,
     r"vae_loss: likelihood='bernoulli' needs data in \[0, 1\]"),
    ("pacgan-discriminator-width", _pacgan_wrong_width, ValueError,
     r"gan_trainer: the discriminator of `make_discriminator` cannot take the packed "
     r"batch of shape \(4, 6\): with pack_size=2 each input holds 2 samples"),
    ("sample-batch-zero", lambda: genvi.sample_batch(jax.random.key(0),
                                                     jnp.ones(4), 0),
     ValueError, r"sample_batch: `batch_size` must be an int >= 1, got 0"),
    ("train-zero-steps",
     lambda: genvi.train(lambda x: (x, {}), jnp.ones(()), num_steps=0), ValueError,
     r"train: `num_steps` must be an int >= 1, got 0"),
    ("train-unknown-nan-policy",
     lambda: genvi.train(lambda x: (x, {}), jnp.ones(()), num_steps=1,
                         nan_policy="ignore"),
     ValueError, r"train: `nan_policy` must be one of \('skip', 'stop', 'raise'\)"),
    ("train-resume-and-overwrite",
     lambda: genvi.train(lambda x: (x, {}), jnp.ones(()), num_steps=1,
                         checkpoint_dir="unused", resume=True, overwrite=True),
     ValueError, r"train: `resume=True` continues the run in `checkpoint_dir` and "
     r"`overwrite=True` deletes it"),
    ("gan-loss-empty-batch",
     lambda: genvi.gan_discriminator_loss(jnp.ones(0), jnp.ones(0)), ValueError,
     r"gan_discriminator_loss: `real_logits` and `fake_logits` must hold at least "
     r"one logit"),
    ("frechet-distance-one-row",
     lambda: genvi.frechet_distance(np.ones((1, 3)), np.ones((5, 3))), ValueError,
     r"frechet_distance: features must have shape \(n, d\) with n >= 2"),
]
# fmt: on


@pytest.mark.parametrize(
    "thunk, kind, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(thunk, kind, match):
    if issubclass(kind, Warning):
        with pytest.warns(kind, match=match):
            thunk()
    else:
        with pytest.raises(kind, match=match):
            thunk()


def test_every_case_has_a_row_in_the_docs_table():
    text = DOCS.read_text()
    rows = set(re.findall(r"test_bad_input\[([\w-]+)\]", text))
    assert rows == {c[0] for c in CASES}
    # One row per bad input; at least 40 across both packages.
    assert len(re.findall(r"^\| ", text, re.M)) - 1 >= 40
