"""Do dynopt's optimisers reproduce optax's iterates, and which ODE do they follow?"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dynopt
from benchmarks import _common


def _run(opt, grad, x0, steps):
    def step(carry, _):
        x, s = carry
        u, s = opt.update(grad(x), s, x)
        x = optax.apply_updates(x, u)
        return (x, s), None

    (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
    return x


def main(argv=None) -> dict:
    p = _common.parser(__doc__, "runs/conventions")
    p.add_argument("--dim", type=int, default=10_000, help="dimension (default: 10000)")
    p.add_argument("--steps", type=int, default=1000, help="steps (default: 1000)")
    args = p.parse_args(argv)
    if args.quick:
        args.dim, args.steps = 100, 50
    key = jax.random.PRNGKey(args.seed)
    h = jax.random.uniform(key, (args.dim,), minval=0.01, maxval=1.0)
    x0 = jnp.ones(args.dim)

    def grad(x):
        return h * x

    rows, metrics = [], {}
    cases = {
        "sgd": (dynopt.sgd(0.1), optax.sgd(0.1)),
        "momentum": (dynopt.momentum(0.1, 0.9), optax.sgd(0.1, momentum=0.9)),
        "nesterov": (
            dynopt.nesterov(0.1, 0.9),
            optax.sgd(0.1, momentum=0.9, nesterov=True),
        ),
    }
    for name, (ours, theirs) in cases.items():
        a = jax.jit(lambda x, o=ours: _run(o, grad, x, args.steps))(x0)
        b = jax.jit(lambda x, o=theirs: _run(o, grad, x, args.steps))(x0)
        diff = float(jnp.max(jnp.abs(a - b)))
        ode = {k: float(v) for k, v in ours.dynamics.ode_constants().items()}
        flow = type(ours.dynamics.flow()).__name__
        rows.append(
            [
                name,
                flow,
                ours.dynamics.scheme.name,
                ours.dynamics.clock.name,
                f"{diff:.1e}",
                ", ".join(f"{k}={v:.4g}" for k, v in ode.items()),
            ]
        )
        metrics[name] = {
            "max_abs_diff_vs_optax": diff,
            "ode": ode,
            "flow": flow,
            "bitwise_equal": bool(np.array_equal(a, b)),
        }
    _common.print_table(
        [
            "optimizer",
            "flow",
            "scheme",
            "clock",
            "max |dynopt - optax|",
            "ODE constants",
        ],
        rows,
        title=f"dynopt vs optax, {args.steps} steps, dim {args.dim}, float32",
    )
    out = _common.write_outputs(args.out, args, metrics)
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main()
