"""How many of the 1,000 stacked-digit modes do DCGAN, DCGAN with the VI
regulariser, PacGAN, ALI and a dynopt game scheme cover, under one protocol on a
small CPU budget?

Real data: three digits drawn independently from the 4,000 training images of
the bundled MNIST subset (``genvi.load_mnist()``), stacked as the channels of one
28x28x3 image (``genvi.stacked_digits``), drawn afresh in every step. Every
method trains the same DCGAN-style networks (``genvi.DCGANGenerator`` /
``DCGANDiscriminator``, no batch normalisation) with Adam (lr 2e-4, beta1 0.5)
for the same number of generator updates; the VI rows use ``n_g`` generator
updates per discriminator update with Su's regulariser ``lambda``, beside the
same schedule with ``lambda = 0``; the last row trains the DCGAN with a dynopt
game scheme (``--game-scheme``, optimistic gradient by default) on the RMS-scaled
field with Adam's step size. Each seed's generator is scored on
``--eval-samples`` samples: every channel is classified by ``genvi.mnist_classifier``
(a small CNN, its held-out accuracy is printed), a mode is covered with at least
one sample, and KL(class histogram || uniform over 1,000) as in Srivastava et
al. 2017 and Lin et al. 2018. Published rows (full MNIST, much longer training,
larger networks) are printed beside ours for context, not as a like-for-like
comparison.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynopt
import genvi
from benchmarks import _common

# Game schemes a row may use: those that need no options of their own.
GAME_SCHEMES = ("simultaneous", "alternating", "extragradient", "optimistic")

# (method, modes, KL or None, source); KL is given where the brief table has it.
PUBLISHED = [
    ("DCGAN", "99", None, "VEEGAN (Srivastava et al. 2017), Table 2"),
    ("ALI", "16", None, "VEEGAN, Table 2"),
    ("Unrolled GAN", "48.7", None, "VEEGAN, Table 2"),
    ("VEEGAN", "150", None, "VEEGAN, Table 2"),
    ("DCGAN", "78.9 ± 6.5", "4.50", "PacGAN (Lin et al. 2018), Table 2"),
    ("PacDCGAN2", "1000", "0.06", "PacGAN, Table 2"),
]
NUM_MODES = 1000


def methods(args) -> list[dict]:
    """The rows of the table: name and trainer options."""
    rows = [{"name": "dcgan", "kind": "gan", "n_g": 1, "reg": 0.0, "pack": 1}]
    rows.append(
        {"name": f"dcgan_ng{args.n_g}", "kind": "gan", "n_g": args.n_g, "reg": 0.0}
    )
    for lam in args.reg_weights:
        rows.append(
            {
                "name": f"dcgan_vi_ng{args.n_g}_lambda{lam:g}",
                "kind": "gan",
                "n_g": args.n_g,
                "reg": lam,
            }
        )
    for m in args.pack_sizes:
        rows.append(
            {"name": f"pacgan{m}", "kind": "gan", "n_g": 1, "reg": 0.0, "pack": m}
        )
    rows.append({"name": "ali", "kind": "ali", "n_g": 1, "reg": 0.0})
    if args.game_scheme != "none":
        rows.append({"name": args.game_scheme, "kind": "game", "n_g": 1, "reg": 0.0})
    for row in rows:
        row.setdefault("pack", 1)
    return rows


def _sampler(key, n, data):
    return genvi.stacked_digits(key, data, n)[0]


def make_trainer(method: dict, args) -> genvi.Adversarial:
    shape, w, k = (28, 28, 3), args.width, args.latent_dim
    opt = optax.adam(args.lr, b1=0.5)

    def gen(r):
        return genvi.DCGANGenerator(k, shape, rngs=r, width=w)

    common = dict(
        latent_dim=k, batch_size=args.batch_size, g_optimizer=opt, d_optimizer=opt
    )
    if method["kind"] == "ali":
        return genvi.ali_trainer(
            gen,
            lambda r: genvi.DCGANEncoder(shape, k, rngs=r, width=w, output="point"),
            lambda r: genvi.DCGANDiscriminator(shape, rngs=r, width=w, latent_dim=k),
            _sampler,
            **common,
        )
    m = method["pack"]
    if method["kind"] == "game":
        # The dynopt game scheme moves both players with the RMS-scaled field
        # (the same step size as Adam's rate, no momentum).
        return genvi.gan_trainer(
            gen,
            lambda r: genvi.DCGANDiscriminator(shape, rngs=r, width=w),
            _sampler,
            latent_dim=k,
            batch_size=args.batch_size,
            game_scheme=dynopt.game_scheme(method["name"]),
            step_size=args.lr,
            rms_decay=args.rms_decay,
        )
    return genvi.gan_trainer(
        gen,
        lambda r: genvi.DCGANDiscriminator(shape, rngs=r, width=w, pack_size=m),
        _sampler,
        n_g=method["n_g"],
        reg_weight=method["reg"],
        pack_size=m,
        **common,
    )


def run_method(method, args, data, classifier) -> dict:
    """Trains ``args.seeds`` runs of one method; coverage at each evaluation."""
    trainer = make_trainer(method, args)
    cycles = max(args.g_steps // method["n_g"], args.evals)
    per_eval = cycles // args.evals
    sample = jax.jit(trainer.sample, static_argnums=2)
    out = {"modes": [], "kl": [], "curve_modes": [], "g_steps": [], "seconds": []}
    grids = None
    for seed in range(args.seeds):
        start = time.perf_counter()
        state = trainer.init(jax.random.key(args.seed * 1000 + seed), data)
        curve, steps = [], []
        for e in range(args.evals):
            state, _ = genvi.train(
                trainer.step, state, num_steps=per_eval, progress=False
            )
            x = _draw(sample, state, args.curve_samples, seed)
            curve.append(genvi.stacked_modes(classifier, x)["modes"])
            steps.append((e + 1) * per_eval * method["n_g"])
            print(
                f"  {method['name']} seed {seed}: {steps[-1]} generator updates, "
                f"{curve[-1]} modes, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
        final = genvi.stacked_modes(
            classifier, _draw(sample, state, args.eval_samples, seed)
        )
        out["modes"].append(final["modes"])
        out["kl"].append(final["kl"])
        out["curve_modes"].append(curve)
        out["g_steps"] = steps
        out["seconds"].append(time.perf_counter() - start)
        if grids is None:
            grids = np.asarray(sample(state, jax.random.key(7), 64))
    out["grid"] = grids
    return out


def _draw(sample, state, n, seed, chunk=2000):
    keys = jax.random.split(jax.random.key(10_000 + seed), math.ceil(n / chunk))
    parts = [np.asarray(sample(state, k, chunk)) for k in keys]
    return np.concatenate(parts)[:n]


def _mean_se(values):
    v = np.asarray(values, np.float64)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(se)


def _plots(results, args) -> None:
    plt = _common.plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, r in results.items():
        curve = np.mean(r["curve_modes"], axis=0)
        ax.plot(r["g_steps"], curve, marker=".", label=name)
    ax.set_xlabel("generator updates")
    ax.set_ylabel(f"modes covered ({args.curve_samples} samples)")
    ax.set_yscale("symlog")
    ax.legend(fontsize=6)
    _common.savefig(fig, args.out, "stacked_digits_coverage.png")
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        g = np.clip(r["grid"], 0, 1).reshape(8, 8, 28, 28, 3)
        ax.imshow(g.transpose(0, 2, 1, 3, 4).reshape(224, 224, 3))
        ax.set_title(name, fontsize=7)
        ax.axis("off")
    _common.savefig(fig, args.out, "stacked_digits_samples.png")


def main(argv=None) -> dict:
    p = _common.parser(
        __doc__.split("\n\n")[0].replace("\n", " "), "runs/stacked_digits"
    )
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--g-steps", type=int, default=800, help="generator updates per run")
    p.add_argument("--seeds", type=int, default=2, help="runs per method")
    p.add_argument("--batch-size", type=int, default=64, help="batch per update")
    p.add_argument("--width", type=int, default=32, help="DCGAN base width")
    p.add_argument("--latent-dim", type=int, default=64, help="noise dimension")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    p.add_argument(
        "--n-g", type=int, default=5, help="generator updates per cycle (VI rows)"
    )
    p.add_argument(
        "--reg-weights",
        type=float,
        nargs="+",
        default=[1.0, 10.0],
        help="VI lambda sweep",
    )
    p.add_argument("--pack-sizes", type=int, nargs="+", default=[2, 4], help="PacGAN m")
    p.add_argument("--evals", type=int, default=4, help="points of the coverage curve")
    p.add_argument(
        "--curve-samples", type=int, default=5000, help="samples per curve point"
    )
    p.add_argument(
        "--eval-samples",
        type=int,
        default=26000,
        help="samples of the final count (26,000 in VEEGAN and PacGAN)",
    )
    p.add_argument("--cache-dir", default=None, help="classifier cache folder")
    p.add_argument(
        "--classifier-steps", type=int, default=1500, help="classifier Adam steps"
    )
    p.add_argument(
        "--game-scheme",
        default="optimistic",
        choices=[*GAME_SCHEMES, "none"],
        help="the dynopt game scheme of the last row (its name; 'none': no row)",
    )
    p.add_argument(
        "--rms-decay",
        type=float,
        default=0.99,
        help="RMSProp metric of the game scheme's field",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.g_steps, args.seeds, args.width, args.evals = 4, 1, 4, 2
        args.pack_sizes, args.reg_weights, args.n_g = [2], [10.0], 2
        args.curve_samples, args.eval_samples, args.batch_size = 200, 500, 8
        args.classifier_steps = 50
    classifier = genvi.mnist_classifier(args.cache_dir, steps=args.classifier_steps)
    mnist = genvi.load_mnist(flatten=False)
    data = (jnp.asarray(mnist.train.x), jnp.asarray(mnist.train.y))
    real = genvi.stacked_digits(jax.random.key(1), data, args.eval_samples)[0]
    real_modes = genvi.stacked_modes(classifier, np.asarray(real))
    results, rows = {}, []
    for method in methods(args):
        r = run_method(method, args, data, classifier)
        results[method["name"]] = r
        modes, modes_se = _mean_se(r["modes"])
        kl, kl_se = _mean_se(r["kl"])
        rows.append(
            [
                method["name"],
                f"{modes:.1f} ± {modes_se:.2g}",
                f"{kl:.2f} ± {kl_se:.2g}",
                f"{np.mean(r['seconds']):.0f}",
            ]
        )
        print(
            f"{method['name']}: modes {r['modes']}, KL {np.round(r['kl'], 2)}",
            flush=True,
        )
    _common.print_table(
        ["method", "modes (of 1000)", "KL to uniform", "s per run"],
        rows
        + [
            [
                "real stacked digits",
                str(real_modes["modes"]),
                f"{real_modes['kl']:.2f}",
                "-",
            ]
        ],
        title=(
            f"Stacked digits, {args.seeds} seeds, {args.g_steps} generator updates, "
            f"batch {args.batch_size}, width {args.width}, {args.eval_samples} "
            "samples; mean ± standard error over seeds; classifier held-out "
            f"accuracy {classifier.test_accuracy:.4f} per digit"
        ),
    )
    _common.print_table(
        ["published method", "modes", "KL", "source"],
        [[m, n, k if k is not None else "-", s] for m, n, k, s in PUBLISHED],
        title="Published (full MNIST, longer training, larger networks)",
    )
    metrics = {
        "classifier_test_accuracy": classifier.test_accuracy,
        "real": real_modes,
        "methods": {
            name: {k: v for k, v in r.items() if k != "grid"}
            for name, r in results.items()
        },
        "published": [
            {"method": m, "modes": n, "kl": k, "source": s} for m, n, k, s in PUBLISHED
        ],
    }
    out = _common.write_outputs(args.out, args, metrics)
    _plots(results, args)
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main()
