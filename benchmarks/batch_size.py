"""Is a bigger batch better? Steps to a target loss vs batch size on a noisy quadratic.

The noisy quadratic model (Zhang et al. 2019, arXiv:1907.04164): loss
``sum_i h_i x_i^2 / 2`` with ``h_i = 1/i`` and per-example gradient noise of
covariance ``c H``, so a batch of B has noise ``c H / B``. SGD's expected loss is
exact per coordinate (``dynopt.sgd_second_moment``), so the steps to reach a
target loss are computed exactly for every batch size and every learning rate of
a grid, and the best rate is kept per batch size. Below the critical batch size
the steps halve when the batch doubles (perfect scaling, lr proportional to B);
above it they stop falling (the rate hits the stability limit 2/h_max).
McCandlish et al.'s ``S = S_min (1 + B_crit / B)`` is fitted to the steps and the
fitted B_crit is set against the simple noise scale ``tr Sigma / |G|^2``
(``dynopt.gradient_noise`` on sampled examples). A few batch sizes are re-run
with ``dynopt.sgd`` on sampled noise to check the exact curve.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import dynopt
from benchmarks import _common


def nqm(dim, noise):
    h = 1.0 / jnp.arange(1, dim + 1, dtype=jnp.float64)
    return h, noise * h  # curvatures, per-example noise variances c h


def expected_loss(lr, batch, steps, h, c, x0):
    m2 = dynopt.sgd_second_moment(lr, h, c / batch, x0, steps)
    return 0.5 * jnp.sum(h * m2)


def steps_to_target(lr, batch, h, c, x0, target, max_steps):
    """First k with E[loss_k] <= target, by bisection (the loss decreases in k
    because every coordinate starts above its stationary second moment)."""

    def body(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        ok = expected_loss(lr, batch, mid, h, c, x0) <= target
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 64, body, (jnp.int64(0), jnp.int64(max_steps)))
    reached = expected_loss(lr, batch, hi, h, c, x0) <= target
    return jnp.where(reached, hi, jnp.iinfo(jnp.int64).max)


def fit_critical_batch(batches, steps):
    """Least squares in log space of S = S_min (1 + B_crit / B)."""
    b, s = np.asarray(batches, float), np.asarray(steps, float)
    best = (np.inf, None, None)
    for crit in np.geomspace(1e-2, 1e7, 9001):
        shape = np.log1p(crit / b)
        log_smin = np.mean(np.log(s) - shape)
        err = np.sum((np.log(s) - shape - log_smin) ** 2)
        if err < best[0]:
            best = (err, crit, float(np.exp(log_smin)))
    return best[1], best[2]


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], "runs/batch_size")
    p.add_argument("--dim", type=int, default=100, help="dimensions (default: 100)")
    p.add_argument(
        "--noise", type=float, default=10.0, help="noise factor c (default: 10.0)"
    )
    p.add_argument(
        "--target",
        type=float,
        default=0.1,
        help="target loss as a fraction of the initial loss (default: 0.1)",
    )
    p.add_argument(
        "--max-batch-log2",
        type=int,
        default=16,
        help="batch sizes 1, 2, 4, ..., 2^this (default: 16)",
    )
    p.add_argument(
        "--num-lrs", type=int, default=41, help="learning-rate grid size (default: 41)"
    )
    p.add_argument(
        "--paths",
        type=int,
        default=256,
        help="paths of the dynopt.sgd check runs (default: 256)",
    )
    args = p.parse_args(argv)
    # Exact moments need float64; the caller's setting is restored afterwards.
    with _common.x64():
        return _run(args)


def _run(args) -> dict:
    if args.quick:
        args.dim, args.max_batch_log2, args.num_lrs, args.paths = 20, 8, 11, 16

    h, c = nqm(args.dim, args.noise)
    x0 = jnp.ones(args.dim)
    loss0 = float(0.5 * jnp.sum(h * x0**2))
    target = args.target * loss0
    batches = 2 ** np.arange(args.max_batch_log2 + 1)
    lr_max = 1.99 / float(h.max())  # the stability limit of the stiffest mode
    lrs = np.geomspace(lr_max * 2.0 ** -(args.max_batch_log2 + 4), lr_max, args.num_lrs)
    max_steps = 10**9

    grid = jax.jit(
        jax.vmap(
            jax.vmap(
                lambda lr, b: steps_to_target(lr, b, h, c, x0, target, max_steps),
                in_axes=(0, None),
            ),
            in_axes=(None, 0),
        )
    )
    steps_grid = np.asarray(grid(jnp.asarray(lrs), jnp.asarray(batches, float)))
    best = steps_grid.argmin(axis=1)
    steps = steps_grid[np.arange(len(batches)), best].astype(float)
    tuned = lrs[best]
    examples = steps * batches
    crit_fit, s_min = fit_critical_batch(batches, steps)

    # The simple noise scale tr(Sigma) / |G|^2 at the start and at the point where
    # the noiseless (largest-batch) run meets the target, exact and estimated by
    # dynopt.gradient_noise from sampled examples (per-example loss
    # sum_i h_i (x_i - xi_i)^2 / 2 with xi_i ~ N(0, c / h_i)).
    def example_loss(x, xi):
        return 0.5 * jnp.sum(h * (x - xi) ** 2)

    xi = jax.random.normal(jax.random.key(args.seed), (4096, args.dim)) * jnp.sqrt(
        c / h**2
    )
    k_end = int(steps[-1])
    x_end = x0 * (1 - tuned[-1] * h) ** k_end
    scales = {}
    for name, x in (("start", x0), ("target", x_end)):
        g = h * x
        est = dynopt.gradient_noise(example_loss, x, xi)
        scales[name] = {
            "exact": float(dynopt.critical_batch_size(jnp.sum(c), jnp.sum(g**2))),
            "estimated": float(est.critical_batch_size),
            "hessian_weighted": float(jnp.sum(h * c) / jnp.sum(h * g**2)),
        }

    # Check a few points of the exact curve with dynopt.sgd on sampled noise: the
    # mean loss at the predicted step should sit at the target.
    checks = []
    picks = sorted({0, len(batches) // 2, len(batches) - 1})
    for i in tqdm(picks, desc="sgd checks", disable=not sys.stderr.isatty()):
        k = int(steps[i])
        out = dynopt.noisy_paths(
            dynopt.sgd(float(tuned[i])),
            lambda x: 0.5 * jnp.sum(h * x**2),
            x0,
            c / batches[i],
            k,
            key=jax.random.key(args.seed + i),
            num_paths=args.paths,
            save_every=k,
        )
        final = np.asarray(0.5 * jnp.sum(h * out.params[:, -1] ** 2, axis=-1))
        checks.append(
            {
                "batch": int(batches[i]),
                "steps": k,
                "loss": float(final.mean()),
                "se": float(final.std(ddof=1) / np.sqrt(args.paths)),
            }
        )

    rows = [
        [int(b), f"{lr:.3g}", int(s), int(e)]
        for b, lr, s, e in zip(batches, tuned, steps, examples)
    ]
    _common.print_table(
        ["B", "tuned lr", "steps", "examples"],
        rows,
        title=f"NQM d={args.dim}, c={args.noise:g}: steps to loss {target:.4g} "
        f"({args.target:g} x initial)",
    )
    _common.print_table(
        ["quantity", "value"],
        [
            ["fitted B_crit (S = S_min (1 + B_crit/B))", f"{crit_fit:.3g}"],
            ["fitted S_min", f"{s_min:.3g}"],
            ["tr Sigma/|G|^2 at start: exact", f"{scales['start']['exact']:.3g}"],
            ["  estimated from 4096 examples", f"{scales['start']['estimated']:.3g}"],
            ["tr Sigma/|G|^2 at the target", f"{scales['target']['exact']:.3g}"],
            ["  estimated from 4096 examples", f"{scales['target']['estimated']:.3g}"],
            [
                "tr(H Sigma)/G'HG at the target",
                f"{scales['target']['hessian_weighted']:.3g}",
            ],
        ],
        title="Critical batch size",
    )
    _common.print_table(
        ["B", "steps", "dynopt.sgd mean loss (SE)", "target"],
        [
            [
                r["batch"],
                r["steps"],
                f"{r['loss']:.4g} ({r['se']:.1g})",
                f"{target:.4g}",
            ]
            for r in checks
        ],
        title="Check: dynopt.sgd with sampled noise at the tuned rate",
    )

    plt = _common.plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    fit = s_min * (1 + crit_fit / batches)
    ax[0].loglog(batches, steps, "o-", label="steps (lr tuned per B)")
    ax[0].loglog(batches, fit, "--", label=f"S_min (1 + {crit_fit:.3g}/B)")
    ax[0].loglog(batches, steps[0] / batches, ":", label="perfect scaling")
    ax[1].loglog(batches, examples, "o-", label="examples = steps x B")
    ax[1].loglog(batches, fit * batches, "--", label="fit")
    for a in ax:
        a.axvline(crit_fit, color="k", lw=0.8, label="fitted B_crit")
        a.axvline(
            scales["target"]["exact"],
            color="C3",
            lw=0.8,
            ls="-.",
            label="tr Sigma/|G|^2 at target",
        )
        a.set_xlabel("batch size B")
        a.legend(fontsize=8)
    ax[0].set(
        ylabel="steps to target", title="bigger batches: fewer steps, until B_crit"
    )
    ax[1].set(ylabel="examples to target", title="... and wasted examples beyond it")
    metrics = {
        "batches": batches,
        "tuned_lr": tuned,
        "steps": steps,
        "examples": examples,
        "target": target,
        "critical_batch_fit": crit_fit,
        "steps_min_fit": s_min,
        "noise_scale": scales,
        "sgd_checks": checks,
    }
    out = _common.write_outputs(args.out, args, metrics)
    _common.savefig(fig, out, "batch_size.png")
    print(f"\nwrote {out}")
    return metrics


if __name__ == "__main__":
    main()
