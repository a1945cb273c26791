"""Why does Nesterov beat momentum: heavy ball can cycle where Nesterov converges,
NAG-C follows the Su-Boyd-Candes ODE, and the look-ahead damps stiff directions.

Part 1 (docs/reference.md R5): the Lessard-Recht-Packard function (L = 25, mu = 1).
Part 2 (R2): NAG-C against the Bessel closed form of x'' + (3/t) x' + grad f = 0.
Part 3: heavy ball and Nesterov with the same (lr, beta) on f = (x1^2 + L x2^2)/2;
the Hessian-damping term of Nesterov's high-resolution ODE shrinks the stiff
coordinate's oscillation.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
from scipy.special import j1

import dynopt
from benchmarks import _common

R5_CYCLE = (0.6465, -1.8024, 2.1159)


def lessard(x):
    """docs/reference.md R5: piecewise quadratic, L = 25, mu = 1, minimum at 0."""
    x = x[0]
    return jnp.where(
        x < 1,
        12.5 * x**2,
        jnp.where(x < 2, 0.5 * x**2 + 24 * x - 12, 12.5 * x**2 - 24 * x + 36),
    )


def cycle_part(steps: int):
    cases = {
        "heavy ball (lr 1/9, beta 4/9)": dynopt.momentum(1 / 9, 4 / 9),
        "nesterov (lr 1/25, beta 2/3)": dynopt.nesterov(1 / 25, 2 / 3),
        "gd (lr 2/26)": dynopt.sgd(2 / 26),
    }
    rows, metrics, runs = [], {}, {}
    for name, opt in cases.items():
        traj = dynopt.discrete_trajectory(
            opt, lessard, jnp.array([3.3]), steps, progress=False
        )
        x = np.asarray(traj.params[:, 0])
        tail = np.sort(x[-3:])
        in_cycle = bool(np.allclose(tail, np.sort(R5_CYCLE), atol=5e-4))
        rows.append([name, ", ".join(f"{v:.4f}" for v in x[-3:]), abs(x[-1]), in_cycle])
        metrics[name] = {
            "last_three": x[-3:],
            "abs_final": float(abs(x[-1])),
            "in_r5_cycle": in_cycle,
        }
        runs[name] = x
    return rows, metrics, runs


def _bessel(lam, x0, t):
    z = np.sqrt(lam)[None, :] * np.asarray(t)[:, None]
    safe = np.where(z > 0, z, 1.0)
    return np.where(z > 0, 2 * j1(safe) / safe, 1.0) * x0


def bessel_part(steps_s, horizon):
    lam = np.array([0.04, 0.01])

    def loss(x):
        return 0.5 * jnp.sum(jnp.asarray(lam, x.dtype) * x**2)

    rows, errors, hs, trajs = [], [], [], {}
    for s in steps_s:
        n = int(np.floor(horizon / np.sqrt(s) + 1e-9))
        traj = dynopt.discrete_trajectory(
            dynopt.nag_c(s), loss, jnp.ones(2), n, progress=False
        )
        closed = _bessel(lam, np.ones(2), traj.times)
        err = float(np.max(np.abs(np.asarray(traj.params) - closed)))
        ode = dynopt.continuous_trajectory(
            dynopt.nag_c(s), loss, jnp.ones(2), traj.times
        )
        solver_err = float(np.max(np.abs(np.asarray(ode.params) - closed)))
        rows.append([s, np.sqrt(s), err, solver_err])
        errors.append(err)
        hs.append(np.sqrt(s))
        trajs[s] = traj
    order = dynopt.empirical_order(hs, errors)
    rows.append(["order in sqrt(s)", "", order, ""])
    metrics = {"s": list(steps_s), "max_error": errors, "order": order}
    return rows, metrics, trajs, lam


def stiff_part(big_l: float, beta: float, products, steps: int):
    def loss(x):
        return 0.5 * (x[0] ** 2 + big_l * x[1] ** 2)

    rows, metrics, runs = [], {}, {}
    for a in products:
        lr = a / big_l
        for name, opt in (
            ("heavy ball", dynopt.momentum(lr, beta)),
            ("nesterov", dynopt.nesterov(lr, beta)),
        ):
            traj = dynopt.discrete_trajectory(
                opt, loss, jnp.ones(2), steps, progress=False
            )
            x2 = np.abs(np.asarray(traj.params[:, 1]))
            rho = dynopt.spectral_radius(
                dynopt.step_matrix(
                    opt, lambda x: 0.5 * big_l * jnp.sum(x**2), jnp.ones(1)
                )
            )
            amp10 = float(np.max(x2[10:20]))
            amp_end = float(np.max(x2[-10:]))
            rows.append([a, name, rho, amp10, amp_end, float(traj.loss[-1])])
            metrics[f"lr*L={a} {name}"] = {
                "stiff_radius": rho,
                "stiff_amplitude_steps_10_20": amp10,
                "stiff_amplitude_last_10": amp_end,
                "final_loss": float(traj.loss[-1]),
            }
            runs[(a, name)] = np.asarray(traj.params[:, 1])
    return rows, metrics, runs


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0], "runs/nesterov")
    p.add_argument(
        "--cycle-steps", type=int, default=300, help="steps for R5 (default: 300)"
    )
    p.add_argument(
        "--s",
        type=float,
        nargs="+",
        default=[1.0, 0.25, 0.05],
        help="NAG-C steps s for R2 (default: 1.0 0.25 0.05)",
    )
    p.add_argument(
        "--horizon", type=float, default=300.0, help="R2 horizon t (default: 300.0)"
    )
    p.add_argument(
        "--stiffness",
        type=float,
        default=100.0,
        help="stiff curvature L (default: 100)",
    )
    p.add_argument(
        "--beta", type=float, default=0.9, help="momentum, part 3 (default: 0.9)"
    )
    p.add_argument(
        "--products",
        type=float,
        nargs="+",
        default=[0.25, 0.5, 1.0],
        help="lr * L values, part 3 (default: 0.25 0.5 1.0)",
    )
    p.add_argument(
        "--stiff-steps", type=int, default=200, help="steps, part 3 (default: 200)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.cycle_steps, args.s, args.horizon = 60, [1.0, 0.25], 30.0
        args.products, args.stiff_steps = [0.5], 40
    with _common.x64():
        rows1, m1, cycles = cycle_part(args.cycle_steps)
        rows2, m2, nag, lam = bessel_part(args.s, args.horizon)
        rows3, m3, stiff = stiff_part(
            args.stiffness, args.beta, args.products, args.stiff_steps
        )
    _common.print_table(
        ["method", "last three iterates", "|x_N|", "in R5 3-cycle"],
        rows1,
        title=f"Lessard-Recht-Packard function from x0 = 3.3, {args.cycle_steps} steps",
    )
    _common.print_table(
        ["s", "sqrt(s)", "max |x_k - X(k sqrt s)|", "diffrax vs closed form"],
        rows2,
        title=f"NAG-C vs Su-Boyd-Candes ODE, t <= {args.horizon:g} (R2)",
    )
    _common.print_table(
        ["lr*L", "method", "stiff radius", "|x2| steps 10-20", "|x2| last 10", "loss"],
        rows3,
        title=f"Stiff direction L = {args.stiffness:g}, beta = {args.beta:g}, "
        f"{args.stiff_steps} steps",
    )
    metrics = {"cycle": m1, "bessel": m2, "stiff": m3}
    out = _common.write_outputs(args.out, args, metrics)
    _plots(out, cycles, nag, lam, stiff)
    print(f"wrote {out}")
    return metrics


def _plots(out, cycles, nag, lam, stiff):
    plt = _common.plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, x in cycles.items():
        axes[0].plot(x[:60], ".-", ms=3, lw=0.7, label=name)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("x_k")
    axes[0].set_title("R5: heavy ball enters a 3-cycle")
    axes[0].legend(fontsize=7)
    for s, traj in nag.items():
        axes[1].plot(traj.times, traj.params[:, 0], ".", ms=2, label=f"NAG-C s={s:g}")
    t = np.linspace(0, float(max(tr.times[-1] for tr in nag.values())), 600)
    axes[1].plot(t, _bessel(lam, np.ones(2), t)[:, 0], "k-", lw=1, label="ODE")
    axes[1].set_xlabel("t = k sqrt(s)")
    axes[1].set_ylabel("x_1")
    axes[1].set_title("R2: NAG-C vs 2 J1(sqrt(lam) t)/(sqrt(lam) t)")
    axes[1].legend(fontsize=7)
    for (a, name), x2 in stiff.items():
        axes[2].semilogy(np.abs(x2) + 1e-300, label=f"{name}, lr*L={a:g}")
    axes[2].set_ylim(1e-12, 10)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("|x_2| (stiff coordinate)")
    axes[2].set_title("Hessian damping of the stiff direction")
    axes[2].legend(fontsize=7)
    _common.savefig(fig, out, "nesterov.png")


if __name__ == "__main__":
    main(sys.argv[1:])
