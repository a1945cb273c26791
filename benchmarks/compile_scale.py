"""How do compile time, program size, step time and memory grow with a model's size?

Against the number of leaves (equal leaves of ``--leaf-params`` parameters) and
against the number of parameters (``--param-leaves`` leaves), for the same
train step (gradient of an elementwise loss + optimiser update):

* ``optax_tree``: optax's optimiser on the pytree;
* ``dynopt_tree``: dynopt's optimiser on the same pytree;
* ``dynopt_flat``: dynopt's optimiser on :func:`dynopt.flatten` storage, the
  model reading its leaves through :meth:`dynopt.FlatParams.tree`;
* ``genvi_train``: ``--chunk`` steps of :func:`genvi.train`'s compiled chunk
  (its loop, which checks each step's metrics, and the finite check of the
  state after it) on a state (parameters, optimiser state, step count);
* ``plain_scan``: a plain ``lax.scan`` of the same step and state;
* ``dynopt_tree_const`` (not run unless named in ``--contenders``): dynopt's
  optimiser on the pytree with its hyperparameters compiled in as constants,
  a measurement only: what reading them from the state costs at compile time.

For each: compile time (``lower`` + ``compile``), the instruction count of the
optimised HLO, the median step time, and XLA's memory analysis (temporary
bytes; peak = arguments + outputs + temporaries - aliased). The train steps
donate parameters and state; the chunk and the scan do not (``genvi.train``
keeps its input). Growth exponents are least-squares slopes of log(y) on
log(size). Plus the HLO instructions per leaf of each optimiser's update
alone, dynopt against optax (slope between two leaf counts, see
:mod:`benchmarks._hlo`).

With ``--fresh-compiles`` every compilation runs in a fresh process, in
rounds (each round compiles every program once, in turn), and each train step's
compile time over optax's in the same round gives a paired ratio
(``compile_vs_optax``: median, min and max over the rounds).

Run: ``python -m benchmarks.compile_scale`` (about 10 minutes on 2 CPU cores;
``--quick`` for a smoke test; ``--hlo-per-leaf`` for the per-leaf table alone,
about a minute).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import dynopt
from benchmarks import _common
from benchmarks._hlo import hlo_instructions, per_leaf_table, print_per_leaf
from benchmarks.optimizer_speed import OPTIMIZERS  # the same (dynopt, optax) pairs
from genvi._src.chunk import _compiled_chunk

TRAIN = ("optax_tree", "dynopt_tree", "dynopt_flat")
LOOPS = ("genvi_train", "plain_scan")
CONTENDERS = TRAIN + LOOPS  # the default run
# measurement only, run when named: the hyperparameters compiled in
OPTIONAL = ("dynopt_tree_const",)
ALL = CONTENDERS + OPTIONAL


def cost(compiled) -> dict:
    """XLA's cost analysis (flops, bytes accessed) of a compiled program."""
    c = compiled.cost_analysis()
    c = c[0] if isinstance(c, list) else c
    return {"flops": float(c.get("flops", 0.0)), "bytes": float(c["bytes accessed"])}


def memory(compiled) -> dict:
    """Temporary and peak bytes from XLA's memory analysis."""
    m = compiled.memory_analysis()
    temp = int(m.temp_size_in_bytes)
    peak = (
        int(m.argument_size_in_bytes)
        + int(m.output_size_in_bytes)
        + temp
        - int(m.alias_size_in_bytes)
    )
    return {"temp_bytes": temp, "peak_bytes": peak}


def make_tree(leaves: int, size: int, seed: int = 0) -> list:
    key = jax.random.PRNGKey(seed)
    return [
        0.1 * jax.random.normal(jax.random.fold_in(key, i), (size,), jnp.float32)
        for i in range(leaves)
    ]


def tree_loss(tree):
    # elementwise work on every leaf: the cost structure of a many-leaf model
    return sum(jnp.sum(jnp.tanh(w) ** 2) for w in jax.tree_util.tree_leaves(tree))


