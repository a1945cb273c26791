"""How well does a VAE model binarised MNIST digits: test log-likelihood by IWAE
(k = 1000), samples and reconstructions, on the bundled 5,000-image subset?

The model is the one-stochastic-layer VAE of Burda et al. 2016 (784-200-200-50,
tanh, Bernoulli decoder), trained with ``genvi.vae_loss`` on the 4,000 training
images of ``genvi.load_mnist()`` (or the full set with ``--mnist-dir``),
binarised afresh at every step (each pixel is 1 with probability its grey level,
as Burda et al. do); the test images are binarised once with a fixed seed. The
test log-likelihood is ``genvi.iwae_log_likelihood`` with k importance samples.

Comparing with published full-MNIST numbers (VAE about -86.76 nats at k = 1 in
Burda et al.) needs care: 4,000 training images instead of 60,000 overfit
sooner (the test log-likelihood peaks and then falls while the training bound
keeps rising), and the 1,000 test images are drawn from MNIST's training set,
not its official test set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import genvi
from benchmarks import _common

PUBLISHED = {
    "vae_k1_full_mnist": -86.76,  # Burda et al. 2016, Table 1, VAE, k = 1
}


def _grid(images, rows):
    images = np.pad(np.asarray(images).reshape(-1, 28, 28), ((0, 0), (1, 1), (1, 1)))
    cols = len(images) // rows
    return (
        images[: rows * cols]
        .reshape(rows, cols, 30, 30)
        .transpose(0, 2, 1, 3)
        .reshape(rows * 30, cols * 30)
    )


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0].replace("\n", " "), "runs/vae_mnist")
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--steps", type=int, default=10_000, help="Adam steps")
    p.add_argument("--batch-size", type=int, default=100, help="batch size")
    p.add_argument("--hidden", type=int, default=200, help="MLP width (2 layers)")
    p.add_argument("--latent", type=int, default=50, help="latent size")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam rate")
    p.add_argument("--iwae-k", type=int, default=1000, help="importance samples")
    p.add_argument(
        "--evals", type=int, default=5, help="test-bound evaluations during training"
    )
    p.add_argument(
        "--mnist-dir", default=None, help="a folder of MNIST IDX files (full set)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.iwae_k, args.evals, args.hidden = 200, 10, 2, 32

    data = genvi.load_mnist(args.mnist_dir)
    x_train = jnp.asarray(data.train.x)
    x_test = jax.random.bernoulli(
        jax.random.key(12345), jnp.asarray(data.test.x)
    ).astype(jnp.float32)
    rngs = nnx.Rngs(args.seed)
    hidden = (args.hidden, args.hidden)
    encoder = genvi.MLPEncoder(
        (784,), hidden, args.latent, rngs=rngs, activation=jnp.tanh
    )
    decoder = genvi.MLPDecoder(
        args.latent,
        hidden,
        (784,),
        likelihood="bernoulli",
        rngs=rngs,
        activation=jnp.tanh,
    )
    optimizer = optax.adam(args.learning_rate)
    graphdef, state = genvi.init_train_state(
        (encoder, decoder), optimizer, jax.random.key(args.seed)
    )

    def loss_fn(models, key, x):
        k_batch, k_bin, k_loss = jax.random.split(key, 3)
        grey = genvi.sample_batch(k_batch, x, args.batch_size)
        batch = jax.random.bernoulli(k_bin, grey).astype(grey.dtype)
        return genvi.vae_loss(k_loss, batch, *models, likelihood="bernoulli")

    step = genvi.gradient_step(loss_fn, optimizer, graphdef)
    per_eval = max(1, args.steps // args.evals)
    curve, histories, train_s = [], [], 0.0
    key = jax.random.key(args.seed + 1)
    for e in range(args.evals):
        start = time.perf_counter()
        state, history = genvi.train(
            step, state, data=x_train, num_steps=per_eval, progress=False
        )
        jax.block_until_ready(state)
        train_s += time.perf_counter() - start
        histories.append(history["loss"])
        enc, dec = genvi.merge_model(graphdef, state)
        elbo = -float(
            genvi.vae_loss(
                jax.random.fold_in(key, e), x_test, enc, dec, likelihood="bernoulli"
            ).loss
        )
        curve.append({"step": (e + 1) * per_eval, "test_elbo": elbo})
        print(f"step {(e + 1) * per_eval}: test ELBO {elbo:.2f}", flush=True)
    encoder, decoder = genvi.merge_model(graphdef, state)
    start = time.perf_counter()
    test_ll = float(
        genvi.iwae_log_likelihood(
            jax.random.key(args.seed + 2),
            x_test,
            encoder,
            decoder,
            likelihood="bernoulli",
            num_samples=args.iwae_k,
            batch_size=100,
        )
    )
    iwae_s = time.perf_counter() - start
    test_elbo = curve[-1]["test_elbo"]
    train_bound = -float(np.mean(np.concatenate(histories)[-per_eval // 10 - 1 :]))

    samples = np.asarray(
        jax.nn.sigmoid(decoder(jax.random.normal(jax.random.key(3), (64, args.latent))))
    )
    recon = np.asarray(jax.nn.sigmoid(decoder(encoder(x_test[:32])[0])))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    plt = _common.plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, img, title in zip(
        axes,
        (_grid(x_test[:32], 4), _grid(recon, 4), _grid(samples, 8)),
        ("binarised test images", "reconstructions (mean)", "samples (mean)"),
    ):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    _common.savefig(fig, args.out, "vae_mnist.png")

    metrics = {
        "train_images": len(data.train.x),
        "test_images": len(data.test.x),
        "test_elbo": test_elbo,
        "test_iwae_log_likelihood": test_ll,
        "iwae_k": args.iwae_k,
        "train_elbo_last_10pct": train_bound,
        "curve": curve,
        "steps_per_second": args.steps and per_eval * args.evals / train_s,
        "iwae_seconds": iwae_s,
        "published": PUBLISHED,
    }
    out = _common.write_outputs(args.out, args, metrics)
    _common.print_table(
        [
            "data",
            "steps",
            "train ELBO",
            "test ELBO",
            f"test log-lik (IWAE k={args.iwae_k})",
        ],
        [
            [
                f"{len(data.train.x)} / {len(data.test.x)} images",
                per_eval * args.evals,
                train_bound,
                test_elbo,
                test_ll,
            ]
        ],
        title=(
            "VAE (784-200-200-50) on binarised MNIST, nats per image; published "
            "full-MNIST VAE, k = 1: -86.76 (Burda et al. 2016)"
        ),
    )
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
