r"""Training several players: GAN (with Su's regulariser), AAE and ALI.

Every trainer returns an :class:`Adversarial` triple of pure functions
``init(key) -> state``, ``step(state) -> (state, metrics)`` and
``sample(state, key, n)``. One ``step`` is one *cycle* of the schedule:

1. ``n_d`` discriminator updates (``lax.scan``), each on a fresh batch;
2. a snapshot :math:`G_{old} \leftarrow G` of the generator-side parameters,
   held for the whole phase (as in the paper's code);
3. ``n_g`` generator-side updates (``lax.scan``) of the regularised loss
   :math:`\mathbb{E}[-\log D(G(z))] + \lambda \mathbb{E}\|G(z) - G_{old}(z)\|^2`,
   each followed by an exponential moving average of the generator's weights.

With ``n_g = 1`` the regulariser's gradient is exactly zero (G = G_old at that
step), so such runs are bit-identical for every ``reg_weight``.

``step`` is pure and has the ``step_fn(state) -> (state, metrics)`` form of a
scanned training loop (``genvi.train``); ``jax.vmap(init)`` over keys and
``jax.vmap(step)`` train several seeds - and several hyperparameters, which
live as arrays in ``state.hyper`` - in one compiled call. Networks are given as
factories ``rngs -> nnx.Module`` (e.g. ``lambda rngs: genvi.MLP((2, 64, 1),
rngs=rngs)``) so that ``init`` can build one set per seed inside ``vmap``.

Options: PacGAN packing (``pack = m``: the discriminator sees ``m`` samples
concatenated into one input, so its first layer must take ``m`` times the
event size), the zero-centred R1 penalty :math:`(\gamma/2)\mathbb{E}_{\tilde p}
\|\nabla_x D(x)\|^2` on real data, and the EMA of the generator's weights used
by ``sample(..., ema=True)``.

Example::

    mix = genvi.mixture("ring")
    trainer = genvi.gan_trainer(
        lambda rngs: genvi.MLP((2, 64, 64, 2), rngs=rngs),
        lambda rngs: genvi.MLP((2, 64, 64, 1), rngs=rngs),
        lambda key, n: genvi.sample_mixture(key, mix, n),
        latent_dim=2, batch_size=128,
        g_optimizer=optax.adam(1e-3), d_optimizer=optax.adam(1e-3),
        n_g=5, reg_weight=1.0,
    )
    state = trainer.init(jax.random.PRNGKey(0))
    state, history = genvi.train(trainer.step, state, num_steps=1000)

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936.
  L. Mescheder, A. Geiger, S. Nowozin, *Which training methods for GANs do
  actually converge?*, ICML 2018, arXiv:1801.04406.
  Z. Lin, A. Khetan, G. Fanti, S. Oh, *PacGAN: the power of two samples in
  generative adversarial networks*, NeurIPS 2018, arXiv:1712.04086.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from .core import LossOut


class AdversarialState(NamedTuple):
    """The state of a multi-player training run (a pytree).

    Attributes:
      params: ``{"generator": {name: nnx.State}, "discriminator": nnx.State}``;
        the generator side holds every network trained against the
        discriminator (generator; encoder and decoder for AAE; generator and
        encoder for ALI).
      opt_states: ``{"generator": ..., "discriminator": ...}`` optax states.
      ema: exponential moving average of ``params["generator"]``.
      hyper: arrays ``reg_weight``, ``r1_weight``, ``ema_decay`` (changing them
        does not recompile; under ``vmap`` each run may have its own).
      key: the PRNG key of the next cycle.
      step: the number of cycles done (int32).
      data: the pytree given to ``init(key, data)`` and passed on as
        ``data_sampler(key, n, data)`` (``None``: ``data_sampler(key, n)``);
        e.g. a dataset kept on device, or a mixture's parameters, so that one
        compiled step can train on several datasets under ``vmap``.
    """

    params: dict
    opt_states: dict
    ema: dict
    hyper: dict
    key: jax.Array
    step: jax.Array
    data: Any = None


class Adversarial(NamedTuple):
    """The pure functions of a multi-player trainer.

    Attributes:
      init: ``(key, data=None) -> AdversarialState``.
      step: ``state -> (state, metrics)``, one cycle of ``n_d`` discriminator
        and ``n_g`` generator-side updates; metrics are batch means.
      sample: ``(state, key, n, ema=False) -> samples`` of shape
        ``(n, *event_shape)``, from the EMA weights when ``ema=True``.
    """

    init: Callable[[jax.Array], AdversarialState]
    step: Callable[[AdversarialState], tuple[AdversarialState, dict]]
    sample: Callable[..., jax.Array]


def pack(x: jax.Array, m: int) -> jax.Array:
    r"""PacGAN packing: ``m`` consecutive samples concatenated into one input.

    Shape ``(m B, *event)`` becomes (B, m * prod(event)).

    Args:
      x: a batch whose size is a multiple of ``m``.
      m: the packing degree (1 leaves ``x`` unchanged).

    Returns:
      The packed batch.

    Raises:
      ValueError: if the batch size is not a multiple of ``m``.

    >>> pack(jnp.arange(8.0).reshape(4, 2), 2).tolist()
    [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]

    References:
      Lin et al., *PacGAN*, NeurIPS 2018, arXiv:1712.04086.
    """
    if m == 1:
        return x
    if x.shape[0] % m:
        raise ValueError(
            f"pack: the batch size must be a multiple of `m`={m}, got shape {x.shape}"
        )
    return jnp.reshape(x, (x.shape[0] // m, -1))


class _Net:
    """A network factory split into a static graph and per-seed parameters."""

    def __init__(self, fn: str, name: str, factory):
        if not callable(factory):
            raise TypeError(
                f"{fn}: `{name}` must be a callable rngs -> nnx.Module, got {factory!r}"
            )
        module = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
        if not isinstance(module, nnx.Module):
            raise TypeError(
                f"{fn}: `{name}` must return an nnx.Module, got {type(module)!r}"
            )
        self.factory = factory
        self.graph = nnx.split(module)[0]
        self.convolves = any(
            isinstance(m, nnx.Conv | nnx.ConvTranspose)
            for _, m in nnx.iter_modules(module)
        )

    def init(self, key):
        return nnx.split(self.factory(nnx.Rngs(key)))[1]

    def __call__(self, params, x):
        return nnx.merge(self.graph, params)(x)


def _phase(body, carry, keys, unroll: bool):
    """``lax.scan(body, carry, keys)``, or the same steps written out when ``unroll``.

    Written out by hand rather than with ``scan(..., unroll=True)``: for a phase
    of one step that is ``unroll=1``, which still compiles to a loop, and
    XLA:CPU runs convolutions inside a loop body on a much slower path (a
    DCGAN step measured 2.6 steps/s in the loop, see
    docs/benchmarks/train_speed.md).
    """
    if not unroll:
        return jax.lax.scan(body, carry, keys)
    rows = []
    for i in range(keys.shape[0]):
        carry, aux = body(carry, keys[i])
        rows.append(aux)
    return carry, jax.tree.map(lambda *r: jnp.stack(r), *rows)


def draw(data_sampler, key, n, data):
    """Real data: ``data_sampler(key, n)``, or ``(key, n, data)`` with state data."""
    if data is None:
        return data_sampler(key, n)
    return data_sampler(key, n, data)


def _check_int(fn: str, name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: `{name}` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: `{name}` must be >= {minimum}, got {value!r}")


def _check_optional_weight(fn: str, name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: `{name}` must be a real number or None, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{fn}: `{name}` must be >= 0, got {value!r}")


def _check_common(
    fn, latent_dim, batch_size, g_optimizer, d_optimizer, n_d, n_g, ema_decay
) -> dict:
    """Checks the arguments every trainer shares; returns ``_engine``'s schedule."""
    _check_int(fn, "latent_dim", latent_dim)
    _check_int(fn, "batch_size", batch_size)
    _check_int(fn, "n_d", n_d)
    _check_int(fn, "n_g", n_g)
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, numbers.Real):
        raise TypeError(f"{fn}: `ema_decay` must be a real number, got {ema_decay!r}")
    if not 0 <= ema_decay < 1:
        raise ValueError(
            f"{fn}: `ema_decay` must satisfy 0 <= ema_decay < 1, got {ema_decay!r}"
        )
    optimizers = {"g_optimizer": g_optimizer, "d_optimizer": d_optimizer}
    for name, opt in optimizers.items():
        if not isinstance(opt, optax.GradientTransformation):
            raise TypeError(
                f"{fn}: `{name}` must be an optax.GradientTransformation (optax or "
                f"dynopt), got {opt!r}"
            )
    return {**optimizers, "n_d": n_d, "n_g": n_g}