def train_step(tx, flat: bool, constants: dict | None = None):
    """``step(params, scale, opt_state) -> (params, opt_state)``.

    With ``constants`` (a dynopt state's hyperparameters as numpy values) the
    update reads those compiled-in constants instead of the state's arrays (the
    state passes its own through unchanged): the ``dynopt_tree_const`` program.
    """

    def step(p, scale, s):
        g = jax.grad(lambda q: scale * tree_loss(q.tree() if flat else q))(p)
        if constants is None:
            u, s = tx.update(g, s, p)
        else:
            u, new = tx.update(g, s._replace(hyperparams=dict(constants)), p)
            s = new._replace(hyperparams=s.hyperparams)
        return optax.apply_updates(p, u), s

    return step


def state_step(tx):
    """The train step as ``genvi.train`` takes it: a state in, (state, metrics) out."""

    def step(state):
        p, s, k = state
        loss, g = jax.value_and_grad(tree_loss)(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s, k + 1), {"loss": loss}

    return step


def plain_scan(step, length: int):
    """A plain ``lax.scan`` of ``step``, with the chunk's call signature."""

    def run(state, data, num_active):
        return jax.lax.scan(lambda s, _: step(s), state, None, length=length)

    return jax.jit(run)


def _compile(fn, args, repeats: int = 1) -> tuple:
    """Traces and compiles ``fn`` ``repeats`` times; the median seconds."""
    times = []
    for i in range(repeats):
        if i:
            jax.clear_caches()  # trace and compile again, as the first time
        start = time.perf_counter()
        compiled = fn.lower(*args).compile()
        times.append(time.perf_counter() - start)
    return compiled, float(np.median(times)), times


def _time(call, repeats: int) -> float:
    _common.block(call())  # warm up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        _common.block(call())
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def _program(name: str, leaves: int, size: int, opt: str, chunk: int) -> tuple:
    """Contender ``name``'s jitted program, its arguments and steps per call."""
    ours, theirs = OPTIMIZERS[opt]
    tree = make_tree(leaves, size)
    tx = theirs() if name == "optax_tree" else ours()
    if name in TRAIN + OPTIONAL:
        params = dynopt.flatten(tree) if name == "dynopt_flat" else tree
        state = tx.init(params)
        constants = None
        if name == "dynopt_tree_const":
            constants = {k: np.asarray(v) for k, v in state.hyperparams.items()}
        step = train_step(tx, name == "dynopt_flat", constants)
        fn = jax.jit(step, donate_argnums=(0, 2))
        return fn, (params, jnp.float32(1.0), state), 1
    step = state_step(tx)
    state = (tree, tx.init(tree), jnp.asarray(0, jnp.int32))
    n = jnp.asarray(chunk, jnp.int32)
    if name == "genvi_train":
        # the program every chunk runs: its loop and the state check after it
        fn = _compiled_chunk.__wrapped__(step, "stop", False, chunk).loop
    else:
        fn = plain_scan(step, chunk)
    return fn, (state, None, n), chunk


def _fresh_compile_s(name: str, leaves: int, size: int, opt: str, chunk: int):
    """Seconds to trace and compile ``name`` (run in a fresh process)."""
    fn, args, _ = _program(name, leaves, size, opt, chunk)
    return _compile(fn, args)[1]


def fresh_compile_times(name, leaves, size, opt, chunk, repeats: int) -> list:
    """Compile times of ``repeats`` fresh Python processes, one compilation each.

    A process that has compiled large programs before compiles the next ones
    more slowly (its allocator's state), which favours whichever contender is
    measured first; a fresh process per compilation removes that order effect.
    """
    context = multiprocessing.get_context("spawn")
    times = []
    for _ in range(repeats):
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            args = (name, leaves, size, opt, chunk)
            times.append(pool.submit(_fresh_compile_s, *args).result())
    return times


