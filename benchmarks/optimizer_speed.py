"""How fast is a dynopt step against optax, and how close to the memory bound?

Contenders, timed interleaved in one run with the order rotated every round:
``optax`` (``optax.sgd(lr, momentum)`` / ``optax.adam`` on the pytree), ``dynopt``
(the drop-in transform on the same pytree) and ``dynopt_flat`` (the same
transform on :class:`dynopt.FlatParams`). Every step is jitted with donated
parameters and state. Cases: one leaf of 2^24 parameters, a ~4M-parameter tree
of 100 leaves and a 2,000-leaf tree of 1.02M parameters; plus the full train
step (gradient + update) on the 2,000-leaf tree (``--train-leaves`` picks
another leaf count; ``benchmarks.compile_scale`` measures compile times). A
triad ``a = b + s c`` over the same number of float32 elements, timed in the
same rounds, is the bandwidth reference. Bytes per parameter come from XLA's
cost analysis.

On a GPU (when one is present) it also times the flat steps at 2^28 parameters
against a device copy of the same size.

Run: ``python -m benchmarks.optimizer_speed`` (``--quick`` for a smoke test).
"""

from __future__ import annotations

import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import dynopt
from benchmarks import _common

OPTIMIZERS = {
    "sgd": (lambda: dynopt.sgd(0.01), lambda: optax.sgd(0.01)),
    "momentum": (
        lambda: dynopt.momentum(0.01, 0.9),
        lambda: optax.sgd(0.01, momentum=0.9),
    ),
    "nesterov": (
        lambda: dynopt.nesterov(0.01, 0.9),
        lambda: optax.sgd(0.01, momentum=0.9, nesterov=True),
    ),
    "adam": (lambda: dynopt.adam(1e-3), lambda: optax.adam(1e-3)),
}
CONTENDERS = ("optax", "dynopt", "dynopt_flat")
CASES = ("leaf", "tree100", "tree2000", "train")