def _with_loss(out: LossOut) -> LossOut:
    """``out`` with its loss also reported among the metrics as ``loss``."""
    return LossOut(out.loss, {**out.aux, "loss": out.loss})


def _prior_sampler(net: _Net, name: str, latent_dim: int):
    """``sample``: ``net`` (the generator-side network ``name``) on N(0, I) noise."""

    def sampler(gen, key, count):
        return net(gen[name], jax.random.normal(key, (count, latent_dim)))

    return sampler


def _engine(
    gen_nets: dict[str, _Net],
    disc_net: _Net,
    *,
    g_optimizer: optax.GradientTransformation,
    d_optimizer: optax.GradientTransformation,
    d_loss: Callable[..., LossOut],
    g_loss: Callable[..., LossOut],
    sampler: Callable[[dict, jax.Array, int], jax.Array],
    n_d: int,
    n_g: int,
    hyper: dict,
) -> Adversarial:
    """Builds init / step / sample around two losses.

    ``d_loss(disc_params, gen_params, key, hyper, data)`` and
    ``g_loss(gen_params, gen_old, disc_params, key, hyper, data)`` return LossOut.
    """
    names = sorted(gen_nets)
    # XLA:CPU compiles convolutions inside a loop body to a slow path (see
    # genvi.train's `unroll`): convolutional phases are written out step by step.
    nets = [*gen_nets.values(), disc_net]
    unroll = any(net.convolves for net in nets) and jax.default_backend() == "cpu"

    def init(key, data=None):
        keys = jax.random.split(key, len(names) + 2)
        gen = {n: gen_nets[n].init(k) for n, k in zip(names, keys)}
        disc = disc_net.init(keys[-2])
        dtype = jax.tree.leaves(gen)[0].dtype
        return AdversarialState(
            params={"generator": gen, "discriminator": disc},
            opt_states={
                "generator": g_optimizer.init(gen),
                "discriminator": d_optimizer.init(disc),
            },
            ema=gen,
            hyper={k: jnp.asarray(v, dtype) for k, v in hyper.items()},
            key=keys[-1],
            step=jnp.zeros((), jnp.int32),
            data=data,
        )

    def step(state):
        key, k_d, k_g = jax.random.split(state.key, 3)
        gen = state.params["generator"]

        def d_body(carry, k):
            disc, opt_state = carry
            (_, aux), grads = jax.value_and_grad(
                lambda p: tuple(d_loss(p, gen, k, state.hyper, state.data)),
                has_aux=True,
            )(disc)
            updates, opt_state = d_optimizer.update(grads, opt_state, disc)
            return (optax.apply_updates(disc, updates), opt_state), aux

        (disc, d_opt), d_aux = _phase(
            d_body,
            (state.params["discriminator"], state.opt_states["discriminator"]),
            jax.random.split(k_d, n_d),
            unroll,
        )
        # Snapshot once per generator phase: G_old is held for its n_g steps.
        gen_old = gen
        decay = state.hyper["ema_decay"]

        def g_body(carry, k):
            g, opt_state, ema = carry
            (_, aux), grads = jax.value_and_grad(
                lambda p: tuple(g_loss(p, gen_old, disc, k, state.hyper, state.data)),
                has_aux=True,
            )(g)
            updates, opt_state = g_optimizer.update(grads, opt_state, g)
            g = optax.apply_updates(g, updates)
            ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, g)
            return (g, opt_state, ema), aux

        (gen, g_opt, ema), g_aux = _phase(
            g_body,
            (gen, state.opt_states["generator"], state.ema),
            jax.random.split(k_g, n_g),
            unroll,
        )
        metrics = {f"d_{k}": jnp.mean(v) for k, v in d_aux.items()}
        metrics.update({f"g_{k}": jnp.mean(v) for k, v in g_aux.items()})
        new = AdversarialState(
            params={"generator": gen, "discriminator": disc},
            opt_states={"generator": g_opt, "discriminator": d_opt},
            ema=ema,
            hyper=state.hyper,
            key=key,
            step=state.step + 1,
            data=state.data,
        )
        return new, metrics

    def sample(state, key, n, ema=False):
        return sampler(state.ema if ema else state.params["generator"], key, n)

    return Adversarial(init, step, sample)


def run_cycles(
    step: Callable[[Any], tuple[Any, dict]], state: Any, num_cycles: int
) -> tuple[Any, dict]:
    """``num_cycles`` applications of ``step`` in one ``lax.scan`` (jit it).

    A minimal loop for tests and benchmarks that evaluate between chunks;
    ``genvi.train`` adds progress, NaN handling and checkpoints.
    """
    return jax.lax.scan(lambda s, _: step(s), state, None, length=num_cycles)
