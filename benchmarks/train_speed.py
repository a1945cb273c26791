"""How fast do genvi's VAE and GAN train steps run against the same models in PyTorch?

The same networks, batch size and optimiser (Adam) on the CPU, for four models:
an MLP VAE on the 8x8 digits, an MLP GAN on the 2-D ring, and a convolutional
VAE and GAN (``genvi.DCGANEncoder`` / ``DCGANGenerator`` / ``DCGANDiscriminator``)
on 28x28 images. genvi runs ``steps`` training steps per call: the MLP models in
one jitted ``lax.scan``, the convolutional ones through ``genvi.train`` (which
unrolls convolutional steps on the CPU). PyTorch runs the textbook loop, eager
and with its modules wrapped in ``torch.compile`` (compile time, the first call
minus a steady one, reported apart). All contenders of a model are timed in
interleaved rounds (order rotated); ratios of median steps per second come with
a bootstrap interval over rounds.

PyTorch is imported only here and is not part of the ``bench`` extra: install
the ``test`` extra (``pip install 'dynvi[test]'``) to run this benchmark.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import genvi
from benchmarks import _common

# ------------------------------------------------------------------ genvi side


def _genvi_vae(data, hidden, latent, batch, steps, seed):
    event = data.shape[1:]
    enc = genvi.MLPEncoder(event, (hidden,), latent, rngs=nnx.Rngs(seed))
    dec = genvi.MLPDecoder(
        latent, (hidden,), event, likelihood="bernoulli", rngs=nnx.Rngs(seed + 1)
    )
    tx = optax.adam(1e-3)
    graphdef, state = genvi.init_train_state((enc, dec), tx, seed)

    def loss_fn(models, key, data):
        encoder, decoder = models
        k1, k2 = jax.random.split(key)
        x = genvi.sample_batch(k1, data, batch)
        return genvi.vae_loss(k2, x, encoder, decoder, likelihood="bernoulli")

    step = genvi.gradient_step(loss_fn, tx, graphdef)

    @jax.jit
    def run(state, data):
        def body(s, _):
            s, metrics = step(s, data)
            return s, metrics["loss"]

        return jax.lax.scan(body, state, None, length=steps)

    data = jnp.asarray(data)
    holder = {"state": state}

    def call():
        holder["state"], losses = run(holder["state"], data)
        return losses

    return call


def _genvi_gan(hidden, batch, steps, seed):
    mix = genvi.mixture("ring")
    trainer = genvi.gan_trainer(
        lambda rngs: genvi.MLP((2, hidden, hidden, 2), rngs=rngs),
        lambda rngs: genvi.MLP((2, hidden, hidden, 1), rngs=rngs),
        lambda key, n: genvi.sample_mixture(key, mix, n),
        latent_dim=2,
        batch_size=batch,
        g_optimizer=optax.adam(1e-3, b1=0.5),
        d_optimizer=optax.adam(1e-3, b1=0.5),
        n_d=1,
        n_g=1,
    )
    holder = {"state": trainer.init(jax.random.PRNGKey(seed))}

    @jax.jit
    def run(state):
        def body(s, _):
            s, metrics = trainer.step(s)
            return s, metrics

        return jax.lax.scan(body, state, None, length=steps)

    def call():
        holder["state"], metrics = run(holder["state"])
        return metrics

    return call


def _genvi_conv_vae(data, width, latent, batch, steps, seed):
    shape = data.shape[1:]
    enc = genvi.DCGANEncoder(shape, latent, rngs=nnx.Rngs(seed), width=width)
    dec = genvi.DCGANGenerator(
        latent, shape, rngs=nnx.Rngs(seed + 1), width=width, output="bernoulli"
    )
    tx = optax.adam(1e-3)
    graphdef, state = genvi.init_train_state((enc, dec), tx, seed)

    def loss_fn(models, key, data):
        encoder, decoder = models
        k1, k2 = jax.random.split(key)
        x = genvi.sample_batch(k1, data, batch)
        return genvi.vae_loss(k2, x, encoder, decoder, likelihood="bernoulli")

    step = genvi.gradient_step(loss_fn, tx, graphdef)
    data = jnp.asarray(data)
    holder = {"state": state}

    def call():
        holder["state"], history = genvi.train(
            step, holder["state"], data=data, num_steps=steps, progress=False
        )
        return history["loss"]

    return call


def _genvi_conv_gan(data, width, latent, batch, steps, seed):
    shape = data.shape[1:]
    trainer = genvi.gan_trainer(
        lambda rngs: genvi.DCGANGenerator(latent, shape, rngs=rngs, width=width),
        lambda rngs: genvi.DCGANDiscriminator(shape, rngs=rngs, width=width),
        lambda key, n, data: genvi.sample_batch(key, data, n),
        latent_dim=latent,
        batch_size=batch,
        g_optimizer=optax.adam(2e-4, b1=0.5),
        d_optimizer=optax.adam(2e-4, b1=0.5),
    )
    holder = {"state": trainer.init(jax.random.key(seed), jnp.asarray(data))}

    def call():
        holder["state"], history = genvi.train(
            trainer.step, holder["state"], num_steps=steps, progress=False
        )
        return history["g_loss"]

    return call


# ---------------------------------------------------------------- PyTorch side


def _torch():
    """PyTorch, imported on first use, with an error naming the extra."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "train_speed: needs PyTorch, which the `bench` extra does not install; "
            "install the `test` extra (pip install 'dynvi[test]')"
        ) from e
    return torch


