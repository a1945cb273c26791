r"""The GAN, AAE and ALI trainers: each a set of losses handed to the shared engine.

Every trainer returns an :class:`~genvi.Adversarial` whose ``step`` is one cycle
of ``n_d`` discriminator updates then ``n_g`` generator-side updates; the engine
(:mod:`genvi._src.adversarial`) snapshots ``G_old`` at the start of each
generator phase and holds the EMA, R1 and PacGAN options.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import dynopt

from .adversarial import (
    Adversarial,
    _check_common,
    _check_int,
    _check_optional_weight,
    _Net,
    _prior_sampler,
    _with_loss,
    draw,
    pack,
)
from .core import LossOut
from .game_training import build_engine, check_game_options, placeholder_optimizers
from .losses.aae import aae_autoencoder_loss, aae_discriminator_loss
from .losses.ali import ALI_VARIANTS, ali_discriminator_loss, ali_generator_loss
from .losses.gan import gan_discriminator_loss, gan_generator_loss, r1_penalty


def gan_trainer(
    make_generator: Callable[[nnx.Rngs], nnx.Module],
    make_discriminator: Callable[[nnx.Rngs], nnx.Module],
    data_sampler: Callable[..., jax.Array],
    *,
    latent_dim: int,
    batch_size: int,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    n_d: int = 1,
    n_g: int = 1,
    reg_weight: float = 0.0,
    r1_weight: float | None = None,
    ema_decay: float = 0.999,
    pack_size: int = 1,
    game_scheme: dynopt.GameScheme | None = None,
    step_size: float | None = None,
    rms_decay: float | None = None,
) -> Adversarial:
    r"""A GAN trainer with Su's regulariser, R1, EMA and PacGAN packing.

    Discriminator update (``n_d`` per cycle), with ``pack`` the PacGAN packing:

    .. math::
        L_D = \mathbb{E}[-\log D(\mathrm{pack}(x))]
            + \mathbb{E}[-\log(1 - D(\mathrm{pack}(G(z))))]
            + \frac{\gamma}{2} \mathbb{E}\|\nabla D(\mathrm{pack}(x))\|^2,

    generator update (``n_g`` per cycle, :math:`G_{old}` fixed at the start of
    the phase): :func:`genvi.gan_generator_loss`.

    Args:
      make_generator: ``rngs -> module`` mapping (B, latent_dim) noise to
        samples ``(B, *event_shape)``.
      make_discriminator: ``rngs -> module`` mapping packed inputs
        (B, pack_size * prod(event_shape)) to logits (B, 1) or (B,).
      data_sampler: ``(key, n) -> (n, *event_shape)`` real data (pure JAX), or
        ``(key, n, data)`` when ``init`` is given ``data`` (see the state).
      latent_dim: noise dimension (standard normal noise).
      batch_size: discriminator inputs per update (each packs ``pack_size``
        samples, so ``batch_size * pack_size`` samples are drawn).
      g_optimizer, d_optimizer: optax (or dynopt) transforms, one per player.
      n_d, n_g: updates per cycle of the discriminator and of the generator.
      reg_weight: initial :math:`\lambda` (stored in ``state.hyper``).
      r1_weight: :math:`\gamma` of the R1 penalty; ``None`` (default) leaves
        the second-order term out of the compiled step.
      ema_decay: decay of the generator's weight EMA, in [0, 1).
      pack_size: PacGAN degree ``m`` (1 = no packing).
      game_scheme: None (default): the phases above with the two optimisers.
        A dynopt game scheme (e.g. ``dynopt.ExtraGradient()``,
        ``dynopt.OptimisticGradient()``, ``dynopt.ConsensusOptimization(0.1)``,
        ``dynopt.AlternatingMomentum(-0.3)``): each cycle is one step of it on
        the game (generator, discriminator) with this cycle's minibatch; then
        ``g_optimizer`` and ``d_optimizer`` must be None and ``n_d = n_g = 1``
        (the scheme holds its own phases). See :mod:`genvi._src.game_training`.
      step_size: the scheme's step :math:`h` (``state.hyper["step_size"]``).
      rms_decay: None: plain gradient field; a decay in [0, 1): the field is
        scaled by an RMS metric (one per array) held fixed within each cycle.

    Returns:
      An :class:`Adversarial` (``init``, ``step``, ``sample``). Metrics:
      ``d_loss, d_real, d_fake, d_r1, g_loss, g_adversarial, g_regularizer``.

    Raises:
      TypeError, ValueError: on a bad argument (the message names it).

    References:
      J. Su, 2018, arXiv:1807.05936; L. Mescheder et al., ICML 2018,
      arXiv:1801.04406; Z. Lin et al., *PacGAN*, NeurIPS 2018, arXiv:1712.04086.
    """
    fn = "gan_trainer"
    uses_game = check_game_options(
        fn, game_scheme, step_size, rms_decay, g_optimizer, d_optimizer
    )
    g_optimizer, d_optimizer = placeholder_optimizers(
        uses_game, g_optimizer, d_optimizer
    )
    schedule = _check_common(
        fn, latent_dim, batch_size, g_optimizer, d_optimizer, n_d, n_g, ema_decay
    )
    _check_int(fn, "pack_size", pack_size)
    _check_optional_weight(fn, "reg_weight", reg_weight)
    _check_optional_weight(fn, "r1_weight", r1_weight)
    if reg_weight is None:
        raise TypeError(f"{fn}: `reg_weight` must be a real number, got None")
    if not callable(data_sampler):
        raise TypeError(f"{fn}: `data_sampler` must be callable, got {data_sampler!r}")
    generator = _Net(fn, "make_generator", make_generator)
    discriminator = _Net(fn, "make_discriminator", make_discriminator)
    n = batch_size * pack_size
    use_r1 = r1_weight is not None

    def noise(key, count):
        return jax.random.normal(key, (count, latent_dim))

    def judge(disc, x):
        try:
            return discriminator(disc, x)
        except TypeError as e:
            raise ValueError(
                f"{fn}: the discriminator of `make_discriminator` cannot take the "
                f"packed batch of shape {tuple(x.shape)}: with pack_size={pack_size} "
                f"each input holds {pack_size} samples, {x.shape[-1]} features in "
                f"all; build it with that input width ({e})"
            ) from e

    def d_loss(disc, gen, key, hyper, data):
        k_x, k_z = jax.random.split(key)
        real = pack(draw(data_sampler, k_x, n, data), pack_size)
        fake = pack(generator(gen["generator"], noise(k_z, n)), pack_size)
        out = gan_discriminator_loss(judge(disc, real), judge(disc, fake))
        aux = dict(out.aux)
        if use_r1:
            penalty = r1_penalty(lambda x: judge(disc, x), real)
            aux["r1"] = penalty
            loss = out.loss + 0.5 * hyper["r1_weight"] * penalty
        else:
            loss = out.loss
        aux["loss"] = loss
        return LossOut(loss, aux)

    def g_loss(gen, gen_old, disc, key, hyper, data):
        z = noise(key, n)
        fake = generator(gen["generator"], z)
        fake_old = generator(gen_old["generator"], z)
        out = gan_generator_loss(
            judge(disc, pack(fake, pack_size)),
            fake,
            fake_old,
            reg_weight=hyper["reg_weight"],
        )
        return _with_loss(out)

    def distance(gen, gen_old, key):
        z = noise(key, n)
        diff = generator(gen["generator"], z) - generator(gen_old["generator"], z)
        return jnp.mean(jnp.sum(jnp.reshape(jnp.square(diff), (n, -1)), axis=1))

    return build_engine(
        fn,
        {"generator": generator},
        discriminator,
        d_loss=d_loss,
        g_loss=g_loss,
        sampler=_prior_sampler(generator, "generator", latent_dim),
        hyper={
            "reg_weight": reg_weight,
            "r1_weight": 0.0 if r1_weight is None else r1_weight,
            "ema_decay": ema_decay,
        },
        distance=distance,
        game_scheme=game_scheme,
        step_size=step_size,
        rms_decay=rms_decay,
        schedule=schedule,
    )


def aae_trainer(
    make_encoder: Callable[[nnx.Rngs], nnx.Module],
    make_decoder: Callable[[nnx.Rngs], nnx.Module],
    make_discriminator: Callable[[nnx.Rngs], nnx.Module],
    data_sampler: Callable[..., jax.Array],
    *,
    latent_dim: int,
    batch_size: int,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    n_d: int = 1,
    n_g: int = 1,
    reconstruction_weight: float = 1.0,
    reg_weight: float = 0.0,
    ema_decay: float = 0.999,
    game_scheme: dynopt.GameScheme | None = None,
    step_size: float | None = None,
    rms_decay: float | None = None,
) -> Adversarial:
    r"""An adversarial autoencoder trainer (discriminator on latent codes).

    The discriminator separates prior samples :math:`z \sim \mathcal N(0, I)`
    from codes :math:`E(x)` (:func:`genvi.aae_discriminator_loss`); the
    encoder and decoder (one player, one optimiser) minimise
    :func:`genvi.aae_autoencoder_loss`, with the proximal term to the encoder
    snapshotted at the start of the phase when ``reg_weight > 0``. Samples are
    decoded prior samples.

    Args:
      make_encoder: ``rngs -> module``, ``(B, *event_shape)`` -> (B, latent_dim).
      make_decoder: ``rngs -> module``, (B, latent_dim) -> ``(B, *event_shape)``.
      make_discriminator: ``rngs -> module``, (B, latent_dim) -> logits.
      data_sampler: ``(key, n[, data]) -> (n, *event_shape)``.
      latent_dim, batch_size, g_optimizer, d_optimizer, n_d, n_g, ema_decay:
        as in :func:`gan_trainer` (``g_optimizer`` trains encoder + decoder).
      reconstruction_weight: :math:`w = 1/(2\sigma^2)` of the reconstruction.
      reg_weight: :math:`\lambda` of the proximal term (``state.hyper``).
      game_scheme, step_size, rms_decay: as in :func:`gan_trainer`.

    Returns:
      An :class:`Adversarial`; metrics ``d_loss, d_prior, d_code, g_loss,
      g_reconstruction, g_adversarial, g_regularizer``.

    Raises:
      TypeError, ValueError: on a bad argument (the message names it).

    References:
      A. Makhzani et al., *Adversarial autoencoders*, 2016, arXiv:1511.05644;
      J. Su, 2018, arXiv:1807.05936.
    """
    fn = "aae_trainer"
    uses_game = check_game_options(
        fn, game_scheme, step_size, rms_decay, g_optimizer, d_optimizer
    )
    g_optimizer, d_optimizer = placeholder_optimizers(
        uses_game, g_optimizer, d_optimizer
    )
    schedule = _check_common(
        fn, latent_dim, batch_size, g_optimizer, d_optimizer, n_d, n_g, ema_decay
    )
    _check_optional_weight(fn, "reconstruction_weight", reconstruction_weight)
    _check_optional_weight(fn, "reg_weight", reg_weight)
    encoder = _Net(fn, "make_encoder", make_encoder)
    decoder = _Net(fn, "make_decoder", make_decoder)
    discriminator = _Net(fn, "make_discriminator", make_discriminator)

    def d_loss(disc, gen, key, hyper, data):
        k_x, k_z = jax.random.split(key)
        codes = encoder(gen["encoder"], draw(data_sampler, k_x, batch_size, data))
        prior = jax.random.normal(k_z, codes.shape, codes.dtype)
        out = aae_discriminator_loss(
            discriminator(disc, prior), discriminator(disc, codes)
        )
        return _with_loss(out)

    def g_loss(gen, gen_old, disc, key, hyper, data):
        x = draw(data_sampler, key, batch_size, data)
        codes = encoder(gen["encoder"], x)
        out = aae_autoencoder_loss(
            x,
            decoder(gen["decoder"], codes),
            discriminator(disc, codes),
            reconstruction_weight=hyper["reconstruction_weight"],
            codes=codes,
            codes_old=encoder(gen_old["encoder"], x),
            reg_weight=hyper["reg_weight"],
        )
        return _with_loss(out)

    return build_engine(
        fn,
        {"encoder": encoder, "decoder": decoder},
        discriminator,
        d_loss=d_loss,
        g_loss=g_loss,
        sampler=_prior_sampler(decoder, "decoder", latent_dim),
        hyper={
            "reg_weight": reg_weight,
            "reconstruction_weight": reconstruction_weight,
            "ema_decay": ema_decay,
        },
        game_scheme=game_scheme,
        step_size=step_size,
        rms_decay=rms_decay,
        schedule=schedule,
    )


def ali_trainer(
    make_generator: Callable[[nnx.Rngs], nnx.Module],
    make_encoder: Callable[[nnx.Rngs], nnx.Module],
    make_discriminator: Callable[[nnx.Rngs], nnx.Module],
    data_sampler: Callable[..., jax.Array],
    *,
    latent_dim: int,
    batch_size: int,
    g_optimizer: optax.GradientTransformation | None = None,
    d_optimizer: optax.GradientTransformation | None = None,
    variant: str = "derived",
    n_d: int = 1,
    n_g: int = 1,
    ema_decay: float = 0.999,
    game_scheme: dynopt.GameScheme | None = None,
    step_size: float | None = None,
    rms_decay: float | None = None,
) -> Adversarial:
    r"""An ALI / BiGAN trainer: a discriminator on (x, z) pairs.

    Encoder pairs :math:`(x, E(x))` against generator pairs :math:`(G(z), z)`
    (:func:`genvi.ali_discriminator_loss`; the discriminator's input is the
    concatenation ``[x, z]`` flattened); generator and encoder (one player)
    minimise :func:`genvi.ali_generator_loss` with the chosen ``variant``.

    Args:
      make_generator: ``rngs -> module``, (B, latent_dim) -> ``(B, *event_shape)``.
      make_encoder: ``rngs -> module``, ``(B, *event_shape)`` -> (B, latent_dim).
      make_discriminator: ``rngs -> module``, (B, prod(event) + latent_dim) ->
        logits.
      data_sampler: ``(key, n[, data]) -> (n, *event_shape)``.
      variant: ``"derived"`` (Su's loss), ``"minimax"`` (BiGAN) or
        ``"swapped"`` (labels swapped); see :func:`genvi.ali_generator_loss`.
      latent_dim, batch_size, g_optimizer, d_optimizer, n_d, n_g, ema_decay:
        as in :func:`gan_trainer` (``g_optimizer`` trains generator + encoder).
      game_scheme, step_size, rms_decay: as in :func:`gan_trainer`.

    Returns:
      An :class:`Adversarial`; metrics ``d_loss, d_encoder, d_generator,
      g_loss, g_encoder, g_generator``.

    Raises:
      TypeError, ValueError: on a bad argument (the message names it).

    References:
      V. Dumoulin et al., *Adversarially learned inference*, 2017,
      arXiv:1606.00704; J. Donahue et al., *Adversarial feature learning*,
      2017, arXiv:1605.09782; J. Su, 2018, arXiv:1807.05936.
    """
    fn = "ali_trainer"
    uses_game = check_game_options(
        fn, game_scheme, step_size, rms_decay, g_optimizer, d_optimizer
    )
    g_optimizer, d_optimizer = placeholder_optimizers(
        uses_game, g_optimizer, d_optimizer
    )
    schedule = _check_common(
        fn, latent_dim, batch_size, g_optimizer, d_optimizer, n_d, n_g, ema_decay
    )
    if variant not in ALI_VARIANTS:
        raise ValueError(
            f"{fn}: `variant` must be one of {ALI_VARIANTS}, got {variant!r}"
        )
    generator = _Net(fn, "make_generator", make_generator)
    encoder = _Net(fn, "make_encoder", make_encoder)
    discriminator = _Net(fn, "make_discriminator", make_discriminator)

    def pairs(disc, x, z):
        xz = jnp.concatenate([jnp.reshape(x, (x.shape[0], -1)), z], axis=1)
        return discriminator(disc, xz)

    def logits(disc, gen, key, data):
        k_x, k_z = jax.random.split(key)
        x = draw(data_sampler, k_x, batch_size, data)
        z = jax.random.normal(k_z, (batch_size, latent_dim), x.dtype)
        enc = pairs(disc, x, encoder(gen["encoder"], x))
        return enc, pairs(disc, generator(gen["generator"], z), z)

    def d_loss(disc, gen, key, hyper, data):
        out = ali_discriminator_loss(*logits(disc, gen, key, data))
        return _with_loss(out)

    def g_loss(gen, gen_old, disc, key, hyper, data):
        out = ali_generator_loss(*logits(disc, gen, key, data), variant=variant)
        return _with_loss(out)

    return build_engine(
        fn,
        {"generator": generator, "encoder": encoder},
        discriminator,
        d_loss=d_loss,
        g_loss=g_loss,
        sampler=_prior_sampler(generator, "generator", latent_dim),
        hyper={"ema_decay": ema_decay},
        game_scheme=game_scheme,
        step_size=step_size,
        rms_decay=rms_decay,
        schedule=schedule,
    )
