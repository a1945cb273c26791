"""Does Su's VI regulariser keep a GAN from collapsing, on the 2-D grid and on the
8x8 digits, across seeds, learning rates and (n_d, n_g) schedules? Fraction of
collapsed runs and the minimum coverage (grid: modes; digits: recall) over the
second half of training, with and without it."""

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
from benchmarks import _gan_digits as digits
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


def run_schedule(task: dict, args, n_d: int, n_g: int, bar) -> dict:
    """All (reg_weight, lr, seed) runs of one schedule in one compiled program.

    ``task`` holds the networks (``nets``), the ``sampler`` of real data and its
    ``data``, the ``regs`` and ``lrs`` swept, ``g_steps``, ``evals``,
    ``num_samples`` per evaluation and ``evaluate``: samples of all runs ->
    ``{metric: (runs,)}``. Returns each metric as a (runs, evals) array.
    """
    lrs_swept = task["lrs"]
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=lrs_swept[0], b1=0.5)
    make_g, make_d = task["nets"]
    trainer = genvi.gan_trainer(
        make_g,
        make_d,
        task["sampler"],
        latent_dim=task["latent_dim"],
        batch_size=args.batch_size,
        g_optimizer=opt,
        d_optimizer=opt,
        n_d=n_d,
        n_g=n_g,
    )
    grid = [
        (r, lr, s) for r in task["regs"] for lr in lrs_swept for s in range(args.seeds)
    ]
    data = jax.tree.map(lambda x: jnp.stack([x] * len(grid)), task["data"])
    keys = jnp.stack([jax.random.PRNGKey(args.seed * 1000 + s) for _, _, s in grid])
    states = jax.jit(jax.vmap(trainer.init))(keys, data)
    lrs = jnp.asarray([lr for _, lr, _ in grid], jnp.float32)
    states = states._replace(
        hyper={**states.hyper, "reg_weight": jnp.asarray([r for r, _, _ in grid])},
        opt_states={k: _set_lr(v, lrs) for k, v in states.opt_states.items()},
    )
    evals = task["evals"]
    cycles = max(task["g_steps"] // n_g, evals)
    chunk = cycles // evals
    run = jax.jit(jax.vmap(lambda s: genvi.run_cycles(trainer.step, s, chunk)))
    num = task["num_samples"]
    sample = jax.jit(jax.vmap(lambda s, k: trainer.sample(s, k, num)))
    eval_keys = jnp.stack([jax.random.PRNGKey(10_000 + s) for _, _, s in grid])
    history = {}
    start = time.perf_counter()
    for _ in range(evals):
        states, _ = run(states)
        for name, value in task["evaluate"](sample(states, eval_keys)).items():
            history.setdefault(name, []).append(np.asarray(value))
        bar.update(1)
    return dict(
        grid=grid,
        **{name: np.stack(v, axis=1) for name, v in history.items()},  # (runs, evals)
        seconds=time.perf_counter() - start,
        g_steps=chunk * evals * n_g,
        eval_g_steps=[(i + 1) * chunk * n_g for i in range(evals)],
    )


def main(argv=None) -> dict:
    p = _common.parser(__doc__, "runs/gan_stability")
    p.add_argument(
        "--datasets",
        nargs="+",
        choices=["grid", "digits"],
        default=["grid", "digits"],
        help="which parts to run (default: grid digits)",
    )
    p.add_argument("--seeds", type=int, default=4, help="seeds per cell (default: 4)")
    p.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        default=[5e-4, 2e-3, 8e-3],
        help="grid: Adam learning rates (default: 5e-4 2e-3 8e-3)",
    )
    p.add_argument(
        "--schedules",
        nargs="+",
        default=["1,1", "1,5", "5,5"],
        help="n_d,n_g schedules, both parts (default: 1,1 1,5 5,5)",
    )
    p.add_argument(
        "--reg-weight", type=float, default=10.0, help="grid: VI lambda (default: 10.0)"
    )
    p.add_argument(
        "--g-steps",
        type=int,
        default=2000,
        help="grid: generator updates (default: 2000)",
    )
    p.add_argument(
        "--evals", type=int, default=8, help="grid: evaluations (default: 8)"
    )
    p.add_argument(
        "--collapse-modes",
        type=float,
        default=12.5,
        help="grid: a run collapses if its coverage in the second half of training "
        "falls below this many of the 25 modes (default: 12.5)",
    )
    p.add_argument(
        "--width", type=int, default=64, help="grid: hidden width (default: 64)"
    )
    p.add_argument(
        "--depth", type=int, default=2, help="hidden layers, both parts (default: 2)"
    )
    p.add_argument(
        "--latent-dim", type=int, default=2, help="grid: noise dim (default: 2)"
    )
    p.add_argument(
        "--batch-size", type=int, default=128, help="batch, both parts (default: 128)"
    )
    digits.add_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.g_steps, args.evals, args.width = 2, 40, 2, 16
        args.lrs, args.schedules = [2e-3], ["1,5"]
        digits.quick(args)
    schedules = [tuple(int(v) for v in s.split(",")) for s in args.schedules]
    evals = ("grid" in args.datasets) * args.evals
    evals += ("digits" in args.datasets) * args.digits_evals
    bar = tqdm(
        total=len(schedules) * evals,
        desc="gan_stability",
        disable=not sys.stderr.isatty(),
    )
    out = {}
    if "grid" in args.datasets:
        out.update(_grid_part(args, schedules, bar))
    if "digits" in args.datasets:
        out["digits"] = _digits_part(args, schedules, bar)
    bar.close()
    _common.write_outputs(args.out, args, out)
    if "grid" in args.datasets:
        _plot(out["cells"], args)
    if "digits" in args.datasets:
        digits.plot(out["digits"]["cells"], args)
    print(f"wrote {args.out}")
    return out