def measure(
    name: str,
    leaves: int,
    size: int,
    opt: str,
    chunk: int,
    repeats: int,
    compile_repeats: int = 1,
    fresh: bool = False,
    compile_times: list | None = None,
):
    """Compiles and times contender ``name`` on ``leaves`` leaves of ``size``.

    With ``fresh`` the compile time is the median of ``compile_repeats`` fresh
    processes (:func:`fresh_compile_times`), or of ``compile_times`` when those
    were measured already (:func:`main` measures them in rounds); otherwise of
    ``compile_repeats`` compilations in this process.
    """
    fn, args, per_call = _program(name, leaves, size, opt, chunk)
    compiled, compile_s, compile_all = _compile(
        fn, args, 1 if fresh else compile_repeats
    )
    if fresh:
        compile_all = compile_times or fresh_compile_times(
            name, leaves, size, opt, chunk, compile_repeats
        )
        compile_s = float(np.median(compile_all))
    held = list(args)

    def call():
        out = compiled(*held)
        if name in TRAIN + OPTIONAL:  # parameters and state donated: carry on
            held[0], held[2] = out
        return out

    row = {
        "contender": name,
        "leaves": leaves,
        "params": leaves * size,
        "compile_s": compile_s,
        "compile_s_all": compile_all,
        "hlo_instructions": hlo_instructions(compiled),
        **memory(compiled),
        **cost(compiled),
    }
    row["step_s"] = _time(call, repeats) / per_call
    return row


def slope(x, y) -> float:
    """Least-squares slope of log(y) on log(x): the growth exponent."""
    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else float("nan")


def exponents(rows, x: str, keys) -> dict:
    out = {}
    for name in ALL:
        sub = [r for r in rows if r["contender"] == name]
        if sub:
            out[name] = {
                k: slope([r[x] for r in sub], [r[k] for r in sub]) for k in keys
            }
    return out


