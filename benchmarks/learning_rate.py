"""How to set the learning rate: where do GD, heavy ball and Nesterov become unstable,
and does training push the sharpness to the edge of stability 2/lr?

Part 1 (docs/reference.md R4): on f = x^2/2 each method runs at 0.99x and 1.01x its
largest stable lr * curvature (closed form, checked against the spectral radius
of the one-step Jacobian). Part 2: GD on a small tanh MLP (MSE regression) with
the sharpness (top Hessian eigenvalue, power iteration) recorded along the run.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np

import dynopt
from benchmarks import _common

CASES = [
    ("sgd", 0.0),
    ("momentum", 0.5),
    ("momentum", 0.9),
    ("nesterov", 0.5),
    ("nesterov", 0.9),
]


def _factory(method, beta):
    if method == "sgd":
        return lambda lr: dynopt.sgd(lr)
    if method == "momentum":
        return lambda lr: dynopt.momentum(lr, beta)
    return lambda lr: dynopt.nesterov(lr, beta)


def _quadratic(x):
    return 0.5 * jnp.sum(x**2)


def stability_part(steps: int, cases):
    rows, metrics, runs = [], {}, {}
    for method, beta in cases:
        make = _factory(method, beta)
        closed = dynopt.stability_limit(method, beta)
        numeric = dynopt.numerical_stability_limit(make)
        finals = {}
        for factor in (0.99, 1.01):
            traj = dynopt.discrete_trajectory(
                make(factor * closed),
                _quadratic,
                jnp.ones(1),
                steps,
                progress=False,
            )
            x = np.abs(np.asarray(traj.params[:, 0]))
            finals[factor] = float(x[-1])
            runs[f"{method} b={beta} x{factor}"] = x
        name = f"{method} (beta {beta})" if method != "sgd" else "sgd"
        converge = finals[0.99] < 1e-3
        diverge = finals[1.01] > 1.0
        rows.append(
            [
                name,
                f"{closed:.6f}",
                f"{numeric:.6f}",
                finals[0.99],
                finals[1.01],
                converge and diverge,
            ]
        )
        metrics[name] = {
            "limit_closed_form": closed,
            "limit_spectral_radius": numeric,
            "abs_x_final_at_0.99": finals[0.99],
            "abs_x_final_at_1.01": finals[1.01],
            "converges_below_and_diverges_above": bool(converge and diverge),
        }
    return rows, metrics, runs


def _mlp_problem(seed: int, width: int, num_points: int):
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.uniform(-1, 1, size=(num_points, 2)), jnp.float32)
    ys = jnp.sin(3 * xs[:, :1]) * jnp.cos(2 * xs[:, 1:])

    def normal(*shape):
        return jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]), jnp.float32)

    params = {
        "w1": normal(2, width),
        "b1": jnp.zeros(width),
        "w2": normal(width, width),
        "b2": jnp.zeros(width),
        "w3": normal(width, 1),
    }

    def loss(p):
        h = jnp.tanh(xs @ p["w1"] + p["b1"])
        h = jnp.tanh(h @ p["w2"] + p["b2"])
        return 0.5 * jnp.mean((h @ p["w3"] - ys) ** 2)

    return loss, params


def edge_of_stability_part(args):
    loss, params = _mlp_problem(args.seed, args.width, args.points)
    rows, metrics, curves = [], {}, {}
    for lr in args.lrs:
        traj = dynopt.discrete_trajectory(
            dynopt.sgd(lr),
            loss,
            params,
            args.steps,
            save_every=args.save_every,
            progress=True,
        )
        sharp = np.asarray(
            dynopt.sharpness_along(loss, traj, num_iters=args.power_iters)
        )
        last = sharp[len(sharp) * 3 // 4 :]
        edge = 2 / lr
        rows.append(
            [
                lr,
                edge,
                float(sharp[0]),
                float(np.max(sharp)),
                float(np.median(last)),
                float(np.median(last) / edge),
                float(traj.loss[0]),
                float(traj.loss[-1]),
            ]
        )
        metrics[f"lr={lr}"] = {
            "two_over_lr": edge,
            "sharpness_initial": float(sharp[0]),
            "sharpness_max": float(np.max(sharp)),
            "sharpness_last_quarter_median": float(np.median(last)),
            "ratio_to_two_over_lr": float(np.median(last) / edge),
            "loss_initial": float(traj.loss[0]),
            "loss_final": float(traj.loss[-1]),
        }
        curves[lr] = (
            np.arange(len(sharp)) * args.save_every,
            sharp,
            np.asarray(traj.loss),
        )
    return rows, metrics, curves


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0], "runs/learning_rate")
    p.add_argument(
        "--steps", type=int, default=3000, help="GD steps on the MLP (default: 3000)"
    )
    p.add_argument(
        "--save-every",
        type=int,
        default=50,
        help="record sharpness every this many steps (default: 50)",
    )
    p.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        default=[0.2, 0.3],
        help="GD learning rates on the MLP (default: 0.2 0.3)",
    )
    p.add_argument("--width", type=int, default=32, help="MLP width (default: 32)")
    p.add_argument(
        "--points", type=int, default=64, help="training points (default: 64)"
    )
    p.add_argument(
        "--power-iters",
        type=int,
        default=20,
        help="power iterations per recorded point, warm-started (default: 20)",
    )
    p.add_argument(
        "--stability-steps",
        type=int,
        default=2000,
        help="steps on x^2/2 at 0.99x / 1.01x the limit (default: 2000)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.save_every, args.lrs, args.width = 200, 50, [0.3], 16
        args.stability_steps = 600
    with _common.x64():
        cases = [CASES[0], CASES[2], CASES[4]] if args.quick else CASES
        rows_a, metrics_a, runs = stability_part(args.stability_steps, cases)
    _common.print_table(
        [
            "method",
            "limit lr*h",
            "spectral-radius limit",
            "|x_N| at 0.99x",
            "|x_N| at 1.01x",
            "converges / diverges",
        ],
        rows_a,
        title=f"Stability limits on x^2/2 (R4), {args.stability_steps} steps",
    )
    rows_b, metrics_b, curves = edge_of_stability_part(args)
    _common.print_table(
        [
            "lr",
            "2/lr",
            "sharpness at start",
            "max sharpness",
            "sharpness (last quarter)",
            "ratio to 2/lr",
            "loss start",
            "loss end",
        ],
        rows_b,
        title=f"GD on a {args.width}-wide tanh MLP, {args.steps} steps "
        "(edge of stability)",
    )
    metrics = {"stability_limits": metrics_a, "edge_of_stability": metrics_b}
    out = _common.write_outputs(args.out, args, metrics)
    _plots(out, runs, curves)
    print(f"wrote {out}")
    return metrics


def _plots(out, runs, curves):
    plt = _common.plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, x in runs.items():
        style = "-" if name.endswith("0.99") else "--"
        ax1.semilogy(np.maximum(x, 1e-300), style, label=name, lw=1)
    ax1.set_xlabel("step")
    ax1.set_ylabel("|x_k|")
    ax1.set_ylim(1e-12, 1e12)
    ax1.set_title("0.99x (solid) and 1.01x (dashed) the stability limit")
    ax1.legend(fontsize=6, ncol=2)
    for lr, (steps, sharp, _) in curves.items():
        (line,) = ax2.plot(steps, sharp, label=f"lr={lr}")
        ax2.axhline(2 / lr, color=line.get_color(), ls=":")
    ax2.set_xlabel("step")
    ax2.set_ylabel("sharpness (top Hessian eigenvalue)")
    ax2.set_title("GD on an MLP: sharpness rises to 2/lr (dotted)")
    ax2.legend()
    _common.savefig(fig, out, "learning_rate.png")


if __name__ == "__main__":
    main(sys.argv[1:])
