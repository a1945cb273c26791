"""Smoke test of benchmarks/gan_scheme_trace.py, and its stiffness against a dense
Hessian."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from benchmarks import gan_scheme_trace
from benchmarks.gan_dynamics import _trainer, real_schemes
from benchmarks.mixture_modes import mixture_data


def test_quick_run_writes_its_rows(tmp_path):
    metrics = gan_scheme_trace.main(
        ["--quick", "--scheme", "su_proximal", "--out", str(tmp_path)]
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(metrics) == {"rows"}
    assert [r["cycle"] for r in saved["rows"]] == [2, 4]
    assert all(r["finite"] and r["stiffness"] > 0 for r in saved["rows"])


def test_stiffness_is_the_top_eigenvalue_of_the_scaled_hessian():
    # h * lambda_max(P_G H), H the dense Hessian of E|G - G_old|^2 at G_old.
    ns = argparse.Namespace(
        width=4, depth=1, latent_dim=2, batch_size=8, ema_decay=0.99,
        r1_weight=0.1, step_size=2e-3, rms_decay=0.99,
    )  # fmt: skip
    trainer = _trainer(real_schemes()["simultaneous"], ns, 3, 1)
    state = trainer.init(jax.random.PRNGKey(0), mixture_data("ring"))
    state = jax.jit(
        lambda s: jax.lax.fori_loop(0, 3, lambda _, s: trainer.step(s)[0], s)
    )(state)
    got = float(gan_scheme_trace.penalty_stiffness(trainer, state, num=16))
    gen = state.params["generator"]
    flat, unravel = ravel_pytree(gen)
    key = jax.random.PRNGKey(7)
    old = trainer.sample(state, key, 16)

    def distance(f):
        s = state._replace(params={**state.params, "generator": unravel(f)})
        return jnp.mean(jnp.sum(jnp.square(trainer.sample(s, key, 16) - old), 1))

    hessian = np.asarray(jax.hessian(distance)(flat), np.float64)
    decay = 0.99
    nu = state.opt_states["second_moment"][0]
    scale = jax.tree.map(
        lambda n, w: jnp.full_like(w, 1 / jnp.sqrt(n / (1 - decay**3))), nu, gen
    )
    p = np.asarray(ravel_pytree(scale)[0], np.float64)
    top = np.max(np.abs(np.linalg.eigvals(p[:, None] * hessian)))
    np.testing.assert_allclose(got, 2e-3 * top, rtol=1e-3)
