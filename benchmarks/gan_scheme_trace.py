"""Trace of one game-scheme GAN run of benchmarks/gan_dynamics.py part (b): per
chunk of cycles, the players' losses, the generator's sample mean and spread,
the parameter norms, the modes covered, and the stiffness that the RMS metric
gives to a generator penalty lambda E|G(z) - G_old(z)|^2 (Su's proximal term,
the VI regulariser)."""

from __future__ import annotations

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np

import dynopt
import genvi
from benchmarks import _common
from benchmarks.gan_dynamics import _trainer, real_schemes
from benchmarks.mixture_modes import (
    NUM_EVAL_SAMPLES,
    mixture_data,
    mode_metrics_batched,
)
from genvi._src.game_training import RMS_EPSILON

POWER_ITERATIONS = 30


def penalty_stiffness(trainer, state, num: int = 128):
    r""":math:`h\,\lambda_{max}(P_G H)` per unit weight, ``H`` the Hessian of
    :math:`\mathbb E|G_\theta(z) - G_{old}(z)|^2` at :math:`G = G_{old}`
    (:math:`2\,\mathbb E[J^\top J]`) and :math:`P_G` the cycle's RMS metric.

    An explicit step on the penalty alone multiplies its stiffest component by
    :math:`1 - \lambda S`: stable for :math:`\lambda S < 2` (Euler, Su's inner
    steps); within one extragradient cycle anchored at its start the generator's
    step is multiplied by :math:`1 - \lambda S`, reversed for :math:`\lambda S > 1`.
    """
    key = jax.random.PRNGKey(7)
    gen = state.params["generator"]
    decay = state.hyper["rms_decay"]
    correction = 1 - decay ** state.step.astype(decay.dtype)
    scale = jax.tree.map(
        lambda n: 1 / (jnp.sqrt(n / correction) + RMS_EPSILON),
        state.opt_states["second_moment"][0],
    )

    def samples(g):
        return trainer.sample(
            state._replace(params={**state.params, "generator": g}), key, num
        )

    def hvp(u):
        _, ju = jax.jvp(samples, (gen,), (u,))
        (jtju,) = jax.vjp(samples, gen)[1](ju)
        return jax.tree.map(lambda a, p: 2 * a / num * p, jtju, scale)

    def body(u, _):
        w = hvp(u)
        n = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(w)))
        return jax.tree.map(lambda x: x / n, w), n

    u = jax.tree.map(lambda p: jax.random.normal(key, p.shape, p.dtype), gen)
    _, norms = jax.lax.scan(body, u, None, length=POWER_ITERATIONS)
    return state.hyper["step_size"] * norms[-1]


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))))


def main(argv=None) -> dict:
    p = _common.parser(__doc__, "runs/gan_scheme_trace")
    add = p.add_argument
    schemes = [k for k in real_schemes() if k != "phases_adam"]
    add("--scheme", default="consensus", choices=schemes, help="(default: consensus)")
    add("--gamma", type=float, default=None, help="consensus gamma (default: part b)")
    add("--su-reg", type=float, default=None, help="Su's lambda (default: part b)")
    add("--dataset", default="ring", choices=("ring", "grid"), help="(default: ring)")
    add("--variant", default="plain", choices=("plain", "r1", "vi"))
    add("--reg-weight", type=float, default=1.0, help="VI lambda (default: 1.0)")
    add("--r1-weight", type=float, default=0.1, help="R1 gamma (default: 0.1)")
    add("--cycles", type=int, default=300, help="cycles (default: 300)")
    add("--chunk", type=int, default=25, help="cycles per row (default: 25)")
    add("--step-size", type=float, default=2e-3, help="peak step (default: 2e-3)")
    add("--cosine", action="store_true", help="part (b)'s cosine decay to 1/100")
    add("--rms-decay", type=float, default=0.99, help="(default: 0.99)")
    args = p.parse_args(argv)
    if args.quick:
        args.cycles, args.chunk = 4, 2
    args.width, args.depth, args.latent_dim, args.batch_size = 64, 2, 2, 128
    args.ema_decay, args.lr = 0.99, args.step_size
    scheme = real_schemes()[args.scheme]
    if args.gamma is not None:
        scheme = dynopt.ConsensusOptimization(args.gamma)
    if args.su_reg is not None:
        scheme = dynopt.SuProximal(args.su_reg, n_g=scheme.n_g)
    trainer = _trainer(scheme, args, args.cycles, 1)
    state = jax.jit(trainer.init)(
        jax.random.PRNGKey(args.seed * 1000), mixture_data(args.dataset)
    )
    hyper = dict(state.hyper)
    for name, on in (("r1_weight", "r1"), ("reg_weight", "vi")):
        value = getattr(args, name) if args.variant == on else 0.0
        hyper[name] = jnp.asarray(value, hyper[name].dtype)
    state = state._replace(hyper=hyper)
    run = jax.jit(lambda s: genvi.run_cycles(trainer.step, s, args.chunk))
    sample = jax.jit(lambda s, k: trainer.sample(s, k, NUM_EVAL_SAMPLES))
    stiffness = jax.jit(lambda s: penalty_stiffness(trainer, s))
    rows = []
    for c in range(args.cycles // args.chunk):
        if args.cosine:
            frac = c * args.chunk / args.cycles
            lr = args.step_size * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
            hyper = dict(state.hyper)
            hyper["step_size"] = jnp.asarray(lr, hyper["step_size"].dtype)
            state = state._replace(hyper=hyper)
        state, m = run(state)
        x = np.asarray(sample(state, jax.random.PRNGKey(10_000 + args.seed)))
        modes = mode_metrics_batched(args.dataset, x[None])
        rows.append(
            {
                "cycle": (c + 1) * args.chunk,
                "d_loss": float(np.mean(m["d_loss"])),
                "g_loss": float(np.mean(m["g_loss"])),
                "finite": bool(np.all(np.isfinite(m["d_loss"]))),
                "mean": np.mean(x, 0).tolist(),
                "std": np.std(x, 0).tolist(),
                "max_abs": float(np.max(np.abs(x))),
                "g_norm": _norm(state.params["generator"]),
                "d_norm": _norm(state.params["discriminator"]),
                "stiffness": float(stiffness(state)),
                "modes": int(np.asarray(modes["modes"])[0]),
                "high_quality": float(np.asarray(modes["high_quality"])[0]),
            }
        )
    headers = ["cycle", "d loss", "g loss", "sample std", "max|x|", "|G|", "|D|"]
    headers += ["h*lmax(P_G H)", "modes", "% HQ"]
    table = [
        [r["cycle"], f"{r['d_loss']:.3g}", f"{r['g_loss']:.3g}"]
        + [" ".join(f"{s:.3g}" for s in r["std"]), f"{r['max_abs']:.3g}"]
        + [f"{r['g_norm']:.3g}", f"{r['d_norm']:.3g}", f"{r['stiffness']:.3g}"]
        + [r["modes"], f"{100 * r['high_quality']:.3g}"]
        for r in rows
    ]
    _common.print_table(headers, table, f"{args.scheme} {args.variant} {args.dataset}")
    metrics = {"rows": rows}
    _common.write_outputs(args.out, args, metrics)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
