"""Why does SGD work? SGD is a noisy gradient flow: how close is it to its SDE?

Three measurements on problems with exact answers (R7, R8: docs/reference.md):

1. R7: the weak error of E[x^2] at T = 1 between SGD and its first- and
   second-order stochastic modified equations (Li, Tai, E 2017), exact (closed
   forms) and by Monte Carlo (diffrax ShARK on the SME, SGD driven by the same
   Brownian increments), with the log-log slopes (1 and 2).
2. Stationary variance on f = x^2/2: exact SGD ``lr s2 / (2 - lr)``, the SME's
   ``lr s2 / 2`` and SGD measured with dynopt.sgd; heavy ball (docs/reference.md R8).
3. Temperature lr/B: SGD started in a sharp minimum of a two-well loss escapes to
   the wide one at a rate set by lr/B alone (runs with equal lr/B overlap); GD
   stays.
"""

from __future__ import annotations

import sys

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import dynopt
from benchmarks import _common

R7_LRS = (0.1, 0.05, 0.025)


def _slope(x, y):
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(np.abs(y)), 1)[0])


def weak_errors(lrs, paths, seed):
    """R7: closed-form and Monte-Carlo weak errors of SME-1 and SME-2."""
    rows = []
    bar = tqdm(lrs, desc="weak errors", disable=not sys.stderr.isatty())
    for i, lr in enumerate(bar):
        steps = round(1.0 / lr)
        exact_sgd = float(dynopt.sgd_second_moment(lr, 1.0, 1.0, 1.0, steps))
        row = {"lr": lr, "steps": steps}
        for order in (1, 2):
            out = dynopt.stochastic_modified_equation(
                lambda x: 0.5 * jnp.sum(x**2),
                jnp.ones(1),
                lr,
                1.0,
                steps,
                # independent noise for every (lr, order): no shared luck
                key=jax.random.fold_in(jax.random.key(seed), 10 * i + order),
                num_paths=paths,
                order=order,
                save_every=steps,
                substeps=2,
                solver=diffrax.ShARK(),
                with_sgd=True,
            )
            diff = (
                np.asarray(out.sgd[:, -1, 0]) ** 2 - np.asarray(out.sme[:, -1, 0]) ** 2
            )
            exact_sme = float(
                dynopt.sme_second_moment(lr, 1.0, 1.0, 1.0, 1.0, order=order)
            )
            row[f"sme{order}_exact"] = exact_sgd - exact_sme
            row[f"sme{order}_mc"] = float(diff.mean())
            row[f"sme{order}_se"] = float(diff.std(ddof=1) / np.sqrt(paths))
        rows.append(row)
    lr_arr = np.array([r["lr"] for r in rows])
    slopes = {
        f"sme{o}_{k}": _slope(lr_arr, [r[f"sme{o}_{k}"] for r in rows])
        for o in (1, 2)
        for k in ("exact", "mc")
    }
    return rows, slopes


def stationary(lrs, paths, seed, s2=0.25):
    """Exact, SME and measured stationary variances of SGD and heavy ball."""
    rows = []
    cases = [("sgd", lr, 0.0) for lr in lrs] + [
        ("momentum", 0.01, 0.9),
        ("momentum", 0.05, 0.9),
    ]
    for name, lr, beta in tqdm(
        cases, desc="stationary", disable=not sys.stderr.isatty()
    ):
        if name == "sgd":
            opt = dynopt.sgd(lr)
            exact = dynopt.sgd_stationary_variance(lr, 1.0, s2)
            rate = -np.log(max(abs(1 - lr), 1e-3))  # per-step decay of |x|
        else:
            opt = dynopt.momentum(lr, beta)
            exact = dynopt.momentum_stationary_variance(lr, beta, 1.0, s2)
            # complex eigenvalues of the recursion here: modulus sqrt(beta)
            rate = -0.5 * np.log(beta)
        # Forget the start: e^{-30} of the slowest mode's second moment.
        steps = 2 * int(np.ceil(7.5 / rate))
        out = dynopt.noisy_paths(
            opt,
            lambda x: 0.5 * jnp.sum(x**2),
            jnp.zeros(1),
            s2,
            steps,
            key=jax.random.key(seed + len(rows)),
            num_paths=paths,
            save_every=steps,
        )
        x2 = np.asarray(out.params[:, -1, 0]) ** 2
        rows.append(
            {
                "method": name,
                "lr": lr,
                "beta": beta,
                "exact": float(exact),
                "sme": float(dynopt.sme_stationary_variance(lr, 1.0, s2, beta=beta)),
                "measured": float(x2.mean()),
                "se": float(x2.std(ddof=1) / np.sqrt(paths)),
            }
        )
    return rows


