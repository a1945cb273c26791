r"""ALI / BiGAN losses: the GAN derivation applied to (x, z) pairs.

The two joints are the encoder's :math:`p(x,z) = \tilde p(x) p(z|x)` and the
generator's :math:`q(x,z) = q(z) q(x|z)`. A label ``y`` marks the side a pair
comes from (``y = 1`` for encoder pairs :math:`(x, E(x))`, ``y = 0`` for
generator pairs :math:`(G(z), z)`), and :math:`D(x,z) = p(y=1|x,z)`. As for the
GAN, minimising the KL between the labelled joints over :math:`D` gives the
summed cross-entropy, with minimiser

.. math::
    D^*(x,z) = \frac{p(x,z)}{p(x,z) + q(x,z)},
    \qquad \operatorname{logit} D^* = \log\frac{p(x,z)}{q(x,z)} .

(Su's post, eqs. (35)-(39)). Minimising the labelled KL (eq. (37)) over the
two players, with :math:`p(x,z)` eliminated through the optimal :math:`D` of the
previous players, gives :math:`-\mathbb{E}_p[\log D] - \mathbb{E}_q[\log D]`
plus :math:`\mathbb{E}_{q(z)}\mathrm{KL}(q(x|z)\,\|\,q_{old}(x|z))` plus
:math:`\mathbb{E}_q\log p_{old}(z|x)/p(z|x)` (eq. (40)); dropping the last two,
as for the standard GAN, Su's loss for the generator and encoder is (eq. (41))

.. math::
    L_{G,E}^{\text{Su}} = \mathbb{E}_{p}[-\log D(x, E(x))]
                        + \mathbb{E}_{q}[-\log D(G(z), z)] .

This is ``variant="derived"``. Su notes that it is equivalent to neither usual
form: the minimax form of the BiGAN / ALI papers (eq. (42), ``"minimax"``),

.. math::
    L_{G,E}^{\text{minimax}} = -L_D
      = \mathbb{E}_p[\log D(x, E(x))] + \mathbb{E}_q[\log(1 - D(G(z), z))],

nor the form with the labels swapped (eq. (43), ``"swapped"``), which makes each
side's pairs look like the other's and does not saturate when :math:`D` is
confident,

.. math::
    L_{G,E}^{\text{swapped}} = \mathbb{E}_{p}[-\log(1 - D(x, E(x)))]
                             + \mathbb{E}_{q}[-\log D(G(z), z)] .

All three share the generator-pair term's gradient sign; in the encoder-pair
term the derived loss pushes :math:`D(x, E(x))` up where the other two push it
down (Su reports that the derived loss trains as well as the standard ones).

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936 (the ALI section).
  J. Su, *Unifying generative models with variational inference (VAE, GAN, AAE,
  ALI)*, Scientific Spaces 2018, https://kexue.fm/archives/5716 ("Su's post"):
  the author's Chinese version of the paper; "Su's post, eq. (N)" cites its
  equation numbers (the paper's own numbering is unchecked beyond eq. (1)).
  V. Dumoulin et al., *Adversarially learned inference*, ICLR 2017,
  arXiv:1606.00704.
  J. Donahue, P. Kraehenbuehl, T. Darrell, *Adversarial feature learning*,
  ICLR 2017, arXiv:1605.09782.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import LossOut
from .gan import check_logits, discriminator_bce

ALI_VARIANTS = ("derived", "minimax", "swapped")


def ali_discriminator_loss(
    encoder_logits: jax.Array, generator_logits: jax.Array
) -> LossOut:
    r"""Pair discriminator loss: encoder pairs (``y = 1``) vs generator pairs.

    .. math::
        L_D = \mathbb{E}_{x \sim \tilde p}[-\log D(x, E(x))]
            + \mathbb{E}_{z \sim q(z)}[-\log(1 - D(G(z), z))],

    minimised by :math:`D^* = p(x,z)/(p(x,z) + q(x,z))` (module docstring; Su's
    post, eqs. (38)-(39)).

    Args:
      encoder_logits: ``D`` logits on :math:`(x, E(x))`, shape (batch,) or
        (batch, 1).
      generator_logits: logits on :math:`(G(z), z)`, the same shape.

    Returns:
      ``LossOut(loss, aux)`` with ``aux = {"encoder", "generator"}``.

    Raises:
      ValueError: if the logits are not (batch,) / (batch, 1) or differ in shape.

    >>> import jax.numpy as jnp
    >>> round(float(ali_discriminator_loss(jnp.zeros(2), jnp.zeros(2)).loss), 6)
    1.386294

    References:
      V. Dumoulin et al., *Adversarially learned inference*, 2017,
      arXiv:1606.00704.
    """
    return discriminator_bce(
        "ali_discriminator_loss",
        ("encoder_logits", "generator_logits"),
        encoder_logits,
        generator_logits,
    )


def ali_generator_loss(
    encoder_logits: jax.Array,
    generator_logits: jax.Array,
    *,
    variant: str = "derived",
) -> LossOut:
    r"""Joint loss of the encoder and the generator, selectable by name.

    .. math::
        \text{derived:}\quad \mathbb{E}_p[-\log D(x,E(x))]
                            + \mathbb{E}_q[-\log D(G(z), z)], \\
        \text{minimax:}\quad \mathbb{E}_p[\log D(x,E(x))]
                            + \mathbb{E}_q[\log(1 - D(G(z), z))], \\
        \text{swapped:}\quad \mathbb{E}_p[-\log(1 - D(x,E(x)))]
                            + \mathbb{E}_q[-\log D(G(z), z)].

    Args:
      encoder_logits: ``D`` logits on :math:`(x, E(x))`, shape (batch,) or
        (batch, 1).
      generator_logits: logits on :math:`(G(z), z)`, the same shape.
      variant: ``"derived"`` (Su's loss, eq. (41) of Su's post, the default),
        ``"minimax"`` (BiGAN / ALI as published, eq. (42)) or ``"swapped"``
        (the labels swapped, eq. (43)).

    Returns:
      ``LossOut(loss, aux)`` with ``aux = {"encoder", "generator"}``, the two
      players' terms.

    Raises:
      ValueError: on an unknown ``variant`` or bad / mismatched logit shapes.

    >>> import jax.numpy as jnp
    >>> z = jnp.zeros(2)
    >>> round(float(ali_generator_loss(z, z, variant="minimax").loss), 6)
    -1.386294

    References:
      J. Su, 2018, arXiv:1807.05936, and Su's post (module docstring), eqs.
      (41)-(43); J. Donahue et al., *Adversarial feature learning*, 2017,
      arXiv:1605.09782.
    """
    fn = "ali_generator_loss"
    if variant not in ALI_VARIANTS:
        raise ValueError(
            f"{fn}: `variant` must be one of {ALI_VARIANTS}, got {variant!r}"
        )
    check_logits(
        fn, ("encoder_logits", "generator_logits"), encoder_logits, generator_logits
    )
    if variant == "derived":
        enc = jnp.mean(jax.nn.softplus(-encoder_logits))
        gen = jnp.mean(jax.nn.softplus(-generator_logits))
    elif variant == "swapped":
        enc = jnp.mean(jax.nn.softplus(encoder_logits))
        gen = jnp.mean(jax.nn.softplus(-generator_logits))
    else:
        enc = -jnp.mean(jax.nn.softplus(-encoder_logits))
        gen = -jnp.mean(jax.nn.softplus(generator_logits))
    return LossOut(enc + gen, {"encoder": enc, "generator": gen})