def _maybe_compile(modules, compiled: bool):
    torch = _torch()
    return [torch.compile(m) if compiled else m for m in modules]


def _torch_conv_nets(channels, width, latent, side, output_channels):
    """The DCGAN encoder/discriminator trunk and generator of genvi, in PyTorch."""
    torch = _torch()
    nn = torch.nn
    q = side // 4

    def trunk(c_in, out):
        return nn.Sequential(
            nn.Conv2d(c_in, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(q * q * 2 * width, out),
        )

    generator = nn.Sequential(
        nn.Linear(latent, q * q * 2 * width),
        nn.ReLU(),
        nn.Unflatten(1, (2 * width, q, q)),
        nn.Conv2d(2 * width, 4 * width, 3, 1, 1),
        nn.PixelShuffle(2),
        nn.ReLU(),
        nn.Conv2d(width, 4 * output_channels, 3, 1, 1),
        nn.PixelShuffle(2),
    )
    return trunk, generator


def _torch_conv_vae(data, width, latent, batch, steps, seed, compiled=False):
    torch = _torch()
    torch.manual_seed(seed)
    side = data.shape[1]
    x_all = torch.from_numpy(np.asarray(data, np.float32)[:, None])
    trunk, dec = _torch_conv_nets(1, width, latent, side, 1)
    enc = trunk(1, 2 * latent)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    enc_c, dec_c = _maybe_compile([enc, dec], compiled)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def call():
        for _ in range(steps):
            x = x_all[torch.randint(len(x_all), (batch,))]
            mean, logvar = enc_c(x).chunk(2, dim=-1)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            rec = bce(dec_c(z), x).sum((1, 2, 3))
            kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(-1)
            loss = (rec + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return call


def _torch_conv_gan(data, width, latent, batch, steps, seed, compiled=False):
    torch = _torch()
    torch.manual_seed(seed)
    side = data.shape[1]
    x_all = torch.from_numpy(np.asarray(data, np.float32)[:, None])
    trunk, body = _torch_conv_nets(1, width, latent, side, 1)
    gen = torch.nn.Sequential(body, torch.nn.Sigmoid())
    disc = trunk(1, 1)
    g_opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen_c, disc_c = _maybe_compile([gen, disc], compiled)
    softplus = torch.nn.functional.softplus

    def call():
        for _ in range(steps):
            real = x_all[torch.randint(len(x_all), (batch,))]
            fake = gen_c(torch.randn(batch, latent)).detach()
            d_loss = softplus(-disc_c(real)).mean() + softplus(disc_c(fake)).mean()
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = softplus(-disc_c(gen_c(torch.randn(batch, latent)))).mean()
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
        return g_loss.item()

    return call


def _torch_vae(data, hidden, latent, batch, steps, seed, compiled=False):
    torch = _torch()
    torch.manual_seed(seed)
    dim = int(np.prod(data.shape[1:]))
    x_all = torch.from_numpy(np.asarray(data, np.float32).reshape(len(data), dim))
    enc = torch.nn.Sequential(
        torch.nn.Linear(dim, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 2 * latent),
    )
    dec = torch.nn.Sequential(
        torch.nn.Linear(latent, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, dim)
    )
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    enc, dec = _maybe_compile([enc, dec], compiled)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def call():
        for _ in range(steps):
            x = x_all[torch.randint(len(x_all), (batch,))]
            mean, logvar = enc(x).chunk(2, dim=-1)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            rec = bce(dec(z), x).sum(-1)
            kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(-1)
            loss = (rec + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return call


def _torch_gan(hidden, batch, steps, seed, compiled=False):
    torch = _torch()
    torch.manual_seed(seed)

    def mlp(sizes):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    gen, disc = mlp((2, hidden, hidden, 2)), mlp((2, hidden, hidden, 1))
    g_opt = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen, disc = _maybe_compile([gen, disc], compiled)
    angles = torch.arange(8) * (2 * np.pi / 8)
    means = torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    softplus = torch.nn.functional.softplus

    def real_batch():
        return means[torch.randint(8, (batch,))] + 0.01 * torch.randn(batch, 2)

    def call():
        for _ in range(steps):
            fake = gen(torch.randn(batch, 2)).detach()
            d_loss = softplus(-disc(real_batch())).mean() + softplus(disc(fake)).mean()
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = softplus(-disc(gen(torch.randn(batch, 2)))).mean()
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
        return g_loss.item()

    return call


# ----------------------------------------------------------------------- timing

MODELS = ("vae", "gan", "conv_vae", "conv_gan")


def _images(seed):
    """28x28 training images: the bundled MNIST subset, or random pixels without it
    (the speed does not depend on the pixel values)."""
    try:
        return genvi.load_mnist(flatten=False).train.x
    except ImportError:
        return np.random.default_rng(seed).random((4000, 28, 28), np.float32)


def _interleaved(contenders: dict, rounds: int) -> tuple[dict, dict]:
    """Seconds per call of each contender, rounds interleaved with rotated order.

    Returns ``(times, first)``: the timed rounds and the first (compiling) call.
    """
    names = list(contenders)
    first = {}
    for name in names:  # compile / warm up
        start = time.perf_counter()
        _common.block(contenders[name]())
        first[name] = time.perf_counter() - start
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            _common.block(contenders[name]())
            times[name].append(time.perf_counter() - start)
    return times, first


def _ratio_ci(fast, slow, seed=0, n=2000):
    """Bootstrap 95% interval of median(slow) / median(fast) over rounds."""
    rng = np.random.default_rng(seed)
    fast, slow = np.asarray(fast), np.asarray(slow)
    boots = [
        np.median(rng.choice(slow, len(slow))) / np.median(rng.choice(fast, len(fast)))
        for _ in range(n)
    ]
    return np.percentile(boots, [2.5, 97.5])


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n")[0], "runs/train_speed")
    p.add_argument(
        "--steps",
        type=int,
        default=200,
        help="training steps per timed call (default: 200)",
    )
    p.add_argument(
        "--rounds", type=int, default=7, help="interleaved timing rounds (default: 7)"
    )
    p.add_argument("--batch-size", type=int, default=128, help="batch (default: 128)")
    p.add_argument(
        "--hidden", type=int, default=256, help="hidden width of the VAE (default: 256)"
    )
    p.add_argument(
        "--gan-hidden",
        type=int,
        default=128,
        help="hidden width of the GAN networks (default: 128)",
    )
    p.add_argument(
        "--latent", type=int, default=16, help="VAE latent dim (default: 16)"
    )
    p.add_argument(
        "--conv-width", type=int, default=32, help="DCGAN base width (default: 32)"
    )
    p.add_argument(
        "--conv-batch-size",
        type=int,
        default=64,
        help="batch of the convolutional models (default: 64)",
    )
    p.add_argument(
        "--conv-steps",
        type=int,
        default=20,
        help="training steps per timed call, convolutional models (default: 20)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=list(MODELS),
        help=f"models to time (default: {' '.join(MODELS)})",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time torch.compile'd PyTorch (default: on, off with --quick)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.conv_steps, args.conv_width = 4, 2, 2, 4
    if args.compile is None:
        args.compile = not args.quick
    torch = _torch()
    digits = genvi.load_digits(seed=args.seed)
    data = np.asarray(digits.train.x)
    images = _images(args.seed)
    builders = {
        "vae": (
            lambda: _genvi_vae(
                data, args.hidden, args.latent, args.batch_size, args.steps, args.seed
            ),
            lambda c: _torch_vae(
                data,
                args.hidden,
                args.latent,
                args.batch_size,
                args.steps,
                args.seed,
                c,
            ),
            args.steps,
        ),
        "gan": (
            lambda: _genvi_gan(args.gan_hidden, args.batch_size, args.steps, args.seed),
            lambda c: _torch_gan(
                args.gan_hidden, args.batch_size, args.steps, args.seed, c
            ),
            args.steps,
        ),
        "conv_vae": (
            lambda: _genvi_conv_vae(
                images,
                args.conv_width,
                args.latent,
                args.conv_batch_size,
                args.conv_steps,
                args.seed,
            ),
            lambda c: _torch_conv_vae(
                images,
                args.conv_width,
                args.latent,
                args.conv_batch_size,
                args.conv_steps,
                args.seed,
                c,
            ),
            args.conv_steps,
        ),
        "conv_gan": (
            lambda: _genvi_conv_gan(
                images,
                args.conv_width,
                args.latent,
                args.conv_batch_size,
                args.conv_steps,
                args.seed,
            ),
            lambda c: _torch_conv_gan(
                images,
                args.conv_width,
                args.latent,
                args.conv_batch_size,
                args.conv_steps,
                args.seed,
                c,
            ),
            args.conv_steps,
        ),
    }
    peers = ["pytorch"] + (["pytorch_compiled"] if args.compile else [])
    rows, metrics = [], {"torch_threads": torch.get_num_threads()}
    cases = list(args.models)
    for case in cases:
        make_genvi, make_torch, steps = builders[case]
        # torch.compile's caches are shared across models: without a reset the
        # later models hit dynamo's recompile limit and fall back to eager.
        torch._dynamo.reset()
        contenders = {"genvi": make_genvi(), "pytorch": make_torch(False)}
        if args.compile:
            contenders["pytorch_compiled"] = make_torch(True)
        times, first = _interleaved(contenders, args.rounds)
        med = {k: float(np.median(v)) for k, v in times.items()}
        entry = {
            "steps_per_call": steps,
            "steps_per_second": {k: steps / v for k, v in med.items()},
            "seconds_per_call": times,
            "compile_seconds": {k: first[k] - med[k] for k in first},
        }
        row = [case, f"{steps / med['genvi']:.1f}"]
        for peer in peers:
            ratio = med[peer] / med["genvi"]
            lo, hi = _ratio_ci(times["genvi"], times[peer], seed=args.seed)
            entry[f"ratio_genvi_over_{peer}"] = ratio
            entry[f"ratio_{peer}_ci95"] = [float(lo), float(hi)]
            row += [f"{steps / med[peer]:.1f}", f"{ratio:.2f} [{lo:.2f}, {hi:.2f}]"]
        if args.compile:
            row.append(f"{entry['compile_seconds']['pytorch_compiled']:.1f}")
        row.append(f"{entry['compile_seconds']['genvi']:.1f}")
        entry["ratio_ci95"] = entry["ratio_pytorch_ci95"]  # the eager ratio's
        metrics[case] = entry
        rows.append(row)
    headers = ["model", "genvi steps/s", "eager steps/s", "genvi / eager [95% CI]"]
    if args.compile:
        headers += ["compiled steps/s", "genvi / compiled [95% CI]", "torch.compile s"]
    headers.append("genvi compile s")
    _common.print_table(
        headers,
        rows,
        title=f"train steps per second, CPU ({torch.get_num_threads()} PyTorch "
        f"threads), median of {args.rounds} interleaved rounds; MLP: batch "
        f"{args.batch_size}, {args.steps} steps per round; conv: batch "
        f"{args.conv_batch_size}, width {args.conv_width}, {args.conv_steps} steps",
    )
    plt = _common.plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    xs = np.arange(len(cases))
    who_all = ["genvi", *peers]
    bar = 0.8 / len(who_all)
    for i, who in enumerate(who_all):
        ax.bar(
            xs + bar * i,
            [metrics[c]["steps_per_second"][who] for c in cases],
            width=bar,
            label=who,
        )
    ax.set_xticks(xs + 0.4 - bar / 2, list(cases))
    ax.set_yscale("log")
    ax.set_ylabel("steps / s")
    ax.legend()
    out = _common.write_outputs(args.out, args, metrics)
    _common.savefig(fig, out, "train_speed.png")
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main()