def _grid_part(args, schedules, bar) -> dict:
    """The 2-D grid: cells, table and verdict (mode coverage)."""
    start = time.perf_counter()
    task = dict(
        nets=(
            mlp(args.width, args.depth, args.latent_dim, 2),
            mlp(args.width, args.depth, 2, 1),
        ),
        sampler=sample_data,
        data=mixture_data("grid"),
        latent_dim=args.latent_dim,
        regs=[0.0, args.reg_weight],
        lrs=args.lrs,
        g_steps=args.g_steps,
        evals=args.evals,
        num_samples=NUM_EVAL_SAMPLES,
        evaluate=lambda s: mode_metrics_batched("grid", s),
    )
    rows, out = [], {"cells": []}
    for n_d, n_g in schedules:
        res = run_schedule(task, args, n_d, n_g, bar)
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
    verdict = _verdict(out["cells"], args.reg_weight)
    print(verdict)
    out["verdict"] = verdict
    out["seconds"] = time.perf_counter() - start
    return out


def _digits_part(args, schedules, bar) -> dict:
    """The 8x8 digits: cells, table and verdict (recall of the digits metrics)."""
    start = time.perf_counter()
    data = digits.data()
    classifier = genvi.digits_classifier(args.cache_dir)
    task = dict(
        nets=digits.networks(args),
        sampler=digits.sample_data,
        data=jnp.asarray(data.train.x),
        latent_dim=args.digits_latent_dim,
        regs=[0.0, args.digits_reg_weight],
        lrs=args.digits_lrs,
        g_steps=args.digits_g_steps,
        evals=args.digits_evals,
        num_samples=args.eval_samples,
        evaluate=digits.evaluator(classifier, data.test.x),
    )
    results = {s: run_schedule(task, args, *s, bar) for s in schedules}
    cells, rows = digits.summarize(results, args)
    ref = digits.reference(classifier, data)
    digits.print_table(rows, args, ref)
    verdict = _verdict(
        cells,
        args.digits_reg_weight,
        prefix="digits, ",
        also=("classes_dropped_fraction", "class KL above ln 2 in"),
    )
    print(verdict)
    return {
        "cells": cells,
        "verdict": verdict,
        "collapse_recall": args.collapse_recall,
        "real_train_vs_test": ref,
        "classifier_test_accuracy": classifier.test_accuracy,
        "seconds": time.perf_counter() - start,
    }


def _verdict(cells, reg_weight: float, prefix: str = "", also=None) -> str:
    """Plain sentences comparing collapse with and without the regulariser.

    One line per schedule, then one over the schedules with n_g > 1 (where the
    regulariser is active), all computed from the cells. ``also``: an optional
    ``(cell key, description)`` of a second fraction compared the same way.
    """
    keys = [("collapsed_fraction", "collapsed runs")] + ([also] if also else [])

    def fractions(select):
        """{key: (without, with)} mean fractions over the selected cells."""
        out = {}
        for key, _ in keys:
            pair = [[c[key] for c in cells if select(c) and c["reg_weight"] == r]
                    for r in (0.0, reg_weight)]  # fmt: skip
            out[key] = tuple(float(np.mean(v)) for v in pair)
        return out

    def compare(fracs):
        return "; ".join(
            f"{text} {fracs[key][0]:.0%} without, {fracs[key][1]:.0%} with "
            f"lambda={reg_weight:g}"
            for key, text in keys
        )

    lines = []
    schedules = sorted({(c["n_d"], c["n_g"]) for c in cells})
    for n_d, n_g in schedules:
        fracs = fractions(lambda c, s=(n_d, n_g): (c["n_d"], c["n_g"]) == s)
        note = " (n_g = 1: the regulariser is an exact no-op)" if n_g == 1 else ""
        lines.append(f"{prefix}schedule n_d={n_d}, n_g={n_g}: {compare(fracs)}{note}")
    if all(n_g == 1 for _, n_g in schedules):
        lines.append(f"{prefix}no schedule has n_g > 1: the regulariser never acted")
        return "\n".join(lines)
    fracs = fractions(lambda c: c["n_g"] > 1)
    without, with_reg = fracs["collapsed_fraction"]
    if with_reg < without:
        effect = "fewer runs collapsed with the regulariser"
    elif with_reg > without:
        effect = "more runs collapsed with the regulariser"
    else:
        effect = "the regulariser did not change how many runs collapsed"
    lines.append(f"{prefix}over the schedules with n_g > 1: {compare(fracs)}: {effect}")
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
