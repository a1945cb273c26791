"""How fast do genvi's VAE and GAN train steps run against the same models in PyTorch?

The same networks, batch size and optimiser (Adam) on the CPU: genvi runs
``steps`` training steps in one jitted ``lax.scan`` (``genvi.gradient_step`` for
the VAE on digits, ``genvi.gan_trainer`` for the GAN on the 2-D ring); PyTorch
runs the textbook eager loop. The two are timed in interleaved rounds (order
rotated) and the ratio of median steps per second is reported with a bootstrap
interval over rounds.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
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


# ---------------------------------------------------------------- PyTorch side


def _torch_vae(data, hidden, latent, batch, steps, seed):
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


def _torch_gan(hidden, batch, steps, seed):
    torch.manual_seed(seed)

    def mlp(sizes):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    gen, disc = mlp((2, hidden, hidden, 2)), mlp((2, hidden, hidden, 1))
    g_opt = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
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


def _interleaved(contenders: dict, rounds: int) -> dict:
    """Seconds per call of each contender, rounds interleaved with rotated order."""
    names = list(contenders)
    for name in names:  # compile / warm up
        _common.block(contenders[name]())
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            _common.block(contenders[name]())
            times[name].append(time.perf_counter() - start)
    return times


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
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 10, 2
    digits = genvi.load_digits(seed=args.seed)
    data = np.asarray(digits.train.x)

    cases = {
        "vae": {
            "genvi": _genvi_vae(
                data, args.hidden, args.latent, args.batch_size, args.steps, args.seed
            ),
            "pytorch": _torch_vae(
                data, args.hidden, args.latent, args.batch_size, args.steps, args.seed
            ),
        },
        "gan": {
            "genvi": _genvi_gan(
                args.gan_hidden, args.batch_size, args.steps, args.seed
            ),
            "pytorch": _torch_gan(
                args.gan_hidden, args.batch_size, args.steps, args.seed
            ),
        },
    }
    rows, metrics = [], {"torch_threads": torch.get_num_threads()}
    for case, contenders in cases.items():
        times = _interleaved(contenders, args.rounds)
        med = {k: float(np.median(v)) for k, v in times.items()}
        ratio = med["pytorch"] / med["genvi"]
        lo, hi = _ratio_ci(times["genvi"], times["pytorch"], seed=args.seed)
        metrics[case] = {
            "steps_per_second": {k: args.steps / v for k, v in med.items()},
            "seconds_per_call": times,
            "ratio_genvi_over_pytorch": ratio,
            "ratio_ci95": [float(lo), float(hi)],
        }
        rows.append(
            [
                case,
                f"{args.steps / med['genvi']:.0f}",
                f"{args.steps / med['pytorch']:.0f}",
                f"{ratio:.2f} [{lo:.2f}, {hi:.2f}]",
            ]
        )
    _common.print_table(
        ["model", "genvi steps/s", "PyTorch steps/s", "genvi / PyTorch [95% CI]"],
        rows,
        title=f"train steps per second, batch {args.batch_size}, CPU, "
        f"median of {args.rounds} interleaved rounds of {args.steps} steps",
    )
    plt = _common.plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    xs = np.arange(len(cases))
    for i, who in enumerate(["genvi", "pytorch"]):
        ax.bar(
            xs + 0.4 * i,
            [metrics[c]["steps_per_second"][who] for c in cases],
            width=0.4,
            label=who,
        )
    ax.set_xticks(xs + 0.2, list(cases))
    ax.set_ylabel("steps / s")
    ax.legend()
    out = _common.write_outputs(args.out, args, metrics)
    _common.savefig(fig, out, "train_speed.png")
    print(f"wrote {out}")
    return metrics


if __name__ == "__main__":
    main()
