"""How many modes of the 2-D ring and grid do GAN, GAN + VI regulariser, ALI, AAE,
PacGAN, GAN + EMA and GAN + R1 cover, under one protocol (VEEGAN / PacGAN: 2,500
samples, high quality within 3 std, reverse KL of the mode histogram)?"""

from __future__ import annotations

import argparse
import functools
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

DATASETS = ("ring", "grid")
NUM_EVAL_SAMPLES = 2500  # the protocol's sample count
# Published numbers (docs/reference.md G3): (modes, % high quality, reverse KL or None).
PUBLISHED = {
    "ring": {
        "GAN (VEEGAN paper, 5 runs)": (1.0, 99.3, None),
        "ALI (VEEGAN paper)": (2.8, 0.13, None),
        "Unrolled GAN (VEEGAN paper)": (7.6, 35.6, None),
        "VEEGAN (VEEGAN paper)": (8.0, 52.9, None),
        "GAN (PacGAN paper, 10 trials)": (6.3, 98.2, 0.45),
        "ALI (PacGAN paper)": (6.6, 97.6, 0.36),
        "PacGAN2 (PacGAN paper)": (7.9, 95.6, 0.07),
    },
    "grid": {
        "GAN (VEEGAN paper, 5 runs)": (3.3, 0.5, None),
        "ALI (VEEGAN paper)": (15.8, 1.6, None),
        "Unrolled GAN (VEEGAN paper)": (23.6, 16.0, None),
        "VEEGAN (VEEGAN paper)": (24.6, 40.0, None),
        "GAN (PacGAN paper, 10 trials)": (17.3, 94.8, 0.70),
        "ALI (PacGAN paper)": (24.1, 95.7, 0.14),
        "PacGAN4 (PacGAN paper)": (24.8, 93.6, 0.04),
    },
}
ALL_METHODS = ("gan", "gan_vi", "ali_derived", "ali_minimax", "aae", "pacgan2",
               "pacgan4", "gan_r1")  # fmt: skip
# Not in the default run: PacGAN4 with the VI regulariser in phases of 5 updates,
# a program of (reg 0, *reg_weights) runs; the larger-network runs use it.
EXTRA_METHODS = ("pacgan4_vi",)


def mixture_data(name: str) -> dict:
    """A mixture as arrays padded to 25 modes, so one compiled step serves both."""
    mix = genvi.mixture(name)
    means = np.zeros((25, 2), np.float32)
    means[: len(mix.means)] = mix.means
    return {
        "means": jnp.asarray(means),
        "num_modes": jnp.int32(len(mix.means)),
        "std": jnp.float32(mix.std),
    }


def sample_data(key, n, data):
    """Samples of the mixture held in the training state (see mixture_data)."""
    k_mode, k_noise = jax.random.split(key)
    modes = jax.random.randint(k_mode, (n,), 0, data["num_modes"])
    return data["means"][modes] + data["std"] * jax.random.normal(k_noise, (n, 2))


def mlp(width: int, depth: int, n_in: int, n_out: int):
    sizes = (n_in,) + (width,) * depth + (n_out,)
    return lambda rngs: genvi.MLP(sizes, rngs=rngs)


def adam(lr: float, total: int):
    """Adam (b1 = 0.5) with a cosine decay to lr / 100 over ``total`` updates."""
    schedule = optax.cosine_decay_schedule(lr, max(total, 1), alpha=0.01)
    return optax.inject_hyperparams(optax.adam)(learning_rate=schedule, b1=0.5)


def build(kind: str, args, cycles: int, n_g: int = 1, n_d: int = 1, **options):
    """A trainer with the benchmark's networks; all methods share sizes and Adam."""
    w, depth, latent = args.width, args.depth, args.latent_dim
    g_opt = adam(args.lr, cycles * n_g)
    d_opt = adam(args.lr, cycles * n_d)
    common = dict(
        latent_dim=latent,
        batch_size=args.batch_size,
        g_optimizer=g_opt,
        d_optimizer=d_opt,
        n_d=n_d,
        n_g=n_g,
        ema_decay=args.ema_decay,
    )
    if kind == "gan":
        m = options.pop("pack_size", 1)
        return genvi.gan_trainer(
            mlp(w, depth, latent, 2),
            mlp(w, depth, 2 * m, 1),
            sample_data,
            pack_size=m,
            **common,
            **options,
        )
    if kind == "ali":
        return genvi.ali_trainer(
            mlp(w, depth, latent, 2),
            mlp(w, depth, 2, latent),
            mlp(w, depth, 2 + latent, 1),
            sample_data,
            **common,
            **options,
        )
    if kind == "aae":
        return genvi.aae_trainer(
            mlp(w, depth, 2, latent),
            mlp(w, depth, latent, 2),
            mlp(w, depth, latent, 1),
            sample_data,
            **common,
            **options,
        )
    raise ValueError(kind)


