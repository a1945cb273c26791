"""Calls of the public API as a user writes them, for the type check (mypy).

Not a test module: ``mypy`` (configured in ``pyproject.toml``) checks that
these calls agree with the public signatures; nothing here runs in pytest.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynopt
import genvi


def quadratic(x: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(x**2)


def dynopt_usage() -> None:
    opt = dynopt.momentum(0.1, 0.9)
    tx: optax.GradientTransformationExtraArgs = opt
    chained = optax.chain(dynopt.sgd(0.1), optax.clip(1.0))
    params = jnp.ones(3)
    state = tx.init(params)
    state = dynopt.set_hyperparams(state, learning_rate=0.05)
    updates, state = tx.update(jax.grad(quadratic)(params), state, params)
    params = optax.apply_updates(params, updates)
    run: dynopt.Trajectory = dynopt.discrete_trajectory(
        dynopt.nesterov(0.1, 0.9), quadratic, params, 10, progress=False
    )
    gap: dynopt.Gap = dynopt.trajectory_gap(run, run)
    limit: float = dynopt.stability_limit("momentum", 0.9)
    flat: dynopt.FlatParams = dynopt.flatten({"w": params})
    del chained, gap, limit, flat


def genvi_usage(key: jax.Array, x: jax.Array) -> None:
    def encoder(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return x, jnp.zeros_like(x)

    def decoder(z: jax.Array) -> jax.Array:
        return z

    out: genvi.LossOut = genvi.vae_loss(
        key, x, encoder, decoder, likelihood="bernoulli"
    )
    kl = genvi.gaussian_kl(x, jnp.zeros_like(x))
    # chex.Array / chex.Numeric inputs: numpy arrays and Python numbers too.
    logp = genvi.gaussian_log_prob(np.zeros(3), 0.0, 0.0, event_ndims=1)
    mix: genvi.Mixture = genvi.mixture("ring")
    samples = genvi.sample_mixture(key, mix, 10)
    del out, kl, logp, samples