# Two Gaussian wells of equal depth: sharp at -1 (curvature 40), wide at +1.5
# (curvature 2); a flat plateau between them.
SHARP, WIDE = (-1.0, 40.0), (1.5, 2.0)


def two_wells(x):
    x = jnp.sum(x)
    return -sum(jnp.exp(-h * (x - c) ** 2 / 2) for c, h in (SHARP, WIDE))


def escape(runs, paths, horizon, seed, s2, num_saves=50):
    """Fraction of SGD paths in the wide well, starting in the sharp one."""
    curves = {}
    for lr, batch in tqdm(runs, desc="escape", disable=not sys.stderr.isatty()):
        steps = int(round(horizon / lr))
        steps -= steps % num_saves
        noise = 0.0 if batch is None else s2 / batch
        out = dynopt.noisy_paths(
            dynopt.sgd(lr),
            two_wells,
            jnp.full(1, SHARP[0]),
            noise,
            steps,
            key=jax.random.key(seed),
            num_paths=paths,
            save_every=steps // num_saves,
        )
        x = np.asarray(out.params[..., 0])
        # the barrier is the plateau: count a path as "wide" past the midpoint
        wide = (x > (SHARP[0] + WIDE[0]) / 2).mean(0)
        label = "GD" if batch is None else f"lr={lr:g}, B={batch}"
        curves[label] = {
            "lr": lr,
            "batch": batch,
            "temperature": 0.0 if batch is None else lr * s2 / (2 * batch),
            "times": np.asarray(out.times),
            "wide_fraction": wide,
        }
    # Gibbs prediction of the SME: density exp(-2 f / (lr s2 / B)).
    grid = np.linspace(-4.0, 6.0, 20001)
    f = np.asarray(jax.vmap(two_wells)(jnp.asarray(grid)[:, None]))
    for c in curves.values():
        if c["temperature"] > 0:
            w = np.exp(-(f - f.min()) / c["temperature"])
            mid = (SHARP[0] + WIDE[0]) / 2
            c["gibbs_wide"] = float(w[grid > mid].sum() / w.sum())
    return curves


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], "runs/sgd_sde")
    p.add_argument(
        "--paths",
        type=int,
        default=4000,
        help="Monte-Carlo paths for the weak errors (default: 4000)",
    )
    p.add_argument(
        "--stationary-paths",
        type=int,
        default=50_000,
        help="paths for the stationary variances (default: 50000)",
    )
    p.add_argument(
        "--escape-paths",
        type=int,
        default=2000,
        help="paths for the two-well escape runs (default: 2000)",
    )
    args = p.parse_args(argv)
    # Exact moments need float64; the caller's setting is restored afterwards.
    with _common.x64():
        return _run(args)