def specs(args) -> list[dict]:
    """The compiled programs: each trains (datasets x hyper values x seeds) runs."""
    out = []
    m = set(args.methods)
    if "gan" in m or "gan_vi" in m:
        # reg_weight 0 and the largest sweep value with n_g = 1 in one program:
        # the runs must be bit-identical (the regulariser is a no-op there).
        out.append(
            dict(name="gan", kind="gan", n_g=1, reg=[0.0, max(args.reg_weights)])
        )
    if "gan_vi" in m:
        # n_d = n_g = 5: the same numbers of discriminator and generator updates
        # as every other method (n_d = n_g = 1), in phases of 5.
        regs = [0.0] * args.reg_baseline + list(args.reg_weights)
        out.append(dict(name="gan_vi5", kind="gan", n_d=5, n_g=5, reg=regs))
    for variant in ("derived", "minimax"):
        if f"ali_{variant}" in m:
            out.append(dict(name=f"ali_{variant}", kind="ali", variant=variant))
    if "aae" in m:
        out.append(dict(name="aae", kind="aae", reconstruction_weight=1.0))
    for pack_size in (2, 4):
        if f"pacgan{pack_size}" in m:
            out.append(dict(name=f"pacgan{pack_size}", kind="gan", pack_size=pack_size))
    if "gan_r1" in m:
        out.append(dict(name="gan_r1", kind="gan", r1_weight=args.r1_weight))
    if "pacgan4_vi" in m:
        regs = [0.0] * args.reg_baseline + list(args.reg_weights)
        out.append(
            dict(name="pacgan4_vi", kind="gan", pack_size=4, n_d=5, n_g=5, reg=regs)
        )
    return out


@functools.cache
def _metrics_fn(name: str):
    mix = genvi.mixture(name)
    return jax.jit(jax.vmap(lambda x: genvi.mode_metrics(x, mix)))


def mode_metrics_batched(name: str, samples):
    return _metrics_fn(name)(samples)


def grid_programs(trainer, chunk: int, seeds):
    """The vmapped programs of a grid of runs: ``chunk`` cycles, and the protocol's
    samples (plain and EMA generator) with each seed's evaluation key."""
    run = jax.jit(jax.vmap(lambda s: genvi.run_cycles(trainer.step, s, chunk)))
    sample = jax.jit(
        jax.vmap(
            lambda s, k: (
                trainer.sample(s, k, NUM_EVAL_SAMPLES),
                trainer.sample(s, k, NUM_EVAL_SAMPLES, ema=True),
            )
        )
    )
    eval_keys = jnp.stack([jax.random.PRNGKey(10_000 + s) for s in seeds])
    return run, sample, eval_keys


