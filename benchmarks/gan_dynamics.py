"""GAN training as a dynamical system: which game schemes converge near the
equilibrium of the Dirac-GAN and of the bilinear game (spectral radius of one real
step against its closed form, phase portraits), does Su's VI regulariser damp the
rotation, and what do the same schemes do on the 2-D ring and grid (mode coverage
under the protocol of benchmarks/mixture_modes.py)?"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

import dynopt
import genvi
from benchmarks import _common
from benchmarks.mixture_modes import (
    PUBLISHED,
    adam,
    grid_programs,
    mixture_data,
    mlp,
    mode_metrics_batched,
    sample_data,
)

DATASETS = ("ring", "grid")
C = 0.5  # f'(0) of the standard Dirac-GAN
METHODS = (
    "simultaneous",
    "alternating",
    "extragradient",
    "optimistic",
    "alternating_momentum",
    "consensus",
    "proximal_point",
    "su_proximal",
)
BETA, GAMMA, REG, NG = -0.3, 0.8, 2.0, 5  # options of the schemes studied


# ----------------------------------------------------------------------------
# (a) Dirac-GAN and bilinear game: closed forms.


def _rho(matrix) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(matrix, complex)))))


def _momentum(h, c, beta):
    p = np.array([1.0, -(1 + beta), beta])
    return float(np.max(np.abs(np.roots(np.polymul(p, p) + [0, h**2 * c**2, 0, 0, 0]))))


def _su_sum(h, reg, n_g):
    return sum((1 - 2 * h * reg) ** j for j in range(n_g))


# name -> (method, options, closed form rho(h, c), stability limit in h (or None))
def closed_forms(c: float) -> dict:
    """Spectral radii of one step on v = J z, J = [[0, c], [-c, 0]] (see
    tests/dynopt/test_games.py for the derivations)."""

    def su(h):
        s = _su_sum(h, REG, NG)
        return _rho([[1 - h**2 * s * c**2, h * s * c], [-h * c, 1]])

    def su_limit():
        # Bracket starts where S(h) = 1 (r = -1), below the boundary h^2 c^2 = 4.
        return scipy.optimize.brentq(
            lambda h: h**2 * _su_sum(h, REG, NG) * c**2 - 4, 1 / REG, 2 / c, xtol=1e-14
        )

    return {
        "simultaneous": ("simultaneous", {}, lambda h: math.hypot(1, h * c), None),
        "alternating": (
            "alternating",
            {},
            lambda h: _rho([[1 - h**2 * c**2, h * c], [-h * c, 1]]),
            2 / c,
        ),
        "extragradient": (
            "extragradient",
            {},
            lambda h: math.sqrt(1 - (h * c) ** 2 + (h * c) ** 4),
            1 / c,
        ),
        "optimistic": (
            "optimistic",
            {},
            lambda h: float(
                np.max(np.abs(np.roots([1, -(1 + 2j * h * c), 1j * h * c])))
            ),
            1 / (math.sqrt(3) * c),
        ),
        f"alternating_momentum(beta={BETA})": (
            "alternating_momentum",
            {"beta": BETA},
            lambda h: _momentum(h, c, BETA),
            2 * (1 + BETA) / c,  # a root of the quartic leaves at -1
        ),
        f"consensus(gamma={GAMMA})": (
            "consensus",
            {"gamma": GAMMA},
            lambda h: math.hypot(1 - h * GAMMA * c**2, h * c),
            2 * GAMMA / (1 + GAMMA**2 * c**2),
        ),
        "proximal_point": (
            "proximal_point",
            {},
            lambda h: 1 / math.hypot(1, h * c),
            None,
        ),
        f"su_proximal(reg_weight={REG:g}, n_g={NG})": (
            "su_proximal",
            {"reg_weight": REG, "n_g": NG},
            su,
            su_limit(),
        ),
    }


def spectral_table(steps, methods) -> tuple[list, list]:
    """Measured (autodiff through the step) vs closed-form radii on both games."""
    rows, records = [], []
    for game_name, game, c in (
        ("dirac_gan", dynopt.dirac_gan(), C),
        ("bilinear_game", dynopt.bilinear_game(1.0), 1.0),
    ):
        for name, (method, options, closed, limit) in closed_forms(c).items():
            if method not in methods:
                continue
            for h in steps:
                measured = dynopt.game_spectral_radius(game, method, h, **options)
                expected = closed(h)
                rows.append([game_name, name, h, measured, expected])
                records.append(
                    dict(
                        game=game_name,
                        scheme=name,
                        step_size=h,
                        measured=measured,
                        closed_form=expected,
                        limit=limit,
                    )
                )
            if limit is not None:
                below = dynopt.game_spectral_radius(
                    game, method, 0.99 * limit, **options
                )
                above = dynopt.game_spectral_radius(
                    game, method, 1.01 * limit, **options
                )
                records.append(
                    dict(
                        game=game_name,
                        scheme=name,
                        limit=limit,
                        rho_at_0_99_limit=below,
                        rho_at_1_01_limit=above,
                    )
                )
    # Simultaneous steps with R1 on the Dirac-GAN: |1 + h lambda|, limit gamma/c^2.
    r1 = 0.4
    game = dynopt.dirac_gan(r1_weight=r1)
    for h in steps:
        expected = _rho(np.eye(2) + h * np.array([[0, C], [-C, -r1]]))
        measured = dynopt.game_spectral_radius(game, "simultaneous", h)
        rows.append(["dirac_gan r1=0.4", "simultaneous", h, measured, expected])
        records.append(
            dict(
                game="dirac_gan_r1_0.4",
                scheme="simultaneous",
                step_size=h,
                measured=measured,
                closed_form=expected,
                limit=r1 / C**2,
            )
        )
    return rows, records


def su_answer(steps, regs=(0.0, 0.5, 2.0, 5.0), n_gs=(1, 5, 20)) -> dict:
    """Radii of Su's scheme on the Dirac-GAN over reg_weight and n_g, below the
    limit: 1 up to rounding means a rotation kept, not damped."""
    game = dynopt.dirac_gan()
    radii = {}
    # 2 h lambda <= 1 and h^2 S c^2 < 4 on this grid: below the limit.
    for reg in regs:
        for n_g in n_gs:
            for h in steps:
                # An array weight is traced: one compilation per n_g.
                rho = dynopt.game_spectral_radius(
                    game, "su_proximal", h, reg_weight=jnp.asarray(reg), n_g=n_g
                )
                radii[f"reg={reg:g},n_g={n_g},h={h:g}"] = rho
    deviation = max(abs(r - 1) for r in radii.values())
    return {
        "radii": radii,
        "max_abs_rho_minus_1": deviation,
        "damps": bool(deviation > 1e-9),
        "answer": (
            "No. On the Dirac-GAN (and the bilinear game) Su's regulariser acts as "
            "alternating steps with a shorter generator step h S, S = "
            "sum_{j<n_g} (1 - 2 h lambda)^j: the linearised step has determinant 1, "
            "so below its stability limit the eigenvalues stay on the unit circle "
            f"(max |rho - 1| = {deviation:.1e} over the grid): the iterates cycle; "
            "R1, consensus, extrapolation, negative momentum or implicit steps damp."
        ),
    }


# label -> (method it belongs to, scheme)
PORTRAIT_SCHEMES = {
    "simultaneous": ("simultaneous", dynopt.SimultaneousSteps()),
    "alternating": ("alternating", dynopt.AlternatingSteps()),
    "extragradient": ("extragradient", dynopt.ExtraGradient()),
    "optimistic": ("optimistic", dynopt.OptimisticGradient()),
    f"momentum beta={BETA}": (
        "alternating_momentum",
        dynopt.AlternatingMomentum(BETA),
    ),
    f"consensus gamma={GAMMA}": ("consensus", dynopt.ConsensusOptimization(GAMMA)),
    "proximal point": ("proximal_point", dynopt.ProximalPoint()),
    f"Su lambda={REG:g} n_g={NG}": ("su_proximal", dynopt.SuProximal(REG, n_g=NG)),
    "simultaneous + EMA 0.9": (
        "simultaneous",
        dynopt.GameEMA(dynopt.SimultaneousSteps(), 0.9),
    ),
}


def portraits(out, num_steps: int, methods, flow: bool = True) -> dict:
    """Phase portraits of every scheme from (1, 1) with the flow's orbit."""
    plt = _common.plt()
    final = {}
    chosen = {k: v for k, v in PORTRAIT_SCHEMES.items() if v[0] in methods}
    with _common.x64():
        for game_name, game, h in (
            ("dirac_gan", dynopt.dirac_gan(), 0.3),
            ("dirac_gan_r1", dynopt.dirac_gan(r1_weight=0.3), 0.3),
            ("bilinear_game", dynopt.bilinear_game(1.0), 0.2),
        ):
            z0 = (jnp.array(1.0), jnp.array(1.0))
            n = len(chosen)
            fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
            orbit = None
            if flow:
                orbit = dynopt.game_trajectory(
                    game, z0, np.linspace(0, num_steps * h, 400), rtol=1e-8, atol=1e-8
                ).params
            for ax, (label, (_, scheme)) in zip(axes[0], chosen.items()):
                traj = dynopt.game_run(game, scheme, z0, h, num_steps)
                x, y = np.asarray(traj.params[0]), np.asarray(traj.params[1])
                if orbit is not None:
                    ax.plot(orbit[0], orbit[1], "k--", lw=0.6)
                ax.plot(x, y, lw=0.8)
                ax.plot([0], [0], "r+")
                ax.set_xlim(-3, 3)
                ax.set_ylim(-3, 3)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(label, fontsize=6)
                final[f"{game_name}/{label}"] = float(math.hypot(x[-1], y[-1]))
            fig.suptitle(
                f"{game_name}, h = {h}, {num_steps} steps (dashed: flow)", y=1.1
            )
            _common.savefig(fig, out, f"portrait_{game_name}.png")
    return final


