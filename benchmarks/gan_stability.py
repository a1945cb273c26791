"""Does Su's VI regulariser keep a GAN on the 2-D grid from collapsing, across seeds,
learning rates and (n_d, n_g) schedules? Fraction of collapsed runs and the minimum
mode coverage over the second half of training, with and without it."""

from __future__ import annotations

import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import genvi
from benchmarks import _common
from benchmarks.mixture_modes import (
    NUM_EVAL_SAMPLES,
    mixture_data,
    mlp,
    mode_metrics_batched,
    sample_data,
)


def _set_lr(opt_state, lr):
    """Writes a per-run learning rate into an inject_hyperparams state."""
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = lr
    return opt_state._replace(hyperparams=hyper)


def run_schedule(args, n_d: int, n_g: int, bar) -> dict:
    """All (reg_weight, lr, seed) runs of one schedule in one compiled program."""
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=args.lrs[0], b1=0.5)
    trainer = genvi.gan_trainer(
        mlp(args.width, args.depth, args.latent_dim, 2),
        mlp(args.width, args.depth, 2, 1),
        sample_data,
        latent_dim=args.latent_dim,
        batch_size=args.batch_size,
        g_optimizer=opt,
        d_optimizer=opt,
        n_d=n_d,
        n_g=n_g,
    )
    regs = [0.0, args.reg_weight]
    grid = [(r, lr, s) for r in regs for lr in args.lrs for s in range(args.seeds)]
    data = jax.tree.map(lambda x: jnp.stack([x] * len(grid)), mixture_data("grid"))
    keys = jnp.stack([jax.random.PRNGKey(args.seed * 1000 + s) for _, _, s in grid])
    states = jax.jit(jax.vmap(trainer.init))(keys, data)
    lrs = jnp.asarray([lr for _, lr, _ in grid], jnp.float32)
    states = states._replace(
        hyper={**states.hyper, "reg_weight": jnp.asarray([r for r, _, _ in grid])},
        opt_states={k: _set_lr(v, lrs) for k, v in states.opt_states.items()},
    )
    cycles = max(args.g_steps // n_g, args.evals)
    chunk = cycles // args.evals
    run = jax.jit(jax.vmap(lambda s: genvi.run_cycles(trainer.step, s, chunk)))
    sample = jax.jit(jax.vmap(lambda s, k: trainer.sample(s, k, NUM_EVAL_SAMPLES)))
    eval_keys = jnp.stack([jax.random.PRNGKey(10_000 + s) for _, _, s in grid])
    modes, hq = [], []
    start = time.perf_counter()
    for _ in range(args.evals):
        states, _ = run(states)
        out = mode_metrics_batched("grid", sample(states, eval_keys))
        modes.append(np.asarray(out["modes"]))
        hq.append(np.asarray(out["high_quality"]))
        bar.update(1)
    return dict(
        grid=grid,
        modes=np.stack(modes, axis=1),  # (runs, evals)
        high_quality=np.stack(hq, axis=1),
        seconds=time.perf_counter() - start,
        g_steps=chunk * args.evals * n_g,
    )


def main(argv=None) -> dict:
    p = _common.parser(__doc__, "runs/gan_stability")
    p.add_argument("--seeds", type=int, default=4, help="seeds per cell (default: 4)")
    p.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        default=[5e-4, 2e-3, 8e-3],
        help="Adam learning rates (default: 5e-4 2e-3 8e-3)",
    )
    p.add_argument(
        "--schedules",
        nargs="+",
        default=["1,1", "1,5", "5,5"],
        help="n_d,n_g schedules (default: 1,1 1,5 5,5)",
    )
    p.add_argument(
        "--reg-weight", type=float, default=10.0, help="VI lambda (default: 10.0)"
    )
    p.add_argument(
        "--g-steps", type=int, default=2000, help="generator updates (default: 2000)"
    )
    p.add_argument("--evals", type=int, default=8, help="evaluations (default: 8)")
    p.add_argument(
        "--collapse-modes",
        type=float,
        default=12.5,
        help="a run collapses if its coverage in the second half of training falls "
        "below this many of the 25 modes (default: 12.5)",
    )
    p.add_argument("--width", type=int, default=64, help="hidden width (default: 64)")
    p.add_argument("--depth", type=int, default=2, help="hidden layers (default: 2)")
    p.add_argument("--latent-dim", type=int, default=2, help="noise dim (default: 2)")
    p.add_argument("--batch-size", type=int, default=128, help="batch (default: 128)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.g_steps, args.evals, args.width = 2, 40, 2, 16
        args.lrs, args.schedules = [2e-3], ["1,5"]
    schedules = [tuple(int(v) for v in s.split(",")) for s in args.schedules]
    bar = tqdm(
        total=len(schedules) * args.evals,
        desc="gan_stability",
        disable=not sys.stderr.isatty(),
    )
    rows, out = [], {"cells": []}
    for n_d, n_g in schedules:
        res = run_schedule(args, n_d, n_g, bar)
        second = res["modes"][:, res["modes"].shape[1] // 2 :]
        min_cov = second.min(axis=1)
        for reg in (0.0, args.reg_weight):
            for lr in args.lrs:
                sel = [i for i, g in enumerate(res["grid"]) if g[:2] == (reg, lr)]
                collapsed = min_cov[sel] < args.collapse_modes
                cell = {
                    "n_d": n_d,
                    "n_g": n_g,
                    "reg_weight": reg,
                    "lr": lr,
                    "collapsed_fraction": float(np.mean(collapsed)),
                    "min_modes_second_half": min_cov[sel].tolist(),
                    "final_modes": res["modes"][sel, -1].tolist(),
                    "final_high_quality": res["high_quality"][sel, -1].tolist(),
                }
                out["cells"].append(cell)
                se = (
                    np.std(min_cov[sel], ddof=1) / math.sqrt(len(sel))
                    if len(sel) > 1
                    else float("nan")
                )
                rows.append(
                    [
                        f"{n_d},{n_g}",
                        f"{lr:g}",
                        f"{reg:g}",
                        f"{int(collapsed.sum())}/{len(sel)}",
                        f"{np.mean(min_cov[sel]):.3g} ± {se:.2g}",
                        f"{np.mean(res['modes'][sel, -1]):.3g}",
                        f"{100 * np.mean(res['high_quality'][sel, -1]):.3g}",
                    ]
                )
    bar.close()
    _common.print_table(
        [
            "n_d,n_g",
            "lr",
            "lambda",
            "collapsed",
            "min modes, 2nd half",
            "final modes",
            "final % HQ",
        ],
        rows,
        title=(
            f"Grid (25 modes), {args.seeds} seeds per cell, {args.g_steps} generator "
            f"updates; collapsed = fewer than {args.collapse_modes:g} modes at some "
            "evaluation in the second half"
        ),
    )
    verdict = _verdict(out["cells"], args)
    print(verdict)
    out["verdict"] = verdict
    _common.write_outputs(args.out, args, out)
    _plot(out["cells"], args)
    print(f"wrote {args.out}")
    return out


def _verdict(cells, args) -> str:
    """A plain sentence comparing collapse with and without the regulariser."""
    lines = []
    for n_d, n_g in sorted({(c["n_d"], c["n_g"]) for c in cells}):
        by = {}
        for c in cells:
            if (c["n_d"], c["n_g"]) == (n_d, n_g):
                by.setdefault(c["reg_weight"], []).append(c["collapsed_fraction"])
        without = float(np.mean(by[0.0]))
        with_reg = float(np.mean(by[args.reg_weight]))
        note = " (n_g = 1: the regulariser is an exact no-op)" if n_g == 1 else ""
        lines.append(
            f"schedule n_d={n_d}, n_g={n_g}: collapsed runs {without:.0%} without, "
            f"{with_reg:.0%} with lambda={args.reg_weight:g}{note}"
        )
    return "\n".join(lines)


def _plot(cells, args):
    plt = _common.plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels, values, colors = [], [], []
    for c in cells:
        labels.append(f"{c['n_d']},{c['n_g']} lr={c['lr']:g} l={c['reg_weight']:g}")
        values.append(np.mean(c["min_modes_second_half"]))
        colors.append("tab:blue" if c["reg_weight"] == 0 else "tab:orange")
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.axvline(args.collapse_modes, color="k", lw=0.8)
    ax.set_xlabel("min modes covered over the 2nd half (mean over seeds)")
    _common.savefig(fig, args.out, "stability.png")


if __name__ == "__main__":
    main(sys.argv[1:])