def _ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="runs/compile_scale", help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--leaves",
        default=None,
        help="leaf counts of the leaf sweep, default 10,100,500,2000 (quick: 2,4)",
        type=str,
    )
    p.add_argument(
        "--leaf-params", type=int, default=512, help="parameters per leaf (leaf sweep)"
    )
    p.add_argument(
        "--params",
        default=None,
        help="parameter counts of the parameter sweep, default 1e4,1e5,1e6,1e7 "
        "(quick: 1e3,2e3)",
    )
    p.add_argument(
        "--param-leaves",
        type=int,
        default=8,
        help="leaves of the parameter sweep",
    )
    p.add_argument(
        "--optimizer", default="adam", choices=sorted(OPTIMIZERS), help="optimiser"
    )
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma-separated, from {','.join(CONTENDERS)}",
    )
    p.add_argument(
        "--chunk", type=int, default=None, help="steps per chunk / scan (quick: 2)"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed calls, median (quick: 1)"
    )
    p.add_argument(
        "--compile-repeats",
        type=int,
        default=1,
        help="compilations per program (traced afresh), median",
    )
    p.add_argument(
        "--fresh-compiles",
        action="store_true",
        help="time each compilation in a fresh process (no order effect "
        "between contenders)",
    )
    p.add_argument(
        "--hlo-per-leaf",
        action="store_true",
        help="only the HLO instructions per leaf of every optimiser's update "
        "(at two leaf counts: --leaves, default 100,400)",
    )
    args = p.parse_args(argv)
    if args.hlo_per_leaf:
        return hlo_per_leaf(tuple(_ints(args.leaves or "100,400")))
    if args.leaves is None:
        args.leaves = "2,4" if args.quick else "10,100,500,2000"
    if args.params is None:
        args.params = "1e3,2e3" if args.quick else "1e4,1e5,1e6,1e7"
    args.chunk = args.chunk or (2 if args.quick else 10)
    args.repeats = args.repeats or (1 if args.quick else 5)
    if args.compile_repeats < 1:
        raise ValueError(
            "compile_scale: `--compile-repeats` must be >= 1, got "
            f"{args.compile_repeats}"
        )
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for c in names:
        if c not in ALL:
            raise ValueError(
                f"compile_scale: `--contenders` must name {list(ALL)}, got {c!r}"
            )
    leaf_counts, param_counts = _ints(args.leaves), _ints(args.params)
    jobs = [("leaves", c, n, args.leaf_params) for n in leaf_counts for c in names]
    jobs += [
        ("params", c, args.param_leaves, max(1, n // args.param_leaves))
        for n in param_counts
        for c in names
    ]
    rounds = _compile_rounds(jobs, args) if args.fresh_compiles else None
    bar = tqdm(total=len(jobs), desc="programs", disable=not sys.stderr.isatty())
    sweeps: dict = {"leaves": [], "params": []}
    for job in jobs:
        sweep, name, leaves, size = job
        row = measure(
            name,
            leaves,
            size,
            args.optimizer,
            args.chunk,
            args.repeats,
            args.compile_repeats,
            args.fresh_compiles,
            None if rounds is None else rounds[job],
        )
        sweeps[sweep].append(row)
        print(
            f"{sweep:6s} {name:12s} leaves={leaves:<5d} params={leaves * size:<9d} "
            f"compile={row['compile_s']:.2f}s hlo={row['hlo_instructions']} "
            f"step={row['step_s'] * 1e3:.3f}ms temp={row['temp_bytes'] / 1e6:.2f}MB",
            flush=True,
        )
        bar.update(1)
    bar.close()
    # the update alone: every optimiser (quick: the one of the sweeps)
    opts = [args.optimizer] if args.quick else list(OPTIMIZERS)
    small = (2, 4) if args.quick else (100, 400)
    per_leaf = per_leaf_table({o: OPTIMIZERS[o] for o in opts}, small)
    metrics = {
        "optimizer": args.optimizer,
        "leaf_sweep": sweeps["leaves"],
        "param_sweep": sweeps["params"],
        "exponents_vs_leaves": exponents(
            sweeps["leaves"], "leaves", ("compile_s", "hlo_instructions")
        ),
        "exponents_vs_params": exponents(
            sweeps["params"], "params", ("step_s", "temp_bytes", "peak_bytes")
        ),
        "update_instructions_per_leaf": per_leaf,
        "loop_vs_scan": _loop_vs_scan(sweeps["params"] + sweeps["leaves"]),
        "compile_vs_optax": _paired_ratios(sweeps["leaves"] + sweeps["params"])
        if rounds
        else [],
    }
    out = _common.write_outputs(args.out, args, metrics)
    _print_tables(metrics)
    _plot(metrics, out)
    print(f"\nwrote {out}")
    return metrics


def hlo_per_leaf(leaves: tuple[int, ...]) -> dict:
    """Prints and returns the per-leaf table of every optimiser pair."""
    if len(leaves) != 2 or leaves[0] >= leaves[1] or leaves[0] < 1:
        raise ValueError(
            "compile_scale: `--hlo-per-leaf` needs two increasing leaf counts "
            f">= 1 in `--leaves`, got {leaves!r}"
        )
    table = per_leaf_table(OPTIMIZERS, leaves)
    print_per_leaf(table)
    return table


def _compile_rounds(jobs, args) -> dict:
    """Fresh-process compile times of every job, in ``--compile-repeats`` rounds.

    Each round compiles every program once, in turn, so a slow spell of the
    machine touches every contender of a round alike and the same-round ratios
    (:func:`_paired_ratios`) cancel it.
    """
    times: dict = {job: [] for job in jobs}
    total = len(jobs) * args.compile_repeats
    bar = tqdm(total=total, desc="compiles", disable=not sys.stderr.isatty())
    for _ in range(args.compile_repeats):
        for job in jobs:
            _, name, leaves, size = job
            times[job] += fresh_compile_times(
                name, leaves, size, args.optimizer, args.chunk, 1
            )
            bar.update(1)
    bar.close()
    return times


def _paired_ratios(rows) -> list:
    """Each train step's compile time over optax's, round by round."""
    out = []
    for r in rows:
        if r["contender"] in ("optax_tree", *LOOPS):
            continue
        for q in rows:
            same = (q["leaves"], q["params"]) == (r["leaves"], r["params"])
            if q["contender"] == "optax_tree" and same:
                ratios = [a / b for a, b in zip(r["compile_s_all"], q["compile_s_all"])]
                out.append(
                    {
                        "contender": r["contender"],
                        "leaves": r["leaves"],
                        "params": r["params"],
                        "rounds": len(ratios),
                        "ratio_median": float(np.median(ratios)),
                        "ratio_min": float(np.min(ratios)),
                        "ratio_max": float(np.max(ratios)),
                    }
                )
                break
    return out


def _loop_vs_scan(rows) -> list:
    """genvi.train's chunk over the plain scan at each size where both ran."""
    out = []
    for r in rows:
        if r["contender"] != "genvi_train":
            continue
        peer = [
            q
            for q in rows
            if q["contender"] == "plain_scan"
            and (q["leaves"], q["params"]) == (r["leaves"], r["params"])
        ]
        if peer:
            q = peer[0]
            out.append(
                {
                    "leaves": r["leaves"],
                    "params": r["params"],
                    **{
                        k: r[k] / q[k] if q[k] else float("nan")
                        for k in (
                            "compile_s",
                            "hlo_instructions",
                            "step_s",
                            "temp_bytes",
                            "flops",
                            "bytes",
                        )
                    },
                }
            )
    return out


def _print_tables(metrics):
    cols = ["compile_s", "hlo_instructions", "step_s", "temp_bytes", "peak_bytes"]
    for sweep in ("leaf_sweep", "param_sweep"):
        _common.print_table(
            ["contender", "leaves", "params", "compile s", "HLO instr", "step ms"]
            + ["temp MB", "peak MB"],
            [
                [r["contender"], r["leaves"], r["params"]]
                + [r[c] for c in cols[:2]]
                + [r["step_s"] * 1e3, r["temp_bytes"] / 1e6, r["peak_bytes"] / 1e6]
                for r in metrics[sweep]
            ],
            title=f"{sweep} ({metrics['optimizer']})",
        )
    for key in ("exponents_vs_leaves", "exponents_vs_params"):
        table = metrics[key]
        if table:
            keys = list(next(iter(table.values())))
            _common.print_table(
                ["contender", *keys],
                [[n, *(v[k] for k in keys)] for n, v in table.items()],
                title=f"growth exponents ({key})",
            )
    if metrics["loop_vs_scan"]:
        keys = ["compile_s", "hlo_instructions", "step_s", "temp_bytes", "bytes"]
        _common.print_table(
            ["leaves", "params", *keys],
            [
                [r["leaves"], r["params"], *(r[k] for k in keys)]
                for r in metrics["loop_vs_scan"]
            ],
            title="genvi_train / plain_scan",
        )
    if metrics["compile_vs_optax"]:
        keys = ["rounds", "ratio_median", "ratio_min", "ratio_max"]
        _common.print_table(
            ["contender", "leaves", "params", *keys],
            [
                [r["contender"], r["leaves"], r["params"], *(r[k] for k in keys)]
                for r in metrics["compile_vs_optax"]
            ],
            title="compile time over optax's, same round",
        )
    print_per_leaf(metrics["update_instructions_per_leaf"])


def _plot(metrics, out):
    plt = _common.plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [
        ("leaf_sweep", "leaves", "compile_s", "compile time (s)"),
        ("leaf_sweep", "leaves", "hlo_instructions", "optimised HLO instructions"),
        ("param_sweep", "params", "step_s", "step time (s)"),
        ("param_sweep", "params", "temp_bytes", "XLA temporary bytes"),
    ]
    for ax, (sweep, x, y, label) in zip(axes.flat, panels):
        for name in ALL:
            rows = [r for r in metrics[sweep] if r["contender"] == name]
            if rows and all(r[y] > 0 for r in rows):
                ax.loglog([r[x] for r in rows], [r[y] for r in rows], "o-", label=name)
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"compile and step cost against size ({metrics['optimizer']})")
    fig.tight_layout()
    _common.savefig(fig, out, "compile_scale.png")


if __name__ == "__main__":
    main()
