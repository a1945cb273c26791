"""How well does a small VAE model the 8x8 digits: test log-likelihood, samples, speed?

Trains a VAE (MLP encoder/decoder, Bernoulli likelihood, N(0, I) prior) on the
training split of scikit-learn's digits with ``genvi.vae_loss`` and
``genvi.train``; reports the test ELBO and the IWAE log-likelihood bound with
k importance samples (k = 1000 by default), the classifier metrics of samples
(FID on the digits classifier's features, precision, recall, coverage, class
histogram KL) beside the same metrics for real training images against the test
set, and the training speed. Writes reconstructions, samples and the loss curve
as PNG.

The Bernoulli log-likelihood of grey levels in [0, 1] (the default) is the usual
cross-entropy convention, not a normalised density; ``--binarize`` thresholds
the pixels at 0.5 first, which makes it a true log-probability in nats.
"""

from __future__ import annotations

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


def make_models(hidden: int, latent: int, seed: int):
    """An MLP encoder (x -> mean, log-variance) and decoder (z -> 64 logits)."""
    rngs = nnx.Rngs(seed)
    encoder = genvi.MLPEncoder((64,), (hidden, hidden), latent, rngs=rngs)
    decoder = genvi.MLPDecoder(
        latent, (hidden, hidden), (64,), likelihood="bernoulli", rngs=rngs
    )
    return encoder, decoder


def _data(binarize: bool):
    digits = genvi.load_digits()
    if not binarize:
        return digits
    return genvi.Digits(
        *(genvi.Split((s.x >= 0.5).astype(np.float32), s.y) for s in digits)
    )


def _grid(images, rows):
    """Images (n, 64) tiled in ``rows`` rows, 1 blank pixel around each."""
    images = np.pad(np.asarray(images).reshape(-1, 8, 8), ((0, 0), (1, 1), (1, 1)))
    cols = len(images) // rows
    return (
        images[: rows * cols]
        .reshape(rows, cols, 10, 10)
        .transpose(0, 2, 1, 3)
        .reshape(rows * 10, cols * 10)
    )


