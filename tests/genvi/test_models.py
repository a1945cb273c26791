"""nnx encoders and decoders: shapes, jit, and use inside the VAE losses."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import genvi

LATENT = 3


# Built once per configuration: eager initialisation compiles per parameter shape.
@functools.cache
def _pair(kind, image_shape, likelihood):
    rngs = nnx.Rngs(0)
    if kind == "mlp":
        enc = genvi.MLPEncoder(image_shape, (16,), LATENT, rngs=rngs)
        dec = genvi.MLPDecoder(
            LATENT, (16,), image_shape, likelihood=likelihood, rngs=rngs
        )
    else:
        enc = genvi.ConvEncoder(image_shape, LATENT, rngs=rngs, channels=(4, 8))
        dec = genvi.ConvDecoder(
            LATENT, image_shape, likelihood=likelihood, rngs=rngs, channels=(8, 4)
        )
    return enc, dec


CASES = [
    ("mlp", (8, 8), "bernoulli"),
    ("mlp", (5,), "gaussian"),
    ("conv", (8, 8), "gaussian"),
    ("conv", (28, 28), "bernoulli"),
]


# The two 8x8 pairs of CASES are exercised by the training test below.
@pytest.mark.parametrize(("kind", "image_shape", "likelihood"), [CASES[1], CASES[3]])
def test_output_shapes_and_jit(kind, image_shape, likelihood):
    enc, dec = _pair(kind, image_shape, likelihood)
    x = jax.random.uniform(jax.random.key(0), (4, *image_shape))
    graphdef, state = nnx.split((enc, dec))

    @jax.jit
    def encode_decode(state, x):
        enc, dec = nnx.merge(graphdef, state)
        mean, logvar = enc(x)
        return mean, logvar, dec(mean)

    mean, logvar, out = encode_decode(state, x)
    assert mean.shape == logvar.shape == (4, LATENT)
    outs = out if likelihood == "gaussian" else (out,)
    assert len(outs) == (2 if likelihood == "gaussian" else 1)
    assert all(o.shape == x.shape and o.dtype == jnp.float32 for o in outs)
    assert all(np.all(np.isfinite(o)) for o in outs)


@pytest.mark.parametrize(("kind", "image_shape", "likelihood"), [CASES[0], CASES[2]])
def test_training_inside_vae_loss_lowers_it(kind, image_shape, likelihood):
    enc, dec = _pair(kind, image_shape, likelihood)
    x = (jax.random.uniform(jax.random.key(1), (32, *image_shape)) < 0.3).astype(
        jnp.float32
    )
    graphdef, params = nnx.split((enc, dec))
    opt = optax.adam(1e-2)

    def loss_fn(params, key):
        enc, dec = nnx.merge(graphdef, params)
        return genvi.vae_loss(key, x, enc, dec, likelihood=likelihood).loss

    @jax.jit
    def train(params, key):
        def step(carry, key):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, key)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(
            step, (params, opt.init(params)), jax.random.split(key, 60)
        )
        return params, losses

    trained, losses = train(params, jax.random.key(2))
    assert np.all(np.isfinite(losses))
    # Same evaluation key before and after: the drop is not sampling noise.
    before = loss_fn(params, jax.random.key(3))
    after = loss_fn(trained, jax.random.key(3))
    assert after < 0.9 * before, (before, after)


def test_iwae_log_likelihood_takes_nnx_modules():
    enc, dec = _pair(*CASES[0])
    x = (jax.random.uniform(jax.random.key(4), (10, 8, 8)) < 0.3).astype(jnp.float32)
    chunked = genvi.iwae_log_likelihood(
        jax.random.key(5),
        x,
        enc,
        dec,
        likelihood="bernoulli",
        num_samples=20,
        batch_size=4,
        samples_per_chunk=20,
    )
    graphdef, state = nnx.split((enc, dec))

    @jax.jit
    def elbo(state, key):
        enc, dec = nnx.merge(graphdef, state)
        return -genvi.vae_loss(
            key, x, enc, dec, likelihood="bernoulli", num_samples=20
        ).loss

    # Untrained decoder (logits near 0): about 64 log(1/2) per image; the bound is
    # above the ELBO up to sampling noise.
    assert np.isfinite(chunked)
    assert chunked > elbo(state, jax.random.key(6)) - 1.0
    assert abs(chunked - 64 * np.log(0.5)) < 10.0


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda r: genvi.ConvEncoder((10, 10), 2, rngs=r),
            ValueError,
            r"ConvEncoder: `image_shape` must be \(H, W\) with H and W divisible by "
            r"4 .* got \(10, 10\)",
        ),
        (
            lambda r: genvi.ConvDecoder(2, (8, 8, 1), likelihood="bernoulli", rngs=r),
            ValueError,
            r"ConvDecoder: `image_shape` must be \(H, W\) .* got \(8, 8, 1\)",
        ),
        (
            lambda r: genvi.ConvDecoder(2, (8, 8), likelihood="laplace", rngs=r),
            ValueError,
            r"ConvDecoder: `likelihood` must be one of \('gaussian', 'bernoulli'\), "
            r"got 'laplace'",
        ),
        (
            lambda r: genvi.MLPDecoder(2, (4,), (3,), likelihood="gauss", rngs=r),
            ValueError,
            r"MLPDecoder: `likelihood` must be one of .* got 'gauss'",
        ),
        (
            lambda r: genvi.MLPEncoder((3,), (4,), 0, rngs=r),
            ValueError,
            r"MLPEncoder: `latent_dim` must be >= 1, got 0",
        ),
        (
            lambda r: genvi.MLPEncoder((), (4,), 2, rngs=r),
            ValueError,
            r"MLPEncoder: `event_shape` must be a non-empty tuple of positive ints, "
            r"got \(\)",
        ),
        (
            lambda r: genvi.ConvEncoder((8, 8), 2, rngs=r)(jnp.zeros((4, 8, 8, 1))),
            ValueError,
            r"ConvEncoder: input must have shape \(batch, \*\(8, 8\)\), got "
            r"\(4, 8, 8, 1\)",
        ),
        (
            lambda r: genvi.MLPDecoder(2, (4,), (3,), likelihood="bernoulli", rngs=r)(
                jnp.zeros((4, 3))
            ),
            ValueError,
            r"MLPDecoder: input must have shape \(batch, \*\(2,\)\), got \(4, 3\)",
        ),
    ],
)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make(nnx.Rngs(0))