# ----------------------------------------------------------------------------
# (b) Real GANs on the ring and grid.


# name -> (trainer options, whether the step size is the Adam rate)
def real_schemes() -> dict:
    return {
        "phases_adam": None,  # today's trainer: Adam, alternating phases
        "simultaneous": dynopt.SimultaneousSteps(),
        "alternating": dynopt.AlternatingSteps(),
        "extragradient": dynopt.ExtraGradient(),
        "optimistic": dynopt.OptimisticGradient(),
        "alternating_momentum": dynopt.AlternatingMomentum(BETA),
        "consensus": dynopt.ConsensusOptimization(0.1),
        # lambda = 1 breaks the inner steps' limit lambda*h*|P_G H| < 2 on the grid
        "su_proximal": dynopt.SuProximal(0.25, n_g=NG),
    }


def _trainer(scheme, args, cycles, pack_size):
    m = pack_size
    options = dict(
        latent_dim=args.latent_dim,
        batch_size=args.batch_size,
        ema_decay=args.ema_decay,
        pack_size=m,
        r1_weight=args.r1_weight,
    )
    nets = (
        mlp(args.width, args.depth, args.latent_dim, 2),
        mlp(args.width, args.depth, 2 * m, 1),
        sample_data,
    )
    if scheme is None:
        return genvi.gan_trainer(
            *nets,
            g_optimizer=adam(args.lr, cycles),
            d_optimizer=adam(args.lr, cycles),
            **options,
        )
    return genvi.gan_trainer(
        *nets,
        game_scheme=scheme,
        step_size=args.step_size,
        rms_decay=args.rms_decay,
        **options,
    )