def train_spec(spec: dict, args, datasets, bar) -> dict:
    """Trains one program's runs; returns final samples, metrics and curves."""
    spec = dict(spec)
    name, kind = spec.pop("name"), spec.pop("kind")
    n_g = spec.pop("n_g", 1)
    n_d = spec.get("n_d", 1)
    regs = spec.pop("reg", [0.0])
    cycles = max(args.g_steps // n_g, 1)
    evals = max(min(args.evals, cycles), 1)
    chunk = cycles // evals
    cycles = chunk * evals
    trainer = build(kind, args, cycles, n_g=n_g, **spec)
    grid = [(d, r, s) for d in datasets for r in regs for s in range(args.seeds)]
    data = jax.tree.map(lambda *x: jnp.stack(x), *[mixture_data(d) for d, _, _ in grid])
    # The same seed index gives the same initial key in every program.
    keys = jnp.stack([jax.random.PRNGKey(args.seed * 1000 + s) for _, _, s in grid])
    states = jax.jit(jax.vmap(trainer.init))(keys, data)
    if kind != "ali":
        hyper = dict(states.hyper)
        hyper["reg_weight"] = jnp.asarray([r for _, r, _ in grid], jnp.float32)
        states = states._replace(hyper=hyper)
    run, sample, eval_keys = grid_programs(trainer, chunk, [s for _, _, s in grid])

    def evaluate(samples):
        out = {k: np.zeros(len(grid)) for k in ("modes", "high_quality", "reverse_kl")}
        for d in datasets:
            idx = np.array([i for i, g in enumerate(grid) if g[0] == d])
            metrics = mode_metrics_batched(d, samples[idx])
            for k in out:
                out[k][idx] = np.asarray(metrics[k])
        return out

    curves = {"raw": [], "ema": []}
    start = time.perf_counter()
    for _ in range(evals):
        states, _ = run(states)
        raw, ema = sample(states, eval_keys)
        curves["raw"].append(evaluate(raw))
        curves["ema"].append(evaluate(ema))
        bar.update(1)
    seconds = time.perf_counter() - start
    identical = None
    if name == "gan":
        # Runs are laid out (dataset, reg, seed): compare reg index 0 with 1.
        per = args.seeds
        a, b = [], []
        for leaf in jax.tree.leaves(states.params):
            leaf = np.asarray(leaf)
            for di in range(len(datasets)):
                base = di * len(regs) * per
                a.append(leaf[base : base + per])
                b.append(leaf[base + per : base + 2 * per])
        identical = all(np.array_equal(x, y) for x, y in zip(a, b))
    return dict(
        name=name,
        grid=grid,
        regs=regs,
        n_g=n_g,
        cycles=cycles,
        chunk=chunk,
        g_steps=cycles * n_g,
        d_steps=cycles * n_d,
        curves=curves,
        samples={"raw": np.asarray(raw), "ema": np.asarray(ema)},
        seconds=seconds,
        identical_ng1=identical,
    )


def rows_from(result: dict, datasets, seeds: int) -> list[tuple[str, dict]]:
    """(label, {dataset: final metrics per seed}) for each reported method."""
    out = []
    name, regs, grid = result["name"], result["regs"], result["grid"]

    def final(which, reg):
        last = result["curves"][which][-1]
        return {
            d: {
                k: np.array(
                    [last[k][i] for i, g in enumerate(grid) if g[:2] == (d, reg)]
                )
                for k in last
            }
            for d in datasets
        }

    if name == "gan":
        out.append(("GAN", final("raw", regs[0])))
        out.append(("GAN + EMA (same runs, EMA weights)", final("ema", regs[0])))
        out.append((f"GAN + VI reg, n_g=1, lambda={regs[1]:g}", final("raw", regs[1])))
    elif name in ("gan_vi5", "pacgan4_vi"):
        base = "GAN" if name == "gan_vi5" else "PacGAN4"
        for reg in regs:
            label = f"{base} + VI reg, n_d=n_g=5, lambda={reg:g}"
            out.append((label, final("raw", reg)))
            if name == "pacgan4_vi":
                out.append((f"{label} + EMA", final("ema", reg)))
    else:
        label = {
            "ali_derived": "ALI (derived loss)",
            "ali_minimax": "ALI (BiGAN minimax)",
            "aae": "AAE (decoded prior samples)",
            "pacgan2": "PacGAN2",
            "pacgan4": "PacGAN4",
            "gan_r1": "GAN + R1",
        }[name]
        out.append((label, final("raw", regs[0])))
    return out


def mean_se(x) -> str:
    x = np.asarray(x, float)
    se = x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{x.mean():.3g} ± {se:.2g}"


def main(argv=None) -> dict:
    p = _common.parser(__doc__, "runs/mixture_modes")
    p.add_argument(
        "--seeds", type=int, default=10, help="seeds per method (default: 10)"
    )
    p.add_argument(
        "--g-steps",
        type=int,
        default=5000,
        help="generator updates per run, the same for every method (default: 5000)",
    )
    p.add_argument(
        "--evals", type=int, default=10, help="evaluations over training (default: 10)"
    )
    p.add_argument("--width", type=int, default=64, help="hidden width (default: 64)")
    p.add_argument("--depth", type=int, default=2, help="hidden layers (default: 2)")
    p.add_argument("--latent-dim", type=int, default=2, help="noise dim (default: 2)")
    p.add_argument("--batch-size", type=int, default=128, help="batch (default: 128)")
    p.add_argument(
        "--lr", type=float, default=2e-3, help="Adam peak rate (default: 2e-3)"
    )
    p.add_argument(
        "--ema-decay", type=float, default=0.99, help="generator EMA (default: 0.99)"
    )
    p.add_argument(
        "--r1-weight", type=float, default=0.1, help="R1 gamma (default: 0.1)"
    )
    p.add_argument(
        "--reg-weights",
        type=float,
        nargs="+",
        default=[0.1, 1.0, 10.0, 100.0, 1000.0],
        help="VI regulariser sweep (default: 0.1 1 10 100 1000)",
    )
    p.add_argument(
        "--reg-baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train lambda = 0 in the n_d = n_g = 5 programs (default: on)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(ALL_METHODS),
        choices=ALL_METHODS + EXTRA_METHODS,
        help=f"methods to run, also {' '.join(EXTRA_METHODS)} "
        f"(default: {' '.join(ALL_METHODS)})",
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        choices=DATASETS,
        help="mixtures (default: ring grid)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.g_steps, args.evals, args.width = 2, 100, 2, 16
        args.reg_weights = [10.0]
    datasets = tuple(args.datasets)
    programs = specs(args)
    bar = tqdm(
        total=len(programs) * args.evals,
        desc="mixture_modes",
        disable=not sys.stderr.isatty(),
    )
    results = [train_spec(s, args, datasets, bar) for s in programs]
    bar.close()

    table, metrics = [], {"methods": {}, "published": PUBLISHED}
    for result in results:
        for label, final in rows_from(result, datasets, args.seeds):
            row = [label]
            entry = {}
            for d in datasets:
                f = final[d]
                row += [
                    mean_se(f["modes"]),
                    mean_se(100 * f["high_quality"]),
                    mean_se(f["reverse_kl"]),
                ]
                entry[d] = {k: v.tolist() for k, v in f.items()}
            entry["g_steps"] = result["g_steps"]
            entry["d_steps"] = result["d_steps"]
            table.append(row)
            metrics["methods"][label] = entry
    labels = list(dict.fromkeys(k for d in datasets for k in PUBLISHED[d]))
    for label in labels:
        row = [f"published: {label}"]
        for d in datasets:
            pub = PUBLISHED[d].get(label)
            if pub is None:
                row += ["-", "-", "-"]
            else:
                kl = "-" if pub[2] is None else f"{pub[2]:g}"
                row += [f"{pub[0]:g}", f"{pub[1]:g}", kl]
        table.append(row)
    headers = ["method"]
    for d in datasets:
        headers += [f"{d} modes", f"{d} % HQ", f"{d} rev KL"]
    _common.print_table(
        headers,
        table,
        title=(
            f"Mode coverage, mean ± s.e. over {args.seeds} seeds, "
            f"{args.g_steps} generator updates, MLP {args.depth}x{args.width}"
        ),
    )
    gan = next((r for r in results if r["name"] == "gan"), None)
    if gan is not None:
        print(f"n_g = 1 runs bit-identical for lambda 0 and {gan['regs'][1]:g}: "
              f"{gan['identical_ng1']}")  # fmt: skip
        metrics["ng1_bit_identical"] = gan["identical_ng1"]
    metrics["seconds"] = {r["name"]: r["seconds"] for r in results}
    out = _common.write_outputs(args.out, args, metrics)
    _plot(results, args, datasets)
    print(f"wrote {out}")
    return metrics


def _label_reg(label: str, default: float) -> float:
    """The regulariser weight a row's label names ("... lambda=1 + EMA")."""
    if "lambda=" not in label:
        return default
    return float(label.split("lambda=")[1].split()[0])


def _plot(results, args, datasets):
    plt = _common.plt()
    panels = []
    for r in results:
        for label, _ in rows_from(r, datasets, args.seeds):
            panels.append((label, r))
    cols = len(panels)
    fig, axes = plt.subplots(
        len(datasets), cols, figsize=(2.2 * cols, 2.3 * len(datasets))
    )
    axes = np.asarray(axes).reshape(len(datasets), cols)
    for j, (label, r) in enumerate(panels):
        which = "ema" if "EMA" in label else "raw"
        reg = _label_reg(label, r["regs"][0])
        for i, d in enumerate(datasets):
            idx = [k for k, g in enumerate(r["grid"]) if g == (d, reg, 0)][0]
            x = r["samples"][which][idx]
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
                ax.set_title(label, fontsize=6)
    _common.savefig(fig, args.out, "samples.png")

    keys = ("modes", "high_quality", "reverse_kl")
    fig, axes = plt.subplots(3, len(datasets), figsize=(5 * len(datasets), 10))
    axes = np.asarray(axes).reshape(3, len(datasets))
    for r in results:
        steps = (np.arange(len(r["curves"]["raw"])) + 1) * r["chunk"] * r["n_g"]
        for label, _ in rows_from(r, datasets, args.seeds):
            which = "ema" if "EMA" in label else "raw"
            reg = _label_reg(label, r["regs"][0])
            for i, d in enumerate(datasets):
                sel = [k for k, g in enumerate(r["grid"]) if g[:2] == (d, reg)]
                for row, key in enumerate(keys):
                    y = [np.mean(c[key][sel]) for c in r["curves"][which]]
                    axes[row, i].plot(steps, y, label=label, lw=1)
    for i, d in enumerate(datasets):
        axes[0, i].set_title(f"{d}: modes covered (mean over seeds)")
        axes[1, i].set_title(f"{d}: high-quality fraction")
        axes[2, i].set_title(f"{d}: reverse KL of the mode histogram")
        axes[2, i].set_xlabel("generator updates")
    axes[0, -1].legend(fontsize=5)
    _common.savefig(fig, args.out, "curves.png")


if __name__ == "__main__":
    main(sys.argv[1:])
