"""How much faster is a vmapped learning-rate sweep than separate runs?

A 64-configuration sweep of momentum's learning rate on a small MLP regression
problem, three ways, interleaved with the order rotated every round:

* ``sweep``: :func:`dynopt.sweep`, one trace, one compilation, one batched
  ``lax.scan`` for all configurations;
* ``separate_reused``: one jitted run function, called once per configuration
  with the learning rate set by :func:`dynopt.set_hyperparams` (compiled once);
* ``separate_naive``: a new optimiser and a new ``jit`` per configuration (one
  compilation each, included in its time), timed on a subset.

Reported per configuration after the first (compiling) call, with the ratio to
``sweep`` and a bootstrap interval over rounds; compile times apart. A ladder
of problem sizes then times ``sweep`` against ``separate_reused`` alone: on a
CPU the batched step does the same arithmetic as the separate ones, so the
sweep's gain is the per-step overhead it shares, large on tiny problems and
small once the arithmetic dominates.
Run: ``python -m benchmarks.sweep_speed``.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import dynopt
from benchmarks import _common
from benchmarks.optimizer_speed import ratio_ci


def make_problem(key, num_points: int, dim: int, hidden: int):
    """A 2-layer tanh MLP regression problem: ``(params, loss_fn)``."""
    k = jax.random.split(key, 4)
    x = jax.random.normal(k[0], (num_points, dim))
    y = jnp.sin(x @ jax.random.normal(k[1], (dim,)))[:, None]
    params = {
        "w1": jax.random.normal(k[2], (dim, hidden)) / jnp.sqrt(dim),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k[3], (hidden, 1)) / jnp.sqrt(hidden),
        "b2": jnp.zeros(1),
    }

    def loss_fn(p):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    return params, loss_fn


def make_sweep(beta):
    """The vmapped sweep; one factory object, so repeated calls hit the cache."""

    def factory(learning_rate):
        return dynopt.momentum(learning_rate, beta)

    def run_sweep(params, loss_fn, lrs, steps, beta_unused):
        del beta_unused
        res = dynopt.sweep(factory, loss_fn, params, steps, learning_rate=lrs)
        return _common.block(res.losses)

    return run_sweep


def make_reused(params, loss_fn, lrs, steps, beta):
    """One compiled run for all configurations (the strongest separate baseline)."""
    tx = dynopt.momentum(float(lrs[0]), beta)
    state0 = tx.init(params)

    @jax.jit
    def run(state):
        def body(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        return jax.lax.scan(body, (params, state), None, length=steps)[1]

    def run_reused(params, loss_fn, lrs, steps, beta):
        out = [run(dynopt.set_hyperparams(state0, learning_rate=lr)) for lr in lrs]
        return _common.block(out)

    return run_reused


def run_naive(params, loss_fn, lrs, steps, beta):
    out = []
    for lr in lrs:
        tx = dynopt.momentum(float(lr), beta)

        def run(p, tx=tx):
            def body(carry, _):
                p, s = carry
                loss, g = jax.value_and_grad(loss_fn)(p)
                u, s = tx.update(g, s, p)
                return (optax.apply_updates(p, u), s), loss

            return jax.lax.scan(body, (p, tx.init(p)), None, length=steps)[1]

        out.append(jax.jit(run)(params))
    return _common.block(out)


def _parse_sizes(text: str, flag: str) -> list[tuple[int, int]]:
    """``"8x2,64x16"`` -> ``[(8, 2), (64, 16)]``; ``flag`` names the option."""
    sizes = []
    for item in text.split(","):
        try:
            points, hidden = (int(v) for v in item.strip().split("x"))
        except ValueError:
            raise ValueError(
                f"sweep_speed: `{flag}` must be comma-separated POINTSxHIDDEN "
                f"pairs such as 8x4, got {item!r}"
            ) from None
        if points < 1 or hidden < 1:
            raise ValueError(f"sweep_speed: `{flag}` sizes must be >= 1, got {item!r}")
        sizes.append((points, hidden))
    return sizes


def measure(contenders: dict, params, loss_fn, steps, beta, rounds, bar) -> tuple:
    """Seconds per configuration of each contender, interleaved and rotated.

    Returns ``(per_config, first_call_s)``: arrays of ``rounds`` samples, and the
    first (compiling) call of every contender except ``separate_naive``.
    """
    first = {}
    for name, (fn, subset) in contenders.items():
        if name != "separate_naive":
            start = time.perf_counter()
            fn(params, loss_fn, subset, steps, beta)  # compiles (once)
            first[name] = time.perf_counter() - start
    names = list(contenders)
    per_config = {k: [] for k in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn, subset = contenders[name]
            start = time.perf_counter()
            fn(params, loss_fn, subset, steps, beta)
            per_config[name].append((time.perf_counter() - start) / len(subset))
        bar.update(1)
    return {k: np.asarray(v) for k, v in per_config.items()}, first


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n")[0], "results/sweep_speed")
    p.add_argument(
        "--configs",
        type=int,
        default=None,
        help="learning rates (default: 64; quick 4)",
    )
    p.add_argument(
        "--naive-configs",
        type=int,
        default=None,
        help="configurations timed for separate_naive (default: 8; quick 2)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="steps per run (default: 300; quick 5)"
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="timing rounds (default: 5; quick 1)"
    )
    p.add_argument("--beta", type=float, default=0.9, help="momentum (default: 0.9)")
    p.add_argument(
        "--size",
        default="64x16",
        help="data points x hidden units of the main problem (default: 64x16)",
    )
    p.add_argument(
        "--ladder",
        default=None,
        help="comma-separated POINTSxHIDDEN problem sizes on which the sweep is "
        "also timed against separate_reused (default: 8x2,16x4,64x16,256x64; "
        "quick 8x2)",
    )
    args = p.parse_args(argv)
    q = args.quick
    configs = args.configs or (4 if q else 64)
    naive_configs = min(configs, args.naive_configs or (2 if q else 8))
    steps = args.steps or (5 if q else 300)
    rounds = args.rounds or (1 if q else 5)
    main_size = _parse_sizes(args.size, "--size")
    if len(main_size) != 1:
        raise ValueError(f"sweep_speed: `--size` must be one size, got {args.size!r}")
    ((points, hidden),) = main_size
    ladder = _parse_sizes(
        args.ladder or ("8x2" if q else "8x2,16x4,64x16,256x64"), "--ladder"
    )
    lrs = np.geomspace(1e-3, 0.1, configs).astype(np.float32)
    rng = np.random.default_rng(args.seed)
    bar = tqdm(
        total=rounds * (1 + len(ladder)),
        desc="rounds",
        disable=not sys.stderr.isatty(),
    )

    params, loss_fn = make_problem(jax.random.PRNGKey(args.seed), points, 4, hidden)
    run_reused = make_reused(params, loss_fn, lrs, steps, args.beta)
    run_sweep = make_sweep(args.beta)
    contenders = {
        "sweep": (run_sweep, lrs),
        "separate_reused": (run_reused, lrs),
        "separate_naive": (run_naive, lrs[:naive_configs]),
    }
    per_config, compile_s = measure(
        contenders, params, loss_fn, steps, args.beta, rounds, bar
    )

    # the sweep's answer equals the separate runs' (checked on the last losses)
    sweep_losses = np.asarray(run_sweep(params, loss_fn, lrs, steps, args.beta))
    reused = np.stack(run_reused(params, loss_fn, lrs, steps, args.beta))
    max_diff = float(
        np.max(np.abs(sweep_losses[:, -1] - reused[:, -1]) / np.abs(reused[:, -1]))
    )

    rows, results = [], {}
    for name in contenders:
        t = per_config[name]
        point, lo, hi = ratio_ci(t, per_config["sweep"], rng)
        results[name] = {
            "per_config_s": float(np.median(t)),
            "samples_s": t,
            "slowdown_vs_sweep": point,
            "ci95": [lo, hi],
            "configs_timed": len(contenders[name][1]),
            "first_call_s": compile_s.get(name),
        }
        rows.append(
            [
                name,
                len(contenders[name][1]),
                float(np.median(t)) * 1e3,
                f"{point:.3g} [{lo:.3g}, {hi:.3g}]",
            ]
        )

    ladder_rows, ladder_results = [], []
    for pts, hid in ladder:
        lp, lloss = make_problem(jax.random.PRNGKey(args.seed), pts, 4, hid)
        lcont = {
            "sweep": (make_sweep(args.beta), lrs),
            "separate_reused": (make_reused(lp, lloss, lrs, steps, args.beta), lrs),
        }
        t, _ = measure(lcont, lp, lloss, steps, args.beta, rounds, bar)
        point, lo, hi = ratio_ci(t["separate_reused"], t["sweep"], rng)
        n_params = sum(x.size for x in jax.tree_util.tree_leaves(lp))
        ladder_results.append(
            {
                "points": pts,
                "hidden": hid,
                "params": int(n_params),
                "sweep_per_config_s": float(np.median(t["sweep"])),
                "reused_per_config_s": float(np.median(t["separate_reused"])),
                "speedup": point,
                "ci95": [lo, hi],
            }
        )
        ladder_rows.append(
            [
                f"{pts}x{hid}",
                int(n_params),
                float(np.median(t["separate_reused"])) * 1e3,
                float(np.median(t["sweep"])) * 1e3,
                f"{point:.3g} [{lo:.3g}, {hi:.3g}]",
            ]
        )
    bar.close()

    best = int(np.nanargmin(sweep_losses[:, -1]))
    metrics = {
        "configs": configs,
        "steps": steps,
        "size": [points, hidden],
        "results": results,
        "ladder": ladder_results,
        "final_loss": sweep_losses[:, -1],
        "learning_rates": lrs,
        "best_learning_rate": float(lrs[best]),
        "max_rel_diff_final_loss_sweep_vs_separate": max_diff,
    }
    out = _common.write_outputs(args.out, args, metrics)
    _common.print_table(
        ["contender", "configs timed", "ms per config", "x sweep [95% CI]"],
        rows,
        title=f"{configs} learning rates, {steps} momentum steps each, "
        f"{points} points x {hidden} hidden units "
        "(after compilation, except separate_naive; median over rounds)",
    )
    print(
        "\nfirst call (compilation + one run): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in compile_s.items())
    )
    print(f"sweep vs separate final losses: max relative diff = {max_diff:.3g}")
    _common.print_table(
        [
            "points x hidden",
            "params",
            "separate_reused ms/config",
            "sweep ms/config",
            "speedup [95% CI]",
        ],
        ladder_rows,
        title=f"Problem size against the sweep's speedup over separate_reused "
        f"({configs} configurations)",
    )
    plt = _common.plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].semilogx(lrs, sweep_losses[:, -1], "o-", ms=3)
    axes[0].set_xlabel("learning rate")
    axes[0].set_ylabel(f"loss after {steps} steps")
    axes[0].set_yscale("log")
    names = list(results)
    axes[1].bar(names, [results[n]["per_config_s"] * 1e3 for n in names])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("ms per configuration")
    sizes = [r["params"] for r in ladder_results]
    speed = np.array([r["speedup"] for r in ladder_results])
    ci = np.array([r["ci95"] for r in ladder_results]).reshape(-1, 2)
    axes[2].errorbar(sizes, speed, yerr=np.abs(ci.T - speed), fmt="o-", capsize=3)
    axes[2].axhline(10.0, color="k", lw=0.8, ls="--")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("parameters per configuration")
    axes[2].set_ylabel("sweep speedup over separate_reused")
    fig.tight_layout()
    _common.savefig(fig, out, "sweep_speed.png")
    print(f"\nwrote {out}")
    return metrics


if __name__ == "__main__":
    main()
