"""Which loop structure and upsampling make genvi's convolutional VAE step fastest
on XLA:CPU?

One training step of a VAE with ``genvi.DCGANEncoder`` and ``genvi.DCGANGenerator``
(Bernoulli, 28x28, Adam) for each upsampling of the generator (sub-pixel,
nearest resize + convolution, transposed convolution), run three ways: jitted
alone and called once per step; ``--steps`` steps inside one jitted
``lax.scan`` (a loop body); and ``genvi.train``'s default for convolutional
steps (the steps written out without a loop). Medians of steps per second over
``--repeats`` timings, compile time apart.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import genvi
from benchmarks import _common
from genvi._src.dcgan import UPSAMPLE


def _step(upsample, width, batch, latent, seed):
    enc = genvi.DCGANEncoder((28, 28), latent, rngs=nnx.Rngs(seed), width=width)
    dec = genvi.DCGANGenerator(
        latent,
        (28, 28),
        rngs=nnx.Rngs(seed + 1),
        width=width,
        output="bernoulli",
        upsample=upsample,
    )
    tx = optax.adam(1e-3)
    graphdef, state = genvi.init_train_state((enc, dec), tx, seed)

    def loss_fn(models, key, data):
        k1, k2 = jax.random.split(key)
        x = genvi.sample_batch(k1, data, batch)
        return genvi.vae_loss(k2, x, *models, likelihood="bernoulli")

    return genvi.gradient_step(loss_fn, tx, graphdef), state


def _ways(step, steps):
    alone = jax.jit(step)

    def call_alone(state, data):
        for _ in range(steps):
            state, _ = alone(state, data)
        return state

    @jax.jit
    def scanned(state, data):
        return jax.lax.scan(
            lambda s, _: (step(s, data)[0], None), state, None, length=steps
        )[0]

    def train(state, data):
        return genvi.train(step, state, data=data, num_steps=steps, progress=False)[0]

    return {"alone": call_alone, "scan": scanned, "train": train}


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0].replace("\n", " "), "runs/conv_speed")
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--steps", type=int, default=10, help="steps per timed call")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per case")
    p.add_argument("--width", type=int, default=32, help="DCGAN base width")
    p.add_argument("--batch-size", type=int, default=64, help="batch")
    p.add_argument("--latent", type=int, default=16, help="latent size")
    p.add_argument(
        "--upsample",
        nargs="+",
        default=list(UPSAMPLE),
        choices=list(UPSAMPLE),
        help="upsampling layers to time (--quick: subpixel only)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.width = 2, 1, 4
        args.upsample = ["subpixel"]
    data = jnp.asarray(
        np.random.default_rng(args.seed).random((1000, 28, 28)), jnp.float32
    )
    metrics, rows = {}, []
    for upsample in args.upsample:
        step, state = _step(
            upsample, args.width, args.batch_size, args.latent, args.seed
        )
        entry = {}
        for way, fn in _ways(step, args.steps).items():
            t = _common.time_call(fn, state, data, repeats=args.repeats)
            entry[way] = {
                "steps_per_second": args.steps / t["median"],
                "compile_seconds": t["compile"] - t["median"],
            }
        metrics[upsample] = entry
        rows.append(
            [
                upsample,
                *(
                    f"{entry[w]['steps_per_second']:.1f}"
                    for w in ("alone", "scan", "train")
                ),
            ]
        )
        print(rows[-1], flush=True)
    _common.print_table(
        ["upsample", "jit per step", "lax.scan", "genvi.train (unrolled)"],
        rows,
        title=f"conv VAE steps per second, batch {args.batch_size}, width "
        f"{args.width}, {args.steps} steps per call, median of {args.repeats}",
    )
    out = _common.write_outputs(args.out, args, metrics)
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
