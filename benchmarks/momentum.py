"""How does momentum accelerate: heavy ball vs GD at condition number 100, its ODE,
and momentum as a rescaled learning rate.

Part 1 (docs/reference.md R3): spectral radii of one step (from the Jacobian of the
actual optimiser step) and measured rates on a diagonal quadratic with
eigenvalues in [1, 100]. Part 2 (R6): momentum against its heavy-ball ODE
(friction 1) with the zero and half-step starts: errors and orders. Part 3 (R8,
deterministic side): heavy ball (lr, beta) follows GD at the effective rate
lr / (1 - beta) on slow directions.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np

import dynopt
from benchmarks import _common


def _diag_quadratic(h):
    def loss(x):
        return 0.5 * jnp.sum(jnp.asarray(h, x.dtype) * x**2)

    return loss


def rates_part(dim: int, steps: int):
    mu, big_l = 1.0, 100.0
    kappa = big_l / mu
    h = np.geomspace(mu, big_l, dim)
    loss = _diag_quadratic(h)
    x0 = jnp.ones(dim)
    sk = np.sqrt(kappa)
    cases = {
        "gd": (dynopt.sgd(2 / (big_l + mu)), 0.9802),
        "heavy_ball": (
            dynopt.momentum(
                4 / (np.sqrt(big_l) + np.sqrt(mu)) ** 2, ((sk - 1) / (sk + 1)) ** 2
            ),
            0.8182,
        ),
    }
    rows, metrics, curves = [], {}, {}
    for name, (opt, reference) in cases.items():
        rho = dynopt.spectral_radius(dynopt.step_matrix(opt, loss, x0))
        traj = dynopt.discrete_trajectory(opt, loss, x0, steps, progress=False)
        err = np.max(np.abs(np.asarray(traj.params)), axis=1)
        half = steps // 2
        measured = float((err[-1] / err[half]) ** (1 / (steps - half)))
        below = np.nonzero(err < 1e-6)[0]
        to_target = int(below[0]) if below.size else None
        shown = to_target if to_target is not None else f"> {steps}"
        rows.append([name, reference, rho, measured, shown])
        metrics[name] = {
            "spectral_radius_reference": reference,
            "spectral_radius": rho,
            "measured_rate": measured,
            "steps_to_1e-6": to_target,
        }
        curves[name] = err
    return rows, metrics, curves


def order_part(gammas, horizon):
    def loss(x):
        return 0.5 * jnp.sum(jnp.asarray([1.0, 4.0], x.dtype) * x**2)

    results, trajs = {}, {}
    for start in ("zero", "half_step"):

        def make(gamma, start=start):
            lr, beta = dynopt.ode_to_momentum(gamma, 1.0)
            return dynopt.momentum(float(lr), float(beta), init_velocity=start)

        results[start] = dynopt.order_study(make, loss, jnp.ones(2), gammas, horizon)
        opt = make(gammas[0])
        steps = int(round(horizon / gammas[0]))
        d = dynopt.discrete_trajectory(opt, loss, jnp.ones(2), steps, progress=False)
        c = dynopt.continuous_trajectory(opt, loss, jnp.ones(2), d.times)
        trajs[start] = (d, c)
    rows = [
        [g, results["zero"].errors[i], results["half_step"].errors[i]]
        for i, g in enumerate(gammas)
    ]
    rows.append(["order", results["zero"].order, results["half_step"].order])
    metrics = {
        start: {"gammas": list(gammas), "errors": r.errors, "order": r.order}
        for start, r in results.items()
    }
    return rows, metrics, trajs


def effective_rate_part(lr: float, beta: float, steps: int):
    h = np.array([0.01, 0.03, 0.1])
    loss = _diag_quadratic(h)
    x0 = jnp.ones(3)
    runs = {
        f"heavy ball lr={lr:g}, beta={beta:g}": dynopt.momentum(lr, beta),
        f"GD lr={lr / (1 - beta):g} (= lr/(1-beta))": dynopt.sgd(lr / (1 - beta)),
        f"GD lr={lr:g}": dynopt.sgd(lr),
    }
    trajs = {
        k: dynopt.discrete_trajectory(o, loss, x0, steps, progress=False)
        for k, o in runs.items()
    }
    names = list(trajs)
    hb = np.asarray(trajs[names[0]].params)
    rows, metrics = [], {}
    for name in names:
        x = np.asarray(trajs[name].params)
        gap = float(np.max(np.abs(x - hb)))
        rows.append([name, float(trajs[name].loss[-1]), gap])
        metrics[name] = {
            "final_loss": float(trajs[name].loss[-1]),
            "max_gap_to_hb": gap,
        }
    return rows, metrics, trajs


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0], "runs/momentum")
    p.add_argument(
        "--dim", type=int, default=50, help="quadratic dimension (default: 50)"
    )
    p.add_argument(
        "--steps", type=int, default=400, help="steps for the rates (default: 400)"
    )
    p.add_argument(
        "--gammas",
        type=float,
        nargs="+",
        default=[0.1, 0.05, 0.025, 0.0125],
        help="ODE steps gamma for the order study (default: 0.1 0.05 0.025 0.0125)",
    )
    p.add_argument(
        "--horizon", type=float, default=10.0, help="ODE horizon (default: 10.0)"
    )
    p.add_argument(
        "--lr", type=float, default=0.01, help="heavy-ball lr, part 3 (default: 0.01)"
    )
    p.add_argument(
        "--beta", type=float, default=0.9, help="heavy-ball beta, part 3 (default: 0.9)"
    )
    p.add_argument(
        "--hb-steps", type=int, default=300, help="steps for part 3 (default: 300)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.dim, args.steps, args.gammas, args.horizon = 10, 100, [0.1, 0.05], 2.0
        args.hb_steps = 50
    with _common.x64():
        rows1, m1, curves = rates_part(args.dim, args.steps)
        rows2, m2, trajs = order_part(args.gammas, args.horizon)
        rows3, m3, hb_trajs = effective_rate_part(args.lr, args.beta, args.hb_steps)
    _common.print_table(
        [
            "method",
            "R3 radius",
            "radius (step Jacobian)",
            "measured rate",
            "steps to 1e-6",
        ],
        rows1,
        title=f"Condition number 100, dim {args.dim} (R3)",
    )
    _common.print_table(
        ["gamma", "max error, zero start", "max error, half-step start"],
        rows2,
        title=f"Momentum vs heavy-ball ODE (friction 1), t <= {args.horizon:g} (R6)",
    )
    _common.print_table(
        ["run", "final loss", "max |x - x_heavy_ball|"],
        rows3,
        title=f"Effective rate lr/(1-beta), {args.hb_steps} steps (R8, deterministic)",
    )
    metrics = {"rates": m1, "order": m2, "effective_rate": m3}
    out = _common.write_outputs(args.out, args, metrics)
    _plots(out, curves, trajs, hb_trajs, args)
    print(f"wrote {out}")
    return metrics


def _plots(out, curves, trajs, hb_trajs, args):
    plt = _common.plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, err in curves.items():
        axes[0].semilogy(err, label=name)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("max |x_k|")
    axes[0].set_title("condition number 100")
    axes[0].legend()
    for start, (d, _) in trajs.items():
        axes[1].plot(d.times, d.params[:, 1], ".", ms=3, label=f"momentum, {start}")
    c = trajs["half_step"][1]
    axes[1].plot(c.times, c.params[:, 1], "k-", lw=1, label="heavy-ball ODE")
    axes[1].set_xlabel("ODE time t")
    axes[1].set_ylabel("x_2 (curvature 4)")
    axes[1].set_title(f"gamma = {args.gammas[0]:g}")
    axes[1].legend()
    for name, traj in hb_trajs.items():
        axes[2].semilogy(traj.loss, label=name)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("loss")
    axes[2].set_title("momentum = GD at lr/(1-beta) on slow directions")
    axes[2].legend(fontsize=7)
    _common.savefig(fig, out, "momentum.png")


if __name__ == "__main__":
    main(sys.argv[1:])
