r"""Adversarial autoencoder losses: the GAN derivation moved to the latent space.

With the encoder joint :math:`p(x,z) = \tilde p(x) p(z|x)` and the model joint
:math:`q(x,z) = q(z) q(x|z)`,

.. math::
    \mathrm{KL}(p(x,z)\,\|\,q(x,z)) + H(\tilde p)
    = \mathbb{E}_{p}[-\log q(x|z)]
      + \mathbb{E}_{\tilde p} \mathrm{KL}(p(z|x)\,\|\,q(z)).

The VAE keeps the second term per example; the AAE replaces it by the KL
between the *aggregate* posterior :math:`p(z) = \int \tilde p(x) p(z|x) dx` and
the prior, :math:`\mathrm{KL}(p(z)\,\|\,q(z))`, which is estimated with a label
``y`` on codes exactly as the GAN estimates :math:`\mathrm{KL}` on data: the
prior plays the data (``y = 1``), the encoder plays the generator. The
discriminator :math:`D(z) = p(y=1|z)` minimises the summed cross-entropy and
reaches :math:`D^* = q(z)/(q(z) + p(z))` (logit = :math:`\log q(z)/p(z)`); the
encoder minimises :math:`\mathbb{E}[-\log D(E(x))]` plus, by the same
argument as for the GAN, :math:`\lambda \mathbb{E}\|E(x) - E_{old}(x)\|^2`;
the decoder minimises the reconstruction term, which for
:math:`q(x|z) = \mathcal N(\mathrm{dec}(z), \sigma^2 I)` is
:math:`\|x - \mathrm{dec}(z)\|^2/(2\sigma^2)` up to a constant: the
reconstruction weight is :math:`1/(2\sigma^2)`.

Su reaches the same losses by swapping :math:`x` and :math:`z` in the GAN
derivation (Su's post, eqs. (27)-(34)): a deterministic encoder
:math:`p(z|x) = \delta(z - E(x))` (eq. (27)), the label on codes (eqs.
(28)-(29)), the discriminator's cross-entropy (eq. (30)), the encoder's
:math:`\mathbb{E}[-\log D(E(x))] + \mathrm{KL}(p(z)\,\|\,p_{old}(z))` (eq. (32))
of which the standard AAE keeps the first term (eq. (33)), and the decoder
trained jointly through :math:`\lambda\|x - G(E(x))\|^2` (eq. (34), whose
:math:`\lambda` is the reconstruction weight here). The proximal term
:math:`\lambda\,\mathbb{E}\|E(x) - E_{old}(x)\|^2` estimates
:math:`\mathrm{KL}(p(z)\,\|\,p_{old}(z))` as eqs. (23)-(25) do for the GAN; Su
states it for the GAN only.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936 (the AAE section).
  J. Su, *Unifying generative models with variational inference (VAE, GAN, AAE,
  ALI)*, Scientific Spaces 2018, https://kexue.fm/archives/5716 ("Su's post"):
  the author's Chinese version of the paper; "Su's post, eq. (N)" cites its
  equation numbers (the paper's own numbering is unchecked beyond eq. (1)).
  A. Makhzani et al., *Adversarial autoencoders*, ICLR workshop 2016,
  arXiv:1511.05644.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import LossOut
from .gan import check_logits, check_weight, discriminator_bce


def aae_discriminator_loss(prior_logits: jax.Array, code_logits: jax.Array) -> LossOut:
    r"""Latent discriminator loss: prior samples (``y = 1``) vs encoded codes.

    .. math::
        L_D = \mathbb{E}_{z \sim q(z)}[-\log D(z)]
            + \mathbb{E}_{x \sim \tilde p}[-\log(1 - D(E(x)))],

    minimised by :math:`D^* = q(z)/(q(z) + p(z))`, whose logit is the log
    density ratio of prior to aggregate posterior (module docstring; Su's post,
    eq. (30), with :math:`D(z) = q(y=0|z)` there).

    Args:
      prior_logits: logits on prior samples, shape (batch,) or (batch, 1).
      code_logits: logits on encoded codes ``E(x)``, the same shape.

    Returns:
      ``LossOut(loss, aux)`` with ``aux = {"prior", "code"}`` (the two terms).

    Raises:
      ValueError: if the logits are not (batch,) / (batch, 1) or differ in shape.

    >>> import jax.numpy as jnp
    >>> round(float(aae_discriminator_loss(jnp.zeros(2), jnp.zeros(2)).loss), 6)
    1.386294

    References:
      A. Makhzani et al., *Adversarial autoencoders*, 2016, arXiv:1511.05644.
    """
    return discriminator_bce(
        "aae_discriminator_loss",
        ("prior_logits", "code_logits"),
        prior_logits,
        code_logits,
    )


def aae_autoencoder_loss(
    x: jax.Array,
    reconstruction: jax.Array,
    code_logits: jax.Array,
    *,
    reconstruction_weight=1.0,
    codes: jax.Array | None = None,
    codes_old: jax.Array | None = None,
    reg_weight=0.0,
) -> LossOut:
    r"""Encoder + decoder loss of the adversarial autoencoder.

    .. math::
        L = w\, \mathbb{E}\|x - \mathrm{dec}(E(x))\|^2
            + \mathbb{E}[-\log D(E(x))]
            + \lambda\, \mathbb{E}\|E(x) - E_{old}(x)\|^2 .

    Its gradient in the decoder's parameters is the reconstruction term only
    (the decoder's loss); in the encoder's parameters it is all three (the
    encoder's loss). Without the last term this is Su's post, eq. (34), with
    the reconstruction weighted by :math:`w`; the last, optional term is the
    proximal KL to the previous encoder (module docstring), with ``codes_old``
    held fixed.

    Args:
      x: data, shape ``(batch, *event_shape)``.
      reconstruction: ``dec(E(x))``, the same shape.
      code_logits: latent discriminator logits on ``E(x)``, shape (batch,) or
        (batch, 1).
      reconstruction_weight: :math:`w = 1/(2\sigma^2) \ge 0`.
      codes: ``E(x)``, needed only with ``reg_weight``.
      codes_old: the previous encoder's codes on the same ``x``.
      reg_weight: :math:`\lambda \ge 0`; 0 (default) is the plain AAE.

    Returns:
      ``LossOut(loss, aux)`` with ``aux = {"reconstruction", "adversarial",
      "regularizer"}`` (unweighted terms).

    Raises:
      ValueError: on mismatched shapes, negative weights, or only one of
        ``codes`` / ``codes_old``.
      TypeError: if a weight is not a real number.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones((2, 3))
    >>> out = aae_autoencoder_loss(x, 0 * x, jnp.zeros(2), reconstruction_weight=0.5)
    >>> round(float(out.aux["reconstruction"]), 6)
    3.0

    References:
      A. Makhzani et al., *Adversarial autoencoders*, 2016, arXiv:1511.05644.
      J. Su, 2018, arXiv:1807.05936.
    """
    fn = "aae_autoencoder_loss"
    check_weight(fn, "reconstruction_weight", reconstruction_weight)
    check_weight(fn, "reg_weight", reg_weight)
    if jnp.shape(x) != jnp.shape(reconstruction):
        raise ValueError(
            f"{fn}: `x` and `reconstruction` must have the same shape, got "
            f"{jnp.shape(x)} and {jnp.shape(reconstruction)}"
        )
    check_logits(fn, ("code_logits", "code_logits"), code_logits, code_logits)
    if jnp.ndim(x) < 1 or jnp.shape(code_logits)[0] != jnp.shape(x)[0]:
        raise ValueError(
            f"{fn}: `code_logits` must have one logit per example of `x`, got "
            f"shapes {jnp.shape(code_logits)} and {jnp.shape(x)}"
        )
    if (codes is None) != (codes_old is None):
        raise ValueError(
            f"{fn}: pass both `codes` and `codes_old` or neither, got "
            f"codes={'None' if codes is None else jnp.shape(codes)} and "
            f"codes_old={'None' if codes_old is None else jnp.shape(codes_old)}"
        )
    err = jnp.reshape((x - reconstruction) ** 2, (x.shape[0], -1))
    recon = jnp.mean(jnp.sum(err, axis=1))
    adversarial = jnp.mean(jax.nn.softplus(-code_logits))
    if codes is None:
        regularizer = jnp.zeros((), recon.dtype)
    else:
        if jnp.shape(codes) != jnp.shape(codes_old):
            raise ValueError(
                f"{fn}: `codes` and `codes_old` must have the same shape, got "
                f"{jnp.shape(codes)} and {jnp.shape(codes_old)}"
            )
        diff = jnp.reshape(codes - jax.lax.stop_gradient(codes_old), (x.shape[0], -1))
        regularizer = jnp.mean(jnp.sum(diff**2, axis=1))
    loss = reconstruction_weight * recon + adversarial + reg_weight * regularizer
    return LossOut(
        loss,
        {
            "reconstruction": recon,
            "adversarial": adversarial,
            "regularizer": regularizer,
        },
    )