VARIANTS = ("plain", "r1", "vi")


def train_program(name, scheme, pack_size, args, datasets, bar) -> dict:
    """(dataset x variant x seed) runs of one scheme in one compiled program."""
    cycles = max(args.g_steps, args.evals)
    chunk = cycles // args.evals
    cycles = chunk * args.evals
    trainer = _trainer(scheme, args, cycles, pack_size)
    grid = [(d, v, s) for d in datasets for v in VARIANTS for s in range(args.seeds)]
    data = jax.tree.map(lambda *x: jnp.stack(x), *[mixture_data(d) for d, _, _ in grid])
    keys = jnp.stack([jax.random.PRNGKey(args.seed * 1000 + s) for _, _, s in grid])
    states = jax.jit(jax.vmap(trainer.init))(keys, data)
    hyper = dict(states.hyper)
    dtype = hyper["r1_weight"].dtype
    hyper["r1_weight"] = jnp.asarray(
        [args.r1_weight if v == "r1" else 0.0 for _, v, _ in grid], dtype
    )
    hyper["reg_weight"] = jnp.asarray(
        [args.reg_weight if v == "vi" else 0.0 for _, v, _ in grid], dtype
    )
    states = states._replace(hyper=hyper)
    run, sample, eval_keys = grid_programs(trainer, chunk, [s for _, _, s in grid])
    start = time.perf_counter()
    for e in range(args.evals):
        if scheme is not None:
            # The Adam baseline's cosine decay to 1/100, piecewise constant.
            frac = e * chunk / cycles
            lr = args.step_size * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
            hyper = dict(states.hyper)
            hyper["step_size"] = jnp.full_like(hyper["step_size"], lr)
            states = states._replace(hyper=hyper)
        states, _ = run(states)
        bar.update(1)
    raw, ema = sample(states, eval_keys)
    seconds = time.perf_counter() - start
    results = {}
    for which, samples in (("raw", raw), ("ema", ema)):
        for d in datasets:
            for v in VARIANTS:
                idx = np.array([i for i, g in enumerate(grid) if g[:2] == (d, v)])
                m = mode_metrics_batched(d, np.asarray(samples)[idx])
                key = f"{name}/pack{pack_size}/{v}/{which}"
                results.setdefault(key, {})[d] = {
                    k: np.asarray(m[k]).tolist()
                    for k in ("modes", "high_quality", "reverse_kl")
                }
    return {"results": results, "seconds": seconds, "samples": np.asarray(raw),
            "grid": grid}  # fmt: skip


