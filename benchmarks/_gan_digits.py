"""The digits half of benchmarks/gan_stability.py: data, networks, metrics, table.

Real data are the training split of :func:`genvi.load_digits` (1079 images, pixels
in [0, 1] as in benchmarks/vae_digits.py); the generator is an MLP with a sigmoid
output, the discriminator an MLP with one logit. Every evaluation scores each
run's samples with :func:`genvi.digits_metrics` against the test split (k-NN
precision / recall / coverage on the digits classifier's features, class-histogram
KL of its predictions). A run collapses when its recall falls below a threshold at
some evaluation in the second half of training: 0.5 by default, the recall of real
digits from only five of the ten classes (about 0.47, docs/reference.md G4), the
analogue of the grid's "fewer than half of the 25 modes". Recall also falls when samples
are poor rather than few, so the table adds a mode-dropping count on its own: the
class-histogram KL above ln 2 (the KL of five balanced classes out of ten) at some
evaluation in the second half.
"""

from __future__ import annotations

import math

import jax
import numpy as np

import genvi
from benchmarks import _common

METRICS = ("recall", "precision", "coverage", "class_kl")
# KL(classes || uniform) of samples from 5 of 10 classes (docs/reference.md G4).
DROPPED_KL = math.log(2)


def add_arguments(p) -> None:
    """The digits part's flags (the schedules, seeds, depth and batch are shared)."""
    p.add_argument(
        "--digits-lrs",
        type=float,
        nargs="+",
        default=[1e-3, 3e-3, 1e-2],
        help="digits: Adam learning rates (default: 1e-3 3e-3 1e-2)",
    )
    p.add_argument(
        "--digits-reg-weight",
        type=float,
        default=10.0,
        help="digits: VI lambda (default: 10.0)",
    )
    p.add_argument(
        "--digits-g-steps",
        type=int,
        default=2000,
        help="digits: generator updates (default: 2000)",
    )
    p.add_argument(
        "--digits-evals", type=int, default=8, help="digits: evaluations (default: 8)"
    )
    p.add_argument(
        "--digits-width",
        type=int,
        default=128,
        help="digits: hidden width (default: 128)",
    )
    p.add_argument(
        "--digits-latent-dim",
        type=int,
        default=16,
        help="digits: noise dim (default: 16)",
    )
    p.add_argument(
        "--collapse-recall",
        type=float,
        default=0.5,
        help="digits: a run collapses if its recall in the second half of training "
        "falls below this (default: 0.5)",
    )
    p.add_argument(
        "--eval-samples",
        type=int,
        default=1000,
        help="digits: generated images per run and evaluation (default: 1000)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="digits classifier cache (default: $DYNVI_CACHE or ~/.cache/dynvi)",
    )


def quick(args) -> None:
    """Smoke-test sizes for the digits part."""
    args.digits_g_steps, args.digits_evals, args.digits_width = 40, 2, 16
    args.digits_lrs, args.eval_samples = [1e-3], 100


def data() -> genvi.Digits:
    return genvi.load_digits()


def sample_data(key, n, train_x):
    """A minibatch of training images (held in the training state)."""
    return genvi.sample_batch(key, train_x, n)


def networks(args):
    """``(make_generator, make_discriminator)``: latent -> 64 (sigmoid), 64 -> 1."""
    hidden = (args.digits_width,) * args.depth
    sizes_g = (args.digits_latent_dim, *hidden, 64)
    sizes_d = (64, *hidden, 1)
    return (
        lambda rngs: genvi.MLP(sizes_g, rngs=rngs, final_activation=jax.nn.sigmoid),
        lambda rngs: genvi.MLP(sizes_d, rngs=rngs),
    )


def evaluator(classifier, real):
    """``samples (runs, n, 64) -> {metric: (runs,)}`` by :func:`genvi.digits_metrics`.

    A run whose samples are not all finite gets NaN metrics (and so counts as
    collapsed: NaN is never above the threshold).
    """

    def evaluate(samples):
        samples = np.asarray(samples)
        out = {name: np.full(len(samples), np.nan) for name in METRICS}
        for i, x in enumerate(samples):
            if np.all(np.isfinite(x)):
                m = genvi.digits_metrics(classifier, x, real)
                for name in METRICS:
                    out[name][i] = m[name]
        return out

    return evaluate


def reference(classifier, digits: genvi.Digits) -> dict:
    """The metrics of the real training split against the test split (the ceiling)."""
    m = genvi.digits_metrics(classifier, digits.train.x, digits.test.x)
    return {name: m[name] for name in METRICS}


