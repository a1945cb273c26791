"""Which loop structure and upsampling make genvi's convolutional VAE step fastest
on XLA:CPU?

One training step of a VAE with ``genvi.DCGANEncoder`` and ``genvi.DCGANGenerator``
(Bernoulli, 28x28, Adam) for each upsampling of the generator (sub-pixel,
nearest resize + convolution, transposed convolution), run three ways: jitted
alone and called once per step; ``--steps`` steps inside one jitted
``lax.scan`` (a loop body); and ``genvi.train``'s default for convolutional
steps (the steps written out without a loop). Medians of steps per second over
``--repeats`` timings, compile time apart. Then each convolution of those networks
alone (forward and both gradients) in XLA's NHWC and NCHW layouts and, when
PyTorch is installed, in PyTorch (NCHW, oneDNN): where the time of a step goes.
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


# (layer, input side, in channels, out channels, kernel, stride), channels as
# (a, b) = a * width + b: the convolutions of the encoder (stride 2) and of the
# sub-pixel generator (4x the channels, then depth-to-space) on 1-channel images.
LAYERS = (
    ("encoder conv1", 28, (0, 1), (1, 0), 4, 2),
    ("encoder conv2", 14, (1, 0), (2, 0), 4, 2),
    ("generator up1", 7, (2, 0), (4, 0), 3, 1),
    ("generator up2", 14, (1, 0), (0, 4), 3, 1),
)


def _channels(c, width):
    return c[0] * width + c[1]


def _xla_conv(layout, x_shape, w_shape, stride):
    spec = {"NHWC": ("NHWC", "HWIO", "NHWC"), "NCHW": ("NCHW", "OIHW", "NCHW")}[layout]

    def loss(x, w):
        y = jax.lax.conv_general_dilated(
            x, w, (stride, stride), "SAME", dimension_numbers=spec
        )
        return jnp.sum(y * y)

    fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    key_x, key_w = jax.random.split(jax.random.key(0))
    args = jax.random.normal(key_x, x_shape), jax.random.normal(key_w, w_shape)
    return fn, args


def _torch_conv(n, c_in, c_out, side, k, stride):
    import torch

    x = torch.randn(n, c_in, side, side, requires_grad=True)
    w = torch.randn(c_out, c_in, k, k, requires_grad=True)
    pad = (k - 1) // 2 if stride == 1 else 1

    def fn():
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
        gx, gw = torch.autograd.grad((y * y).sum(), (x, w))
        return gx, gw

    return fn


def layout_rows(batch: int, width: int, repeats: int) -> tuple[list, dict]:
    """Milliseconds of forward + both gradients of each layer, per layout."""
    try:
        import torch  # noqa: F401

        has_torch = True
    except ImportError:  # the `test` extra brings PyTorch
        has_torch = False
    rows, metrics = [], {}
    for name, side, c_in, c_out, k, stride in LAYERS:
        ci, co = _channels(c_in, width), _channels(c_out, width)
        entry = {}
        for layout in ("NHWC", "NCHW"):
            if layout == "NHWC":
                shapes = (batch, side, side, ci), (k, k, ci, co)
            else:
                shapes = (batch, ci, side, side), (co, ci, k, k)
            fn, args = _xla_conv(layout, *shapes, stride)
            entry[layout] = (
                1e3 * _common.time_call(fn, *args, repeats=repeats)["median"]
            )
        if has_torch:
            t = _common.time_call(
                _torch_conv(batch, ci, co, side, k, stride), repeats=repeats
            )
            entry["torch"] = 1e3 * t["median"]
        metrics[name] = entry
        shape = f"{side}x{side}x{ci} -> {co}, k{k} s{stride}"
        rows.append(
            [name, shape]
            + [
                f"{entry[c]:.2f}" if c in entry else "-"
                for c in ("NHWC", "NCHW", "torch")
            ]
        )
    return rows, metrics


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
    rows, metrics["layouts"] = layout_rows(args.batch_size, args.width, args.repeats)
    _common.print_table(
        ["layer", "shape", "XLA NHWC ms", "XLA NCHW ms", "PyTorch ms"],
        rows,
        title="one convolution, forward + input and weight gradients, "
        f"batch {args.batch_size}, median of {args.repeats}",
    )
    out = _common.write_outputs(args.out, args, metrics)
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