def mean_se(x) -> str:
    x = np.asarray(x, float)
    se = x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{x.mean():.3g} ± {se:.2g}"


# ----------------------------------------------------------------------------


def main(argv=None) -> dict:
    p = _common.parser(__doc__, "runs/gan_dynamics")
    add = p.add_argument
    add("--seeds", type=int, default=2, help="seeds per run (default: 2; protocol 10)")
    add("--g-steps", type=int, default=2000, help="cycles per run (default: 2000)")
    add("--evals", type=int, default=5, help="chunks of training (default: 5)")
    add("--width", type=int, default=64, help="hidden width (default: 64)")
    add("--depth", type=int, default=2, help="hidden layers (default: 2)")
    add("--latent-dim", type=int, default=2, help="noise dim (default: 2)")
    add("--batch-size", type=int, default=128, help="batch (default: 128)")
    add("--lr", type=float, default=2e-3, help="Adam peak rate (default: 2e-3)")
    add(
        "--step-size",
        type=float,
        default=2e-3,
        help="game schemes' peak step, cosine decay to 1/100 (default: 2e-3)",
    )
    add(
        "--rms-decay",
        type=float,
        default=0.99,
        help="RMSProp metric of the game schemes' field (default: 0.99)",
    )
    add("--ema-decay", type=float, default=0.99, help="generator EMA (default: 0.99)")
    add("--r1-weight", type=float, default=0.1, help="R1 gamma (default: 0.1)")
    add("--reg-weight", type=float, default=1.0, help="VI lambda (default: 1.0)")
    add(
        "--pack-sizes",
        type=int,
        nargs="+",
        default=[1],
        help="PacGAN degrees, e.g. 1 4 (default: 1)",
    )
    add(
        "--schemes",
        nargs="+",
        default=list(real_schemes()),
        choices=list(real_schemes()),
        help=f"schemes of the real runs (default: {' '.join(real_schemes())})",
    )
    add(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        choices=DATASETS,
        help="mixtures (default: ring grid)",
    )
    add(
        "--dynamics-schemes",
        nargs="+",
        default=list(METHODS),
        choices=METHODS,
        help="methods of part (a), table and portraits (default: all)",
    )
    add(
        "--portrait-steps",
        type=int,
        default=300,
        help="steps in the phase portraits (default: 300)",
    )
    add(
        "--flow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw the continuous flow (diffrax) in the portraits (default: on)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.g_steps, args.evals, args.width = 1, 20, 1, 8
        args.pack_sizes, args.portrait_steps, args.flow = [1], 40, False
        args.schemes = ["extragradient"]
        args.dynamics_schemes = ["extragradient"]
    metrics: dict = {}

    # (a)
    steps = (0.25, 1.0)
    with _common.x64():
        rows, records = spectral_table(steps, args.dynamics_schemes)
        metrics["spectral_radius"] = records
        grid = dict(regs=(0.0, 2.0), n_gs=(5,)) if args.quick else {}
        metrics["su_regulariser"] = su_answer((0.05, 0.1), **grid)
    _common.print_table(
        ["game", "scheme", "h", "rho (autodiff)", "rho (closed form)"],
        rows,
        title="(a) One-step spectral radius at the equilibrium",
    )
    limits = [r for r in records if "rho_at_0_99_limit" in r]
    _common.print_table(
        ["game", "scheme", "limit h*", "rho(0.99 h*)", "rho(1.01 h*)"],
        [
            [r["game"], r["scheme"], r["limit"], r["rho_at_0_99_limit"],
             r["rho_at_1_01_limit"]]
            for r in limits
        ],
        title="Stability limits",
    )  # fmt: skip
    answer = metrics["su_regulariser"]["answer"]
    print(f"\nDoes Su's regulariser damp the rotation? {answer}")
    out = args.out
    Path(out).mkdir(parents=True, exist_ok=True)
    metrics["portrait_final_radius"] = portraits(
        out, args.portrait_steps, args.dynamics_schemes, args.flow
    )

    # (b)
    schemes = real_schemes()
    programs = [(n, m) for n in args.schemes for m in args.pack_sizes]
    bar = tqdm(
        total=len(programs) * args.evals,
        desc="gan_dynamics",
        disable=not sys.stderr.isatty(),
    )
    real, seconds, samples = {}, {}, {}
    for name, m in programs:
        r = train_program(name, schemes[name], m, args, tuple(args.datasets), bar)
        real.update(r["results"])
        seconds[f"{name}/pack{m}"] = r["seconds"]
        if not sys.stderr.isatty():  # a line per program in log files
            print(f"trained {name} pack {m}: {r['seconds']:.0f} s", flush=True)
        samples[(name, m)] = r
    bar.close()
    metrics["real"] = real
    metrics["seconds"] = seconds
    table = []
    for key, entry in real.items():
        row = [key]
        for d in args.datasets:
            f = entry[d]
            row += [mean_se(f["modes"]), mean_se(100 * np.asarray(f["high_quality"]))]
        table.append(row)
    headers = ["scheme/pack/variant/weights"]
    for d in args.datasets:
        headers += [f"{d} modes", f"{d} % HQ"]
    for j, d in enumerate(args.datasets):
        for label, pub in PUBLISHED[d].items():
            if label.startswith("PacGAN"):
                row = [f"published: {label}"] + ["-"] * (2 * len(args.datasets))
                row[1 + 2 * j : 3 + 2 * j] = [f"{pub[0]:g}", f"{pub[1]:g}"]
                table.append(row)
    _common.print_table(
        headers,
        [r + [""] * (len(headers) - len(r)) for r in table],
        title=(
            f"(b) Mode coverage, mean ± s.e. over {args.seeds} seeds, "
            f"{args.g_steps} cycles, MLP {args.depth}x{args.width}"
        ),
    )

    # (c)
    metrics["statement"] = statement(metrics, args)
    print("\n(c) " + metrics["statement"])
    _common.write_outputs(out, args, metrics)
    _plot_samples(samples, args, out)
    print(f"wrote {out}")
    return metrics


def statement(metrics, args) -> str:
    """What the linearised dynamics predicted beside what the real runs did."""
    converge = sorted(
        {r["scheme"] for r in metrics["spectral_radius"]
         if r.get("game") == "dirac_gan" and r.get("step_size") == 0.25
         and r["measured"] < 1 - 1e-9}
    )  # fmt: skip
    grid = "grid" if "grid" in args.datasets else args.datasets[0]
    means = {
        k: float(np.mean(v[grid]["modes"]))
        for k, v in metrics["real"].items()
        if k.endswith("/plain/raw")
    }
    ranked = ", ".join(
        f"{k.split('/')[0]} (pack {k.split('/')[1][4:]}) {v:.3g}"
        for k, v in sorted(means.items(), key=lambda kv: -kv[1])
    )
    return (
        "Predicted at h = 0.25 on the Dirac-GAN: converge locally: "
        + ", ".join(converge)
        + "; simultaneous steps spiral out and alternating and Su's steps cycle. "
        + f"Real runs ({grid}, plain variant, mean modes): {ranked}."
    )


def _plot_samples(programs, args, out):
    plt = _common.plt()
    keys = list(programs)
    fig, axes = plt.subplots(
        len(args.datasets),
        len(keys),
        figsize=(2.2 * len(keys), 2.3 * len(args.datasets)),
    )
    axes = np.asarray(axes).reshape(len(args.datasets), len(keys))
    for j, key in enumerate(keys):
        r = programs[key]
        for i, d in enumerate(args.datasets):
            idx = [k for k, g in enumerate(r["grid"]) if g == (d, "plain", 0)][0]
            x = r["samples"][idx]
            mix = genvi.mixture(d)
            ax = axes[i, j]
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
            ax.scatter(mix.means[:, 0], mix.means[:, 1], s=6, c="r", marker="x")
            lim = 1.5 if d == "ring" else 5.0
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{key[0]} pack {key[1]}", fontsize=6)
    _common.savefig(fig, out, "samples.png")


if __name__ == "__main__":
    main(sys.argv[1:])