def _run(args) -> dict:
    lrs = R7_LRS
    stat_lrs = (0.05, 0.1, 0.5, 1.0)
    runs = [(0.01, 1), (0.02, 2), (0.04, 4), (0.02, 8), (0.02, None)]
    horizon = 60.0
    if args.quick:
        args.paths, args.stationary_paths, args.escape_paths = 200, 2000, 100
        lrs, stat_lrs = (0.1,), (0.1,)
        runs, horizon = [(0.04, 4), (0.04, None)], 2.0

    weak, slopes = weak_errors(lrs, args.paths, args.seed)
    stat = stationary(stat_lrs, args.stationary_paths, args.seed)
    s2 = 60.0
    curves = escape(runs, args.escape_paths, horizon, args.seed, s2)

    _common.print_table(
        ["lr", "SME-1 exact", "SME-1 MC (SE)", "SME-2 exact", "SME-2 MC (SE)"],
        [
            [
                r["lr"],
                r["sme1_exact"],
                f"{r['sme1_mc']:.3g} ({r['sme1_se']:.1g})",
                r["sme2_exact"],
                f"{r['sme2_mc']:.3g} ({r['sme2_se']:.1g})",
            ]
            for r in weak
        ]
        + [
            [
                "slope",
                slopes["sme1_exact"],
                f"{slopes['sme1_mc']:.3g}",
                slopes["sme2_exact"],
                f"{slopes['sme2_mc']:.3g}",
            ]
        ],
        title="R7: weak error E[x_sgd^2] - E[X_sme^2] at T = 1 (x0 = 1, s^2/B = 1)",
    )
    _common.print_table(
        ["method", "lr", "beta", "exact", "SME", "measured (SE)"],
        [
            [
                r["method"],
                r["lr"],
                r["beta"],
                f"{r['exact']:.5g}",
                f"{r['sme']:.5g}",
                f"{r['measured']:.5g} ({r['se']:.1g})",
            ]
            for r in stat
        ],
        title="Stationary variance on f = x^2/2 with s^2/B = 0.25",
    )
    _common.print_table(
        ["run", "lr/B", "in wide well at end", "Gibbs (SME)"],
        [
            [
                label,
                f"{c['lr'] / c['batch']:g}" if c["batch"] else "0",
                f"{c['wide_fraction'][-1]:.3f}",
                f"{c['gibbs_wide']:.3f}" if "gibbs_wide" in c else "-",
            ]
            for label, c in curves.items()
        ],
        title=f"Two wells (sharp h=40, wide h=2), s^2 = {s2:g}, t <= {horizon:g}",
    )

    plt = _common.plt()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    lr_arr = np.array([r["lr"] for r in weak])
    for o, color in ((1, "C0"), (2, "C1")):
        ax[0].loglog(
            lr_arr,
            np.abs([r[f"sme{o}_exact"] for r in weak]),
            "-",
            color=color,
            label=f"SME-{o} exact",
        )
        ax[0].errorbar(
            lr_arr,
            np.abs([r[f"sme{o}_mc"] for r in weak]),
            yerr=[2 * r[f"sme{o}_se"] for r in weak],
            fmt="o",
            color=color,
            label=f"SME-{o} Monte Carlo (2 SE)",
        )
    ax[0].set_xlim(lr_arr.min() / 1.5, lr_arr.max() * 1.5)
    ax[0].xaxis.set_minor_formatter(plt.NullFormatter())
    ax[0].set(xlabel="learning rate", ylabel="|weak error of E x^2| at T=1")
    ax[0].set_title("R7: SME-1 order 1, SME-2 order 2")
    ax[0].legend(fontsize=8)
    lr_fine = np.linspace(0.01, 1.2, 200)
    ax[1].plot(lr_fine, 0.25 * lr_fine / (2 - lr_fine), label="SGD exact")
    ax[1].plot(lr_fine, 0.25 * lr_fine / 2, "--", label="SME")
    sgd_rows = [r for r in stat if r["method"] == "sgd"]
    ax[1].errorbar(
        [r["lr"] for r in sgd_rows],
        [r["measured"] for r in sgd_rows],
        yerr=[2 * r["se"] for r in sgd_rows],
        fmt="o",
        label="dynopt.sgd measured",
    )
    ax[1].set(xlabel="learning rate", ylabel="stationary variance", title="f = x^2/2")
    ax[1].legend(fontsize=8)
    for label, c in curves.items():
        ax[2].plot(c["times"], c["wide_fraction"], label=label)
    ax[2].set(
        xlabel="ODE time t = k lr",
        ylabel="fraction of paths in the wide well",
        title="escape from the sharp minimum",
    )
    ax[2].legend(fontsize=8)
    out = _common.write_outputs(
        args.out,
        args,
        {"weak_errors": weak, "slopes": slopes, "stationary": stat, "escape": curves},
    )
    _common.savefig(fig, out, "sgd_sde.png")
    print(f"\nwrote {out}")
    return {"weak_errors": weak, "slopes": slopes, "stationary": stat, "escape": curves}


if __name__ == "__main__":
    main()