def leaf_sizes(case: str, quick: bool, train_leaves: int = 2000) -> list[int]:
    """Leaf sizes of a case: ``leaf``, ``tree100``, ``tree2000`` or ``train``."""
    if case == "train":
        # 1.02M parameters (quick: 1,280) in ``train_leaves`` equal leaves
        total = 1280 if quick else 1_024_000
        return [max(1, total // train_leaves)] * train_leaves
    if case == "leaf":
        return [1 << (14 if quick else 24)]
    if case == "tree100":
        total, n = (1 << 16, 10) if quick else (1 << 22, 100)
        # spread sizes like a network's (a few large matrices, many small)
        w = np.exp(np.random.default_rng(0).normal(0.0, 1.0, n))
        sizes = np.maximum(1, np.floor(w / w.sum() * total)).astype(int)
        return [int(s) for s in sizes]
    if case == "tree2000":
        return [64] * 20 if quick else [512] * 2000
    raise ValueError(f"leaf_sizes: unknown case {case!r}")


def _bytes(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["bytes accessed"])


def _opt_step(tx):
    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return step


def _tree_loss(tree):
    # elementwise work on every leaf: the cost structure of a many-leaf model
    return sum(jnp.sum(jnp.tanh(w) ** 2) for w in jax.tree_util.tree_leaves(tree))


def _train_step(tx, flat):
    def step(p, scale, s):
        # ``scale`` stands for the batch: a small input, as in real training
        def loss(q):
            return scale * _tree_loss(q.tree() if flat else q)

        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return step


class Runner:
    """A compiled, donated step with its own parameters and state."""

    def __init__(self, step, params, grads, state):
        self.grads = grads
        self.p, self.s = params, state
        start = time.perf_counter()
        self.compiled = (
            jax.jit(step, donate_argnums=(0, 2)).lower(params, grads, state).compile()
        )
        self.compile_s = time.perf_counter() - start
        self.bytes = _bytes(self.compiled)

    def __call__(self, number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            self.p, self.s = self.compiled(self.p, self.grads, self.s)
        _common.block((self.p, self.s))
        return (time.perf_counter() - start) / number


class Triad:
    """``b = b + s c`` in place on float32 arrays of ``n`` elements (12 B each).

    In place (``b`` donated and overwritten) like the optimiser steps, so that
    neither pays for fresh output pages.
    """

    def __init__(self, n: int):
        self.b = jnp.ones(n, jnp.float32)
        self.c = jnp.ones(n, jnp.float32)
        fn = jax.jit(lambda b, c: b + jnp.float32(1e-6) * c, donate_argnums=0)
        self.compiled = fn.lower(self.b, self.c).compile()
        self.bytes = _bytes(self.compiled)

    def __call__(self, number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            self.b = self.compiled(self.b, self.c)
        self.b.block_until_ready()
        return (time.perf_counter() - start) / number


def make_runners(opt: str, sizes: list[int], train: bool) -> dict:
    key = jax.random.PRNGKey(0)
    tree = [
        jax.random.normal(jax.random.fold_in(key, i), (n,), jnp.float32) * 0.1
        for i, n in enumerate(sizes)
    ]
    ours, theirs = OPTIMIZERS[opt]
    runners = {}
    for name in CONTENDERS:
        tx = theirs() if name == "optax" else ours()
        # own copies: the steps donate (delete) their inputs
        params = (
            dynopt.flatten(tree)
            if name == "dynopt_flat"
            else [jnp.array(x, copy=True) for x in tree]
        )
        if train:
            make, data = _train_step(tx, name == "dynopt_flat"), jnp.float32(1.0)
        else:
            make = _opt_step(tx)
            data = jax.tree_util.tree_map(lambda x: 0.01 * jnp.cos(x), params)
        runners[name] = Runner(make, params, data, tx.init(params))
    runners["triad"] = Triad(sum(sizes))
    return runners


def calibrate(runners: dict, min_sample_s: float) -> dict:
    """Calls per timing sample so that each sample lasts about ``min_sample_s``."""
    out = {}
    for name, run in runners.items():
        run(1)  # warm up (first call after compile)
        t = run(1)
        out[name] = max(1, math.ceil(min_sample_s / max(t, 1e-7)))
    return out


def interleaved(runners: dict, rounds: int, min_sample_s: float, bar) -> dict:
    """Seconds per call, ``rounds`` samples per contender, order rotated."""
    number = calibrate(runners, min_sample_s)
    names = list(runners)
    times = {k: [] for k in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(runners[name](number[name]))
        bar.update(1)
    return {k: np.asarray(v) for k, v in times.items()}


def ratio_ci(base, other, rng, resamples: int = 2000, level: float = 0.95):
    """Median(base) / median(other) and its bootstrap interval over rounds."""
    base, other = np.asarray(base), np.asarray(other)
    point = float(np.median(base) / np.median(other))
    idx = rng.integers(0, len(base), size=(resamples, len(base)))
    boot = np.median(base[idx], axis=1) / np.median(other[idx], axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def _step_bytes(make, size: int, flat: bool, dtype=jnp.float32) -> float:
    tx = make()
    p = [jnp.ones(size // 4, dtype) for _ in range(4)]
    if flat:
        p = dynopt.flatten(p)
    return Runner(_opt_step(tx), p, p, tx.init(p)).bytes


def mixed_precision_table(n: int, names) -> dict:
    """Bytes per bf16 parameter (flat storage): bf16 state, float32 state, and
    float32 state with float32 master weights."""
    out = {}
    for opt in names:
        ours = OPTIMIZERS[opt][0]
        acc = ours if opt == "sgd" else lambda o=opt: ACCUMULATE_F32[o]()
        variants = {
            "bf16 state": ours,
            "fp32 state": acc,
            "fp32 state + master": lambda ours=ours: dynopt.master_weights(ours()),
        }
        out[opt] = {
            k: (
                _step_bytes(make, 2 * n, False, jnp.bfloat16)
                - _step_bytes(make, n, False, jnp.bfloat16)
            )
            / n
            for k, make in variants.items()
        }
    return out


ACCUMULATE_F32 = {
    "momentum": lambda: dynopt.momentum(0.01, 0.9, accumulator_dtype=jnp.float32),
    "nesterov": lambda: dynopt.nesterov(0.01, 0.9, accumulator_dtype=jnp.float32),
    "adam": lambda: dynopt.adam(1e-3, accumulator_dtype=jnp.float32),
}


def print_bytes_tables(bpp: dict, mixed: dict) -> None:
    _common.print_table(
        ["optimizer", "optax", "dynopt", "dynopt_flat", "floor"],
        [
            [o, row["optax"], row["dynopt"], row["dynopt_flat"], FLOOR[o]]
            for o, row in bpp.items()
        ],
        title="Bytes per float32 parameter of one donated step (XLA cost analysis)",
    )
    cols = ["bf16 state", "fp32 state", "fp32 state + master"]
    _common.print_table(
        ["optimizer (bf16 params)", *cols],
        [[o, *(row[c] for c in cols)] for o, row in mixed.items()],
        title="Bytes per bf16 parameter (XLA cost analysis)",
    )


def bytes_per_param_table(n: int, names) -> dict:
    """Bytes per parameter (slope between ``n`` and ``2n``) of each step."""
    out = {}
    for opt in names:
        ours, theirs = OPTIMIZERS[opt]
        row = {}
        for name in CONTENDERS:
            make = theirs if name == "optax" else ours
            flat = name == "dynopt_flat"
            row[name] = (
                _step_bytes(make, 2 * n, flat) - _step_bytes(make, n, flat)
            ) / n
        out[opt] = row
    return out


def gpu_floor(log2: int, rounds: int, rng) -> dict:
    """Flat steps at ``2^log2`` parameters against a device copy (GPU only)."""
    n = 1 << log2
    out = {}
    x = jnp.ones(n, jnp.float32)
    copy = jax.jit(lambda a, s: a * s, donate_argnums=0)
    scale = jnp.float32(1.0)
    x = copy(x, scale).block_until_ready()
    copy_times = []
    for opt in ("momentum", "nesterov", "adam"):
        tx = OPTIMIZERS[opt][0]()
        flat = dynopt.flatten([jnp.zeros(n, jnp.float32)])
        # the gradient is its own buffer: the step donates the parameters
        grads = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.01), flat)
        runner = Runner(_opt_step(tx), flat, grads, tx.init(flat))
        runner(2)
        step_times = []
        for r in range(rounds):
            pair = [("copy", None), ("step", None)]
            for name, _ in pair if r % 2 == 0 else pair[::-1]:
                if name == "copy":
                    start = time.perf_counter()
                    x = copy(x, scale).block_until_ready()
                    copy_times.append(time.perf_counter() - start)
                else:
                    step_times.append(runner(1))
        copy_bw = 8 * n / np.median(copy_times)
        step_bw = runner.bytes / np.median(step_times)
        out[opt] = {
            "bytes_per_param": runner.bytes / n,
            "step_s": float(np.median(step_times)),
            "copy_s": float(np.median(copy_times)),
            "fraction_of_copy_bandwidth": float(step_bw / copy_bw),
        }
        del runner, flat, grads
    return out


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n")[0], "results/optimizer_speed")
    p.add_argument(
        "--optimizers",
        default="momentum,adam",
        help="comma-separated optimisers to time, from sgd, momentum, nesterov, "
        "adam (default: momentum,adam)",
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="timing rounds (default: 9; quick 3)"
    )
    p.add_argument(
        "--sample-ms",
        type=float,
        default=None,
        help="minimum duration of one timing sample in ms (default: 20; quick 2)",
    )
    p.add_argument(
        "--gpu-log2",
        type=int,
        default=28,
        help="log2 of the parameter count of the GPU floor test, run only when a "
        "GPU is present (default: 28)",
    )
    p.add_argument(
        "--train-leaves",
        type=int,
        default=None,
        help="leaves of the 1.02M-parameter tree of the train-step comparison "
        "(default: 2000; quick 20)",
    )
    p.add_argument(
        "--cases",
        default="leaf,tree100,tree2000,train",
        help="comma-separated cases to time, from leaf, tree100, tree2000, train "
        "(default: all four)",
    )
    p.add_argument(
        "--bytes-only",
        action="store_true",
        help="only the cost-analysis tables, no timing (default: off)",
    )
    args = p.parse_args(argv)
    args.train_leaves = args.train_leaves or (20 if args.quick else 2000)
    if args.bytes_only:
        names = ["momentum"] if args.quick else list(OPTIMIZERS)
        n = 1 << (12 if args.quick else 16)
        bpp = bytes_per_param_table(n, names)
        mixed = mixed_precision_table(n, names)
        metrics = {"bytes_per_param": bpp, "mixed_precision_bytes_per_param": mixed}
        out = _common.write_outputs(args.out, args, metrics)
        print_bytes_tables(bpp, mixed)
        print(f"\nwrote {out}")
        return metrics
    rounds = args.rounds or (3 if args.quick else 9)
    sample_s = (args.sample_ms or (2.0 if args.quick else 20.0)) / 1000
    opts = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    for o in opts:
        if o not in OPTIMIZERS:
            raise ValueError(
                f"optimizer_speed: `--optimizers` must name {sorted(OPTIMIZERS)}, "
                f"got {o!r}"
            )
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            raise ValueError(
                f"optimizer_speed: `--cases` must name {list(CASES)}, got {c!r}"
            )
    rng = np.random.default_rng(args.seed)
    jobs = [(o, c, False) for o in opts for c in CASES[:3] if c in cases]
    if "train" in cases:
        jobs.append((opts[0], "train", True))

    results = []
    bar = tqdm(total=len(jobs) * rounds, desc="rounds", disable=not sys.stderr.isatty())
    for opt, case, train in jobs:
        sizes = leaf_sizes(case, args.quick, args.train_leaves)
        runners = make_runners(opt, sizes, train)
        times = interleaved(runners, rounds, sample_s, bar)
        n = sum(sizes)
        triad_bw = runners["triad"].bytes / np.median(times["triad"])
        row = {
            "optimizer": opt,
            "case": case,
            "step": "train" if train else "update",
            "params": n,
            "leaves": len(sizes),
            "triad_GBps": triad_bw / 1e9,
            "contenders": {},
        }
        for name in CONTENDERS:
            t = times[name]
            point, lo, hi = ratio_ci(times["optax"], t, rng)
            bw = runners[name].bytes / np.median(t)
            row["contenders"][name] = {
                "median_s": float(np.median(t)),
                "times_s": t,
                "speedup_vs_optax": point,
                "speedup_ci95": [lo, hi],
                "bytes_per_param": runners[name].bytes / n,
                "GBps": bw / 1e9,
                "fraction_of_triad": bw / triad_bw,
                "compile_s": runners[name].compile_s,
            }
        results.append(row)
        del runners
    bar.close()

    n_bytes = 1 << (12 if args.quick else 16)
    names = opts if args.quick else list(OPTIMIZERS)
    bpp = bytes_per_param_table(n_bytes, names)
    mixed = mixed_precision_table(n_bytes, names)
    gpu = None
    if jax.default_backend() == "gpu":
        gpu = gpu_floor(args.gpu_log2, rounds, rng)

    metrics = {
        "results": results,
        "bytes_per_param": bpp,
        "mixed_precision_bytes_per_param": mixed,
        "gpu_floor": gpu,
        "backend": jax.default_backend(),
    }
    out = _common.write_outputs(args.out, args, metrics)

    print_bytes_tables(bpp, mixed)
    rows = []
    for r in results:
        for name in CONTENDERS:
            c = r["contenders"][name]
            lo, hi = c["speedup_ci95"]
            rows.append(
                [
                    r["optimizer"],
                    f"{r['case']} ({r['leaves']} leaves, {r['params']:,})",
                    r["step"],
                    name,
                    c["median_s"] * 1e3,
                    f"{c['speedup_vs_optax']:.3g} [{lo:.3g}, {hi:.3g}]",
                    c["GBps"],
                    c["fraction_of_triad"],
                ]
            )
    _common.print_table(
        [
            "opt",
            "case",
            "step",
            "contender",
            "median ms",
            "x optax [95% CI]",
            "GB/s",
            "of triad",
        ],
        rows,
        title="Step time (median over rounds; speedup = optax time / contender time)",
    )
    if gpu:
        _common.print_table(
            ["optimizer", "B/param", "step ms", "copy ms", "of copy bandwidth"],
            [
                [
                    o,
                    g["bytes_per_param"],
                    g["step_s"] * 1e3,
                    g["copy_s"] * 1e3,
                    g["fraction_of_copy_bandwidth"],
                ]
                for o, g in gpu.items()
            ],
            title=f"GPU, flat step at 2^{args.gpu_log2} parameters",
        )
    else:
        print("\nGPU floor test: no GPU present, not measured.")
    _plot(results, out)
    print(f"\nwrote {out}")
    return metrics


FLOOR = {"sgd": 12, "momentum": 20, "nesterov": 20, "adam": 28}


def _plot(results, out):
    plt = _common.plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = [f"{r['optimizer']}\n{r['case']}\n{r['step']}" for r in results]
    x = np.arange(len(results))
    width = 0.38
    for k, name in enumerate(("dynopt", "dynopt_flat")):
        pts = np.array([r["contenders"][name]["speedup_vs_optax"] for r in results])
        ci = np.array([r["contenders"][name]["speedup_ci95"] for r in results])
        err = np.abs(ci.T - pts)
        axes[0].bar(x + (k - 0.5) * width, pts, width, yerr=err, label=name, capsize=3)
    axes[0].axhline(1.0, color="k", lw=0.8)
    axes[0].set_yscale("log")
    axes[0].set_xticks(x, labels, fontsize=7)
    axes[0].set_ylabel("speedup over optax (95% CI)")
    axes[0].legend()
    for k, name in enumerate(CONTENDERS):
        frac = [r["contenders"][name]["fraction_of_triad"] for r in results]
        axes[1].bar(x + (k - 1) * 0.27, frac, 0.27, label=name)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set_xticks(x, labels, fontsize=7)
    axes[1].set_ylabel("achieved GB/s / triad GB/s")
    axes[1].legend()
    fig.tight_layout()
    _common.savefig(fig, out, "optimizer_speed.png")


if __name__ == "__main__":
    main()
