"""train's unrolled chunks: chosen for convolutional steps on the CPU."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genvi
from genvi._src import chunk as chunk_module
from tests.tolerances import F32_ITERATES


def _conv_step(w):
    # Gradient descent on a convolution's squared output.
    def loss(w):
        x = jnp.ones((1, 6, 6, 1))
        y = jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.mean(y**2)

    value, grad = jax.value_and_grad(loss)(w)
    return w - 0.1 * grad, {"loss": value}


def _dense_step(w):
    return 0.9 * w, {"loss": jnp.sum(w**2)}


def test_convolutions_are_found_in_nested_jaxprs():
    w = jnp.ones((3, 3, 1, 1))
    assert chunk_module._has_convolution(jax.make_jaxpr(_conv_step)(w).jaxpr)
    assert not chunk_module._has_convolution(jax.make_jaxpr(_dense_step)(w).jaxpr)

    def nested(w):
        return jax.lax.scan(lambda c, _: _conv_step(c), w, None, length=2)

    assert chunk_module._has_convolution(jax.make_jaxpr(nested)(w).jaxpr)


def test_unrolled_chunk_has_no_loop_and_matches_the_loop():
    w = jnp.ones((3, 3, 1, 1))
    build = chunk_module._compiled_chunk.__wrapped__
    texts = {
        unroll: build(_conv_step, "stop", False, 3, unroll)
        .loop.lower(w, None, np.int32(3))
        .compile()
        .as_text()
        for unroll in (False, True)
    }
    assert "while" in texts[False] and "while" not in texts[True]
    auto, history = genvi.train(_conv_step, w, num_steps=5, progress=False)
    looped, _ = genvi.train(
        _conv_step, w, num_steps=5, unroll=False, steps_per_call=2, progress=False
    )
    assert history["step"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(auto, looped, **F32_ITERATES)


def test_unroll_must_be_a_bool():
    with pytest.raises(
        ValueError, match=r"train: `unroll` must be None or a bool, got 2"
    ):
        genvi.train(_dense_step, jnp.ones(()), num_steps=1, unroll=2)


@pytest.mark.parametrize("convolves", [True, False])
def test_adversarial_phases_are_written_out_for_convolutions_on_the_cpu(convolves):
    """A one-step phase as ``scan(unroll=True)`` still compiles to a loop, and
    XLA:CPU runs convolutions in a loop body slowly: the engine writes convolutional
    phases out (no scan left in the step), and keeps its scans otherwise."""
    if convolves:
        make_g = lambda rngs: genvi.DCGANGenerator(4, (8, 8), rngs=rngs, width=2)  # noqa: E731
        make_d = lambda rngs: genvi.DCGANDiscriminator((8, 8), rngs=rngs, width=2)  # noqa: E731
        data = jnp.zeros((4, 8, 8))
        latent = 4
    else:
        make_g = lambda rngs: genvi.MLP((2, 4, 2), rngs=rngs)  # noqa: E731
        make_d = lambda rngs: genvi.MLP((2, 4, 1), rngs=rngs)  # noqa: E731
        data = jnp.zeros((4, 2))
        latent = 2
    trainer = genvi.gan_trainer(
        make_g,
        make_d,
        lambda key, n, data: genvi.sample_batch(key, data, n),
        latent_dim=latent,
        batch_size=2,
        g_optimizer=optax.sgd(0.1),
        d_optimizer=optax.sgd(0.1),
        n_g=2,
    )
    state = trainer.init(jax.random.key(0), data)
    eqns = jax.make_jaxpr(trainer.step)(state).jaxpr.eqns
    scans = sum(e.primitive.name == "scan" for e in eqns)
    expect_written_out = convolves and jax.default_backend() == "cpu"
    assert scans == (0 if expect_written_out else 2)