def main(argv=None) -> dict:
    p = _common.parser(__doc__.splitlines()[0], "runs/vae_digits")
    p.add_argument(
        "--steps", type=int, default=20_000, help="training steps (default: 20000)"
    )
    p.add_argument(
        "--batch-size", type=int, default=64, help="batch size (default: 64)"
    )
    p.add_argument("--hidden", type=int, default=128, help="MLP width (default: 128)")
    p.add_argument("--latent", type=int, default=8, help="latent size (default: 8)")
    p.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam rate (default: 0.001)"
    )
    p.add_argument(
        "--iwae-k",
        type=int,
        default=1000,
        help="importance samples of the test log-likelihood (default: 1000)",
    )
    p.add_argument(
        "--steps-per-call",
        type=int,
        default=1000,
        help="steps per jitted lax.scan call (default: 1000)",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        help="generated images for the classifier metrics (default: 1000)",
    )
    p.add_argument(
        "--binarize",
        action="store_true",
        help="threshold pixels at 0.5 (default: off, grey levels)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="digits classifier cache (default: $DYNVI_CACHE or ~/.cache/dynvi)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.iwae_k, args.steps_per_call = 300, 20, 100
        args.num_samples = 200

    data = _data(args.binarize)
    x_train = jnp.asarray(data.train.x)
    x_test = jnp.asarray(data.test.x)
    encoder, decoder = make_models(args.hidden, args.latent, args.seed)
    optimizer = optax.adam(args.learning_rate)
    graphdef, state = genvi.init_train_state(
        (encoder, decoder), optimizer, jax.random.key(args.seed)
    )

    def loss_fn(models, key, x):
        enc, dec = models
        k_batch, k_loss = jax.random.split(key)
        batch = genvi.sample_batch(k_batch, x, args.batch_size)
        return genvi.vae_loss(k_loss, batch, enc, dec, likelihood="bernoulli")

    step = genvi.gradient_step(loss_fn, optimizer, graphdef)
    progress = sys.stderr.isatty()

    def timed_train(start_state, num_steps, show_progress):
        start = time.perf_counter()
        trained, history = genvi.train(
            step,
            start_state,
            data=x_train,
            num_steps=num_steps,
            steps_per_call=args.steps_per_call,
            progress=show_progress,
        )
        jax.block_until_ready(trained)
        return trained, history, time.perf_counter() - start

    # One call compiles; the timed run below reuses the compiled scan.
    _, _, first_call_s = timed_train(state, args.steps_per_call, False)
    state, history, train_s = timed_train(state, args.steps, progress)
    steps_per_s = args.steps / train_s
    encoder, decoder = genvi.merge_model(graphdef, state)

    key = jax.random.key(args.seed + 1)
    k_elbo, k_iwae, k_z, k_rec = jax.random.split(key, 4)
    test_elbo = -float(
        genvi.vae_loss(k_elbo, x_test, encoder, decoder, likelihood="bernoulli").loss
    )
    start = time.perf_counter()
    test_ll = float(
        genvi.iwae_log_likelihood(
            k_iwae,
            x_test,
            encoder,
            decoder,
            likelihood="bernoulli",
            num_samples=args.iwae_k,
            batch_size=128,
        )
    )
    iwae_s = time.perf_counter() - start

    z = jax.random.normal(k_z, (args.num_samples, args.latent))
    samples = np.asarray(jax.nn.sigmoid(decoder(z)))
    mean, logvar = encoder(x_test[:32])
    recon = np.asarray(jax.nn.sigmoid(decoder(mean)))

    classifier = genvi.digits_classifier(args.cache_dir)
    real_test = np.asarray(x_test)
    sample_metrics = genvi.digits_metrics(classifier, samples, real_test)
    real_metrics = genvi.digits_metrics(classifier, data.train.x, real_test)

    Path(args.out).mkdir(parents=True, exist_ok=True)
    plt = _common.plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(_grid(real_test[:32], 4), cmap="gray_r", vmin=0, vmax=1)
    axes[0].set_title("test images")
    axes[1].imshow(_grid(recon, 4), cmap="gray_r", vmin=0, vmax=1)
    axes[1].set_title("reconstructions (decoder mean at encoder mean)")
    for ax in axes:
        ax.axis("off")
    _common.savefig(fig, args.out, "reconstructions.png")
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(_grid(samples[:64], 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title("samples: decoder mean at z ~ N(0, I)")
    ax.axis("off")
    _common.savefig(fig, args.out, "samples.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["step"], history["loss"], lw=0.3, alpha=0.5, label="batch loss")
    window = max(1, len(history["loss"]) // 50)
    smooth = np.convolve(history["loss"], np.ones(window) / window, mode="valid")
    ax.plot(history["step"][window - 1 :], smooth, label=f"mean of {window}")
    ax.axhline(-test_elbo, color="k", ls="--", lw=1, label="test -ELBO")
    ax.set_xlabel("step")
    ax.set_ylabel("negative ELBO (nats)")
    ax.set_ylim(top=float(np.percentile(history["loss"], 99)))
    ax.legend()
    _common.savefig(fig, args.out, "loss.png")

    metrics = {
        "test_elbo": test_elbo,
        "test_iwae_log_likelihood": test_ll,
        "iwae_k": args.iwae_k,
        "train_loss_last_1pct": float(
            np.mean(history["loss"][-max(1, args.steps // 100) :])
        ),
        "steps_per_second": steps_per_s,
        "train_seconds": train_s,
        "first_call_seconds": first_call_s,
        "iwae_seconds": iwae_s,
        "skipped_steps": int(history["skipped"].sum()),
        "classifier_test_accuracy": classifier.test_accuracy,
        "samples": sample_metrics,
        "real_train_vs_test": real_metrics,
    }
    out = _common.write_outputs(args.out, args, metrics)
    _common.print_table(
        ["steps", "steps/s", "test ELBO", f"test log-lik (IWAE k={args.iwae_k})"],
        [[args.steps, steps_per_s, test_elbo, test_ll]],
        title=(
            f"VAE on 8x8 digits ({'binarised' if args.binarize else 'grey levels'}, "
            f"Bernoulli), latent {args.latent}, nats per image"
        ),
    )
    names = ["fid", "precision", "recall", "coverage", "class_kl"]
    _common.print_table(
        ["images vs test set", *names],
        [
            [f"{args.num_samples} VAE samples", *(sample_metrics[n] for n in names)],
            ["real training split", *(real_metrics[n] for n in names)],
        ],
        title="digits-classifier metrics (k = 5 neighbours)",
    )
    print(f"\nwrote {out}")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