def summarize(results: dict, args) -> tuple[list[dict], list[list]]:
    """Cells (one per schedule, lambda, lr) and table rows from the sweeps."""
    cells, rows = [], []
    for (n_d, n_g), res in results.items():
        recall = res["recall"]
        second = recall[:, recall.shape[1] // 2 :]
        min_recall = second.min(axis=1)  # NaN if any evaluation was NaN
        min_coverage = res["coverage"][:, recall.shape[1] // 2 :].min(axis=1)
        max_kl = res["class_kl"][:, recall.shape[1] // 2 :].max(axis=1)
        for reg in (0.0, args.digits_reg_weight):
            for lr in args.digits_lrs:
                sel = [i for i, g in enumerate(res["grid"]) if g[:2] == (reg, lr)]
                collapsed = ~(min_recall[sel] >= args.collapse_recall)
                dropped = ~(max_kl[sel] <= DROPPED_KL)
                cell = {
                    "n_d": n_d,
                    "n_g": n_g,
                    "reg_weight": reg,
                    "lr": lr,
                    "collapsed_fraction": float(np.mean(collapsed)),
                    "min_recall_second_half": min_recall[sel].tolist(),
                    "min_coverage_second_half": min_coverage[sel].tolist(),
                    "classes_dropped_fraction": float(np.mean(dropped)),
                    "max_class_kl_second_half": max_kl[sel].tolist(),
                    "recall_curve": recall[sel].tolist(),
                    "eval_g_steps": res["eval_g_steps"],
                }
                for name in METRICS:
                    cell[f"final_{name}"] = res[name][sel, -1].tolist()
                cells.append(cell)
                se = (
                    np.std(min_recall[sel], ddof=1) / math.sqrt(len(sel))
                    if len(sel) > 1
                    else float("nan")
                )
                rows.append(
                    [
                        f"{n_d},{n_g}",
                        f"{lr:g}",
                        f"{reg:g}",
                        f"{int(collapsed.sum())}/{len(sel)}",
                        f"{np.mean(min_recall[sel]):.3f} ± {se:.2g}",
                        f"{int(dropped.sum())}/{len(sel)}",
                        f"{np.mean(max_kl[sel]):.3f}",
                        f"{np.mean(res['recall'][sel, -1]):.3f}",
                        f"{np.mean(res['precision'][sel, -1]):.3f}",
                        f"{np.mean(res['class_kl'][sel, -1]):.3f}",
                    ]
                )
    return cells, rows


def print_table(rows, args, ref: dict) -> None:
    _common.print_table(
        [
            "n_d,n_g",
            "lr",
            "lambda",
            "collapsed",
            "min recall, 2nd half",
            "class KL > ln 2",
            "max class KL, 2nd half",
            "final recall",
            "final precision",
            "final class KL",
        ],
        rows,
        title=(
            f"Digits (8x8, 1079 training images), {args.seeds} seeds per cell, "
            f"{args.digits_g_steps} generator updates, {args.eval_samples} samples "
            "per evaluation against the 359 test images; collapsed = recall below "
            f"{args.collapse_recall:g} at some evaluation in the second half; "
            "class KL > ln 2 = above ln 2 (as if half the classes were missing) at "
            "some evaluation in the second half "
            f"(real training images: recall {ref['recall']:.3f}, precision "
            f"{ref['precision']:.3f}, coverage {ref['coverage']:.3f}, class KL "
            f"{ref['class_kl']:.3f})"
        ),
    )


def plot(cells, args) -> None:
    """Mean recall over training, one panel per schedule, with vs without lambda."""
    plt = _common.plt()
    schedules = sorted({(c["n_d"], c["n_g"]) for c in cells})
    fig, axes = plt.subplots(
        1, len(schedules), figsize=(3.2 * len(schedules), 3), squeeze=False
    )
    styles = ["-", "--", ":", "-."]
    for ax, (n_d, n_g) in zip(axes[0], schedules):
        for c in cells:
            if (c["n_d"], c["n_g"]) != (n_d, n_g):
                continue
            ls = styles[args.digits_lrs.index(c["lr"]) % len(styles)]
            steps = c["eval_g_steps"]
            ax.plot(
                steps,
                np.mean(c["recall_curve"], axis=0),
                ls=ls,
                marker=".",
                color="tab:blue" if c["reg_weight"] == 0 else "tab:orange",
                label=f"lr={c['lr']:g} l={c['reg_weight']:g}",
            )
        ax.axvspan(steps[len(steps) // 2], steps[-1], color="0.92", zorder=0)
        ax.axhline(args.collapse_recall, color="k", lw=0.8)
        same = " (lambda: no-op)" if n_g == 1 else ""
        ax.set_title(f"n_d={n_d}, n_g={n_g}{same}", fontsize=9)
        ax.set_xlabel("generator updates")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("recall (mean over seeds)")
    axes[0][-1].legend(fontsize=6)
    _common.savefig(fig, args.out, "stability_digits.png")
